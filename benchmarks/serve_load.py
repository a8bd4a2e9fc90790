"""`mmlink serve` under load, on loopback: 1, 4 and 16 concurrent clients (the official `openai` client, one image and
a short question each, greedy, ``max_tokens`` fixed), then an overload with a small queue.

For each client count it runs for ``--seconds`` and prints requests/s, completion tokens/s, p50/p99 latency and the
rows per forward pass the engine actually batched, with the **batching gain** — throughput over the 1-client
throughput measured in the same run. The overload phase starts a second server with ``--overload-queue`` waiting
places and sends ``--overload-clients`` requests at once: the share answered 429 at once, and that every request got
an answer (200 or 429; none lost, none hung).

Usage: python benchmarks/serve_load.py [--model mini] [--clients 1,4,16] [--seconds 20] [--max-tokens 16]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import openai
import uvicorn
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine_info, machine_note  # noqa: E402

from mmlink.models import load  # noqa: E402
from mmlink.models.decoding import ready_for_inference  # noqa: E402
from mmlink.runtime import choose_dtype  # noqa: E402
from mmlink.serve.app import create_app  # noqa: E402
from mmlink.serve.engine import Engine, EngineSettings  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "images"


def _url(path: Path) -> str:
    buf = io.BytesIO()
    Image.open(path).convert("RGB").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


class _Server:
    def __init__(self, app):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(60)


def _request(client, name, url, max_tokens):
    return client.chat.completions.create(model=name, max_tokens=max_tokens, messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "Describe the image."}]}])


def load_phase(port: int, name: str, url: str, clients: int, seconds: float, max_tokens: int) -> dict:
    latencies, tokens, errors = [], [], []
    stop = time.monotonic() + seconds

    def worker():
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="-", max_retries=0, timeout=600)
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            try:
                response = _request(client, name, url, max_tokens)
            except openai.APIError as err:
                errors.append(str(err))
                continue
            latencies.append(time.perf_counter() - t0)
            tokens.append(response.usage.completion_tokens)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ordered = sorted(latencies)
    return {"clients": clients, "requests": len(latencies), "errors": len(errors), "wall_s": wall,
            "requests_per_s": len(latencies) / wall, "tokens_per_s": sum(tokens) / wall,
            "p50_s": statistics.median(ordered) if ordered else None,
            "p99_s": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else None}


def overload_phase(model, processor, name: str, url: str, clients: int, queue: int, max_tokens: int) -> dict:
    engine = Engine(model, processor, EngineSettings(max_queue=queue))
    codes: list[int] = []
    with _Server(create_app(engine, name)) as server:
        def one():
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key="-", max_retries=0,
                                   timeout=600)
            try:
                _request(client, name, url, max_tokens)
                codes.append(200)
            except openai.APIStatusError as err:
                codes.append(err.status_code)
            except openai.APIError:
                codes.append(-1)  # no HTTP answer at all

        threads = [threading.Thread(target=one) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return {"clients": clients, "queue": queue, "answered": len(codes), "ok": codes.count(200),
            "rejected_429": codes.count(429), "other": len(codes) - codes.count(200) - codes.count(429)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mini")
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--overload-clients", type=int, default=48)
    parser.add_argument("--overload-queue", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    args = parser.parse_args(argv)

    model, processor = load(args.model)
    choice = choose_dtype("auto", str(next(model.parameters()).device))
    ready_for_inference(model, choice.dtype)
    url = _url(EXAMPLES / "red_ball_beach.png")
    import torch

    print(machine_note(machine_info("cpu")) + f"; CPU capability {torch.backends.cpu.get_cpu_capability()}",
          f"\nmodel {args.model}, dtype {choice.name}, max_tokens {args.max_tokens}, max_batch {args.max_batch}",
          flush=True)
    engine = Engine(model, processor, EngineSettings(max_batch=args.max_batch, max_queue=256))
    phases = []
    with _Server(create_app(engine, args.model)) as server:
        _request(openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key="-"), args.model, url, 2)
        for n in (int(c) for c in args.clients.split(",")):
            before = (engine.batches, engine.rows)
            phase = load_phase(server.port, args.model, url, n, args.seconds, args.max_tokens)
            batches = engine.batches - before[0]
            phase["rows_per_batch"] = (engine.rows - before[1]) / batches if batches else None
            phases.append(phase)
    base = phases[0]["tokens_per_s"] or float("nan")
    print(f"\n{'clients':>7} {'req':>5} {'req/s':>7} {'tok/s':>7} {'p50 s':>7} {'p99 s':>7} {'rows/batch':>10} "
          f"{'gain':>6}")
    for p in phases:
        p["batching_gain"] = p["tokens_per_s"] / base
        print(f"{p['clients']:>7} {p['requests']:>5} {p['requests_per_s']:>7.2f} {p['tokens_per_s']:>7.1f} "
              f"{p['p50_s'] or float('nan'):>7.2f} {p['p99_s'] or float('nan'):>7.2f} "
              f"{p['rows_per_batch'] or float('nan'):>10.1f} {p['batching_gain']:>5.2f}×")
    over = overload_phase(model, processor, args.model, url, args.overload_clients, args.overload_queue,
                          args.max_tokens)
    print(f"\noverload: {over['clients']} requests at once, queue {over['queue']}: {over['ok']} answered 200, "
          f"{over['rejected_429']} got 429 at once ({100 * over['rejected_429'] / over['clients']:.0f} %), "
          f"{over['other']} other; {over['answered']}/{over['clients']} got an HTTP answer")
    if args.out:
        args.out.write_text(json.dumps({"phases": phases, "overload": over}, indent=2) + "\n")
    return 0 if over["answered"] == over["clients"] and over["other"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
