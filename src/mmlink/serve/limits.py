"""The server's settings: how the engine batches (`EngineSettings`) and what one request may ask (`ServeLimits`).

Kept apart from the engine and the app, which import torch and FastAPI, so that ``mmlink --help`` builds the
``serve`` flags from these classes without loading either."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from mmlink.settings import check_fields, setting


@dataclass(frozen=True)
class EngineSettings:
    max_batch: int = setting(8, min=1, help="rows (choices) decoded together")
    batch_window_ms: float = setting(10.0, min=0, help="how long a request waits for others to batch with")
    max_queue: int = setting(64, min=1, help="requests waiting at most; beyond it 429 at once")
    max_prompt_tokens: Optional[int] = setting(None, min=1, help="longest prompt, images' tokens included (null: the "
                                               "LLM's context minus max_tokens)")

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class ServeLimits:
    limit_images: int = setting(8, min=1, help="images per request (the model's own max_images may be lower)")
    max_request_bytes: int = setting(20 * 2**20, min=1, help="request body size")
    default_max_tokens: int = setting(256, min=1, help="answer length when a request sets no max_tokens")
    poll_s: float = setting(0.25, above=0, help="how often a waiting non-streaming request checks that its client is "
                            "still there")

    def __post_init__(self) -> None:
        check_fields(self)


__all__ = ["EngineSettings", "ServeLimits"]
