"""`mmlink chat`: a terminal chat with a model, on the same `Engine` as `mmlink serve` (no HTTP in between).

Commands: ``/image PATH`` (attach an image to the next message; repeat for several), ``/reset``, ``/save FILE`` (the
conversation as a LLaVA record: ``{"id", "image": [paths], "conversations"}``), ``/help``, ``/quit``. Answers stream
as they are decoded.
"""

from __future__ import annotations

import json
import queue
import sys
from pathlib import Path
from typing import Callable, TextIO

from PIL import Image

from mmlink.images import load_images
from mmlink.models.processing import IMAGE_PLACEHOLDER
from mmlink.serve.engine import Engine, Job
from mmlink.serve.media import RequestError
from mmlink.serve.protocol import Conversation, Sampling

HELP = "/image PATH  attach an image to the next message · /reset · /save FILE · /help · /quit"


def chat(engine: Engine, read: Callable[[str], str] = input, out: TextIO = sys.stdout, max_tokens: int = 256,
         temperature: float = 0.0) -> list[dict]:
    """Run the loop until ``/quit`` or end of input; returns the conversation's turns."""
    turns: list[dict] = []
    paths: list[str] = []  # every image of the conversation, in order
    images: list[Image.Image] = []  # the same, decoded once
    attached: list[str] = []  # for the next message
    print(f"mmlink chat — {HELP}", file=out)
    while True:
        try:
            line = read("> ").strip()
        except EOFError:
            break
        if not line:
            continue
        command, _, arg = line.partition(" ")
        if command == "/quit":
            break
        if command == "/help":
            print(HELP, file=out)
        elif command == "/reset":
            turns, paths, images, attached = [], [], [], []
            print("(conversation cleared)", file=out)
        elif command == "/image":
            path = Path(arg.strip()).expanduser()
            if not path.is_file():
                print(f"no such image: {path}", file=out)
            else:
                attached.append(str(path))
                print(f"(image {len(paths) + len(attached)} attached: {path.name})", file=out)
        elif command == "/save":
            if not arg.strip():
                print("usage: /save FILE", file=out)
            else:
                record = {"id": "chat", "image": paths, "conversations": turns}
                Path(arg.strip()).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
                print(f"(saved {len(turns)} turns to {arg.strip()})", file=out)
        elif command.startswith("/"):
            print(f"unknown command {command}; {HELP}", file=out)
        else:
            text = "\n".join([IMAGE_PLACEHOLDER] * len(attached) + [line.replace(IMAGE_PLACEHOLDER, "")])
            if not paths + attached:
                print("(attach an image first: /image PATH)", file=out)
                continue
            new = load_images(attached)  # the toolkit's decoder: EXIF, transparency, bombs
            answer = _ask(engine, turns + [{"from": "human", "value": text}], images + new, out, max_tokens,
                          temperature)
            if answer is not None:
                turns += [{"from": "human", "value": text}, {"from": "gpt", "value": answer}]
                paths, images, attached = paths + attached, images + new, []
    return turns


def _ask(engine: Engine, turns: list[dict], images: list[Image.Image], out: TextIO, max_tokens: int,
         temperature: float) -> str | None:
    events: queue.Queue = queue.Queue()
    conversation = Conversation(turns=turns, images=images)
    job = Job(conversation, Sampling(temperature=temperature), emit=events.put)
    try:
        engine.prepare(job, default_max_tokens=max_tokens)
        engine.submit(job)
    except RequestError as err:
        print(f"error: {err.message}", file=out)
        return None
    text = ""
    while True:
        event = events.get()
        if event.kind == "delta":
            text += event.text
            print(event.text, end="", file=out, flush=True)
        elif event.kind == "error":
            print(f"\nerror: {event.text}", file=out)
            return None
        else:
            print(file=out)
            return text.strip()


__all__ = ["HELP", "chat"]
