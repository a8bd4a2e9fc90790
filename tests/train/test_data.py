"""Training data: conversation labels (every gpt turn + EOS, nothing else), variable image counts, no target
truncation, and the seeded, shardable, resumable batch order."""

import json

import pytest
import torch

from mmlink.data.synth import synthesize
from mmlink.models import load
from mmlink.train.data import ConversationCollator, ConversationDataset, ShardedBatchSampler, count_targets


@pytest.fixture(scope="module")
def tiny():
    return load("tiny")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    synthesize("mmlink_pair", root / "pair", 2, "train", 0, image_size=32, progress=False)
    synthesize("group_caption", root / "group", 2, "train", 0, image_size=32, progress=False)
    return root


def _record(data, turns):
    rec = ConversationDataset(data / "pair" / "data.jsonl")[0]
    return {**rec, "conversations": turns}


def test_every_gpt_turn_and_only_it_is_supervised(tiny, data):
    model, processor = tiny
    tok, eos, q = processor.tokenizer, processor.tokenizer.eos_token_id, processor.num_query_tokens
    turns = [
        {"from": "human", "value": "Image 1: <image>\nImage 2: <image>\nWhat is shown?"},
        {"from": "gpt", "value": "Two pictures."},
        {"from": "human", "value": "And the colour?"},
        {"from": "gpt", "value": "Mostly orange."},
    ]
    short = [turns[0], {"from": "gpt", "value": "Yes."}]
    batch = ConversationCollator(processor)([_record(data, turns), _record(data, short)])
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    expected = tok("Two pictures.", add_special_tokens=False)["input_ids"] + [eos]
    expected += tok("Mostly orange.", add_special_tokens=False)["input_ids"] + [eos]
    assert labels[0][labels[0] != -100].tolist() == expected
    supervised = labels[0] != -100
    assert torch.equal(ids[0][supervised], labels[0][supervised])
    # human turns (incl. the second one) and the 2×Q image tokens are all -100
    assert int((ids[0] == processor.image_token_index).sum()) == 2 * q
    assert (labels[0][ids[0] == processor.image_token_index] == -100).all()
    assert int(supervised.sum()) == len(expected)
    text = tok.decode(ids[0][~supervised & (mask[0] == 1) & (ids[0] != processor.image_token_index)])
    assert "And the colour?" in text and "What is shown?" in text
    # the shorter row is right-padded; padding is -100 and masked out
    pad = mask[1] == 0
    assert pad.any() and (labels[1][pad] == -100).all()
    assert labels[1][labels[1] != -100].tolist() == tok("Yes.", add_special_tokens=False)["input_ids"] + [eos]


def test_single_turn_equals_the_processor_with_targets(tiny, data):
    _, processor = tiny
    rec = ConversationDataset(data / "pair" / "data.jsonl")[0]
    human, gpt = (t["value"] for t in rec["conversations"])
    from pathlib import Path

    ref = processor(human, [Path(p) for p in rec["image"]], targets=gpt)
    got = ConversationCollator(processor)([rec])
    for key in ("input_ids", "attention_mask", "labels", "qformer_input_ids", "pixel_values"):
        assert torch.equal(ref[key], got[key]), key


def test_variable_image_counts_stack_and_train(tiny, data):
    model, processor = tiny
    records = ConversationDataset(data / "group" / "data.jsonl").records + ConversationDataset(
        data / "pair" / "data.jsonl").records
    counts = [len(r["image"]) for r in records]
    assert len(set(counts)) > 1
    batch = ConversationCollator(processor)(records)
    assert batch["pixel_values"].shape[0] == sum(counts) == batch["qformer_input_ids"].shape[0]
    per_row = (batch["input_ids"] == processor.image_token_index).sum(1) // processor.num_query_tokens
    assert per_row.tolist() == counts
    with torch.no_grad():
        out = model(**batch)
    assert torch.isfinite(out.loss)


def test_long_target_is_not_truncated(tiny, data, tmp_path):
    _, processor = tiny
    story = " ".join(f"word{i}" for i in range(120)) + "."
    rec = _record(data, [{"from": "human", "value": "Image 1: <image>\nImage 2: <image>\nTell a story."},
                         {"from": "gpt", "value": story}])
    batch = ConversationCollator(processor)([rec])
    labels = batch["labels"][0]
    assert processor.tokenizer.decode(labels[labels != -100], skip_special_tokens=True) == story
    assert count_targets(batch["labels"]) == int((labels != -100).sum())  # the first token is never a target


def test_generation_batch_is_the_prompt_left_padded(tiny, data):
    _, processor = tiny
    recs = ConversationDataset(data / "group" / "data.jsonl").records
    batch = ConversationCollator(processor, for_generation=True)(recs)
    assert "labels" not in batch
    assert (batch["attention_mask"][:, -1] == 1).all()  # left padding


def test_sharded_order_matches_one_process_and_resumes(tmp_path):
    one = ShardedBatchSampler(10, 4, num_processes=1, rank=0, seed=3)
    two = [ShardedBatchSampler(10, 2, num_processes=2, rank=r, seed=3) for r in range(2)]
    it1, it2 = iter(one), [iter(s) for s in two]
    first = [next(it1) for _ in range(6)]
    for m in range(6):
        assert next(it2[0]) + next(it2[1]) == first[m]
    assert one.per_epoch == 2  # 10 // 4: the incomplete tail is dropped
    assert first[0] + first[1] != first[2] + first[3]  # a new permutation per epoch
    resumed = iter(ShardedBatchSampler(10, 4, seed=3, start=3))
    assert [next(resumed) for _ in range(3)] == first[3:]
    with pytest.raises(ValueError, match="fewer than one global batch"):
        ShardedBatchSampler(3, 2, num_processes=2)


def test_dataset_resolves_images_and_reports_errors(data, tmp_path):
    ds = ConversationDataset(data / "pair" / "data.jsonl")
    assert all(p.startswith("/") for p in ds[0]["image"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "image": ["nope.png"], "conversations": [
        {"from": "human", "value": "<image> hi"}, {"from": "gpt", "value": "yo"}]}) + "\n")
    with pytest.raises(ValueError, match="nope.png"):
        ConversationDataset(bad)
