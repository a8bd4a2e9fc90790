"""`mmlink chat` on `tiny`: images attached over several messages, streamed answers equal to the model's own
greedy answers, /reset, /save as a LLaVA record, errors that keep the chat going; the CLI wiring."""

import io
import json

import pytest
from PIL import Image

from mmlink import cli
from mmlink.generate import answer, make_generation_config
from mmlink.models import load
from mmlink.serve.chat import chat
from mmlink.serve.engine import Engine

pytestmark = pytest.mark.usefixtures("one_thread")


def test_chat_session(tmp_path):
    model, processor = load("tiny")
    for name, color in (("red.png", (220, 20, 20)), ("blue.png", (20, 20, 220))):
        Image.new("RGB", (32, 32), color).save(tmp_path / name)
    lines = iter(["Hello?", f"/image {tmp_path}/red.png", f"/image {tmp_path}/blue.png", "What differs?",
                  "/image /no/such.png", "And now?", f"/save {tmp_path}/chat.json", "/oops", "/reset",
                  f"/save {tmp_path}/empty.json", "/quit", "never read"])
    out = io.StringIO()
    engine = Engine(model.eval(), processor).start()
    try:
        turns = chat(engine, read=lambda _: next(lines), out=out, max_tokens=5)
    finally:
        engine.close()
    text = out.getvalue()
    assert "attach an image first" in text and "no such image" in text and "unknown command /oops" in text
    saved = json.loads((tmp_path / "chat.json").read_text())
    assert saved["image"] == [f"{tmp_path}/red.png", f"{tmp_path}/blue.png"]
    conv = saved["conversations"]
    assert [t["from"] for t in conv] == ["human", "gpt", "human", "gpt"]
    assert conv[0]["value"] == "<image>\n<image>\nWhat differs?" and conv[2]["value"] == "And now?"
    images = [Image.open(p).convert("RGB") for p in saved["image"]]
    direct = answer(model, processor, conv[0]["value"], images, make_generation_config(max_new_tokens=5),
                    fast_greedy=False)[0]
    assert conv[1]["value"] == direct and direct in text  # streamed to the terminal as it was decoded
    assert turns == [] and json.loads((tmp_path / "empty.json").read_text())["conversations"] == []


def test_cli_has_serve_and_chat(capsys):
    for command in ("serve", "chat"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert "--model" in capsys.readouterr().out
    assert cli.main(["serve", "--model", "tiny", "--limit-images", "0"]) == 2
    assert "--limit-images: limit_images must be >= 1, got 0" in capsys.readouterr().err
