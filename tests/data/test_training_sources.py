"""Training reads what a new user has: the directory `mmlink synth` wrote, text-only and user/assistant records,
a `datasets.save_to_disk` directory — through `ConversationDataset`, the processors and both model families, and
one end-to-end `mmlink train`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from mmlink.cli import main
from mmlink.data.synth import synthesize
from mmlink.models import load
from mmlink.train.data import ConversationCollator, ConversationDataset

pytestmark = pytest.mark.usefixtures("one_thread")

TEXT_ONLY = {"id": "text-only", "conversations": [{"from": "human", "value": "What is two plus two?"},
                                                 {"from": "gpt", "value": "Four."}]}


def _chat(rid: str, images: list[str]) -> dict:
    """An OpenAI-style record (role/content, user/assistant) about ``images``."""
    prompt = "".join(f"Image {k + 1}: <image>\n" for k in range(len(images))) + "What do you see?"
    return {"id": rid, "image": images, "conversations": [{"role": "user", "content": prompt},
                                                          {"role": "assistant", "content": "Shapes."}]}


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    """`mmlink synth`'s output, with a text-only and a user/assistant record appended to its data.jsonl."""
    out = tmp_path_factory.mktemp("sources") / "train"
    synthesize("mmlink_pair", out, 2, "train", 0, image_size=32, progress=False)
    first = json.loads((out / "data.jsonl").read_text().splitlines()[0])
    with open(out / "data.jsonl", "a") as f:
        f.write(json.dumps(TEXT_ONLY) + "\n" + json.dumps(_chat("chat", first["image"])) + "\n")
    return out


def test_conversation_dataset_reads_the_synth_directory(synth_dir):
    ds = ConversationDataset(synth_dir)
    assert ds.path == synth_dir / "data.jsonl" and len(ds) == 4
    by_id = {r["id"]: r for r in ds.records}
    assert by_id["text-only"]["image"] == []
    assert [t["from"] for t in by_id["chat"]["conversations"]] == ["human", "gpt"]
    assert all(Path(p).is_absolute() and Path(p).is_file() for r in ds.records for p in r["image"])


def test_conversation_dataset_reads_a_saved_dataset_with_embedded_images(synth_dir, tmp_path):
    datasets = pytest.importorskip("datasets")
    first = ConversationDataset(synth_dir).records[0]
    features = datasets.Features({
        "id": datasets.Value("string"),
        "image": datasets.List(datasets.Image()),
        "conversations": datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")}),
    })
    chat = _chat("embedded", first["image"])
    rows = {"id": ["embedded", "text-only"],
            "image": [[{"bytes": Path(p).read_bytes(), "path": None} for p in first["image"]], []],
            "conversations": [chat["conversations"],
                              [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]]}
    saved = tmp_path / "hf"
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(saved))
    ds = ConversationDataset(saved)
    assert ds.path == saved and [r["id"] for r in ds.records] == ["embedded", "text-only"]
    assert all(Path(p).parent == (saved / ".mmlink-images").resolve() for p in ds[0]["image"])
    assert [Image.open(p).size for p in ds[0]["image"]] == [Image.open(p).size for p in first["image"]]
    batch = ConversationCollator(load("tiny")[1])(ds.records)
    assert batch["pixel_values"].shape[0] == 2


@pytest.mark.parametrize("preset", ["tiny", "tiny-llava"])
def test_text_only_batches_train_and_generate(preset, tmp_path):
    """A batch of text-only records (pixel_values (0, C, H, W)) and a mixed one: a loss with a gradient even with
    the LLM frozen (zeros for the trainable image-side parameters), and greedy generation."""
    model, processor = load(preset)
    model.set_trainable((model.projector_prefix,))
    Image.new("RGB", (32, 32), (200, 30, 30)).save(tmp_path / "red.png")
    text = [TEXT_ONLY, {**TEXT_ONLY, "id": "t2"}]
    mixed = [TEXT_ONLY, {"id": "img", "image": [str(tmp_path / "red.png")],
                         "conversations": [{"from": "human", "value": "<image> colour?"},
                                           {"from": "gpt", "value": "Red."}]}]
    collate, prompts = ConversationCollator(processor), ConversationCollator(processor, for_generation=True)
    for records, n_images in ((text, 0), (mixed, 1)):
        batch = collate(records)
        assert batch["pixel_values"].shape[0] == n_images
        loss = model(**{k: v for k, v in batch.items() if k != "labels"}, labels=batch["labels"]).loss
        assert torch.isfinite(loss)
        model.zero_grad(set_to_none=True)
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads)
        if n_images == 0:
            assert all(not bool(g.any()) for g in grads)
        out = model.generate(**prompts(records), max_new_tokens=3, do_sample=False)
        assert out.shape[0] == 2


@pytest.mark.usefixtures("fresh_accelerate_state")
def test_mmlink_train_on_the_synth_directory(synth_dir, tmp_path, capsys):
    """`mmlink train --train-data DIR` on the directory `mmlink synth` wrote (with a text-only and a user/assistant
    record), validation data a directory with one .jsonl (a text-only record first, so a sample is generated
    for it)."""
    images = ConversationDataset(synth_dir).records[0]["image"]
    val = tmp_path / "val"
    val.mkdir()
    (val / "mine.jsonl").write_text(json.dumps(TEXT_ONLY) + "\n" + json.dumps(_chat("chat", images)) + "\n")
    out = tmp_path / "run"
    settings = {"train-data": synth_dir, "val-data": val, "out-dir": out, "model": "tiny", "max-steps": 2,
                "batch-size": 2, "warmup-steps": 0, "mixed-precision": "no", "eval-every": 2, "sample-every": 2,
                "num-samples": 2, "max-new-tokens": 3, "save-every": 0, "progress": "false"}
    assert main(["train", *[w for k, v in settings.items() for w in (f"--{k}", str(v))]]) == 0, capsys.readouterr()
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 2 and summary["samples_seen"] == 4  # one epoch: every record, text-only included
    assert summary["final_val_loss"] > 0 and (out / "final").is_dir()
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert {s["id"] for s in samples} == {"text-only", "chat"}
