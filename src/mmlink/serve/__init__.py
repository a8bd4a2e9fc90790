"""Serving mmlink's models: an OpenAI-compatible HTTP server (`mmlink serve`, `mmlink.serve.app`) and a terminal
chat (`mmlink chat`, `mmlink.serve.chat`), both on one batching `mmlink.serve.engine.Engine`. Nothing is imported
here, so building the `mmlink` command line stays free of torch and FastAPI."""
