"""LLaVA family: parity with transformers' LlavaForConditionalGeneration (1, 2, 3 images per sample), the llava-hf
directory layout, mmlink's processor, generation, candidate ranking, Auto-class registration."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch.testing import assert_close
from transformers import AutoConfig, AutoModelForImageTextToText, CLIPImageProcessorPil

from mmlink.eval.ranking import score_candidates
from mmlink.models import load
from mmlink.models.llava import MmlinkLlavaConfig, MmlinkLlavaForConditionalGeneration, MmlinkLlavaProcessor
from mmlink.models.presets import byte_tokenizer
from llava_reference import IMG, P, reference_llava


@pytest.fixture(scope="module")
def llava_hf_dir(tmp_path_factory):
    """A directory in the llava-hf layout: transformers' save of the model, a tokenizer, a CLIP image processor."""
    path = tmp_path_factory.mktemp("llava-hf")
    ref = reference_llava()
    ref.save_pretrained(path)
    byte_tokenizer().save_pretrained(path)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return path, ref


def _ids(images_per_sample: list[int]) -> torch.Tensor:
    """Left-padded rows ``text [P × IMG] text ...`` with the given number of images each."""
    rows = []
    for k in images_per_sample:
        row = [1, 40]
        for j in range(k):
            row += [IMG] * P + [50 + j]
        rows.append(row + [70, 71])
    width = max(map(len, rows))
    return torch.tensor([[0] * (width - len(r)) + r for r in rows])


@pytest.mark.parametrize("images_per_sample", [[1], [2], [3], [1, 3, 2]])
def test_logits_equal_transformers_llava(llava_hf_dir, images_per_sample):
    path, ref = llava_hf_dir
    model, _ = load(path)
    assert isinstance(model, MmlinkLlavaForConditionalGeneration)
    ids = _ids(images_per_sample)
    mask = (ids != 0).long()
    pixels = torch.randn(sum(images_per_sample), 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = ref(input_ids=ids, pixel_values=pixels, attention_mask=mask).logits
        got = model(input_ids=ids, pixel_values=pixels, attention_mask=mask).logits
    assert_close(got, want, rtol=0, atol=0)


def test_every_image_changes_its_own_sample_only():
    model, _ = load("tiny-llava")
    ids = _ids([2, 1]).masked_fill(_ids([2, 1]) == IMG, 260)  # the preset's placeholder is 260
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        base = model(input_ids=ids, pixel_values=pixels).logits
        changed = pixels.clone()
        changed[1] += 1.0  # sample 0's second image
        out = model(input_ids=ids, pixel_values=changed).logits
    assert not torch.allclose(out[0], base[0])
    assert_close(out[1], base[1], rtol=0, atol=0)


def test_placeholder_count_must_match_the_images():
    model, _ = load("tiny-llava")
    ids = torch.tensor([[1] + [260] * P + [5]])
    with pytest.raises(ValueError, match="placeholders for 1 images but pixel_values .* has 2"):
        model(input_ids=ids, pixel_values=torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match=f"exactly {P} placeholder"):
        model(input_ids=ids[:, :-3], pixel_values=torch.zeros(1, 3, 32, 32))


def test_llava_hf_directory_gives_mmlink_processor_with_its_tokenizer(llava_hf_dir):
    path, _ = llava_hf_dir
    _, processor = load(path)
    assert isinstance(processor, MmlinkLlavaProcessor)
    assert processor.image_seq_length == P and processor.image_token_index == IMG
    batch = processor("Image 1: <image>\nImage 2: <image>\nWhat differs?", [Image.new("RGB", (50, 40))] * 2)
    assert int((batch["input_ids"] == IMG).sum()) == 2 * P
    assert batch["pixel_values"].shape == (2, 3, 32, 32)


def test_processor_round_trips_through_save_pretrained(tmp_path):
    model, processor = load("tiny-llava")
    processor.save_pretrained(tmp_path)
    again = MmlinkLlavaProcessor.from_pretrained(tmp_path)
    images = [Image.new("RGB", (40, 30), (200, 30, 30)), Image.new("RGB", (30, 40), (30, 30, 200))]
    a = processor("Left: <image> Right: <image> Is the left one red?", images)
    b = again("Left: <image> Right: <image> Is the left one red?", images)
    for key in a:
        assert_close(a[key], b[key], rtol=0, atol=0)


def test_full_save_round_trip_through_auto_classes(tmp_path):
    model, processor = load("tiny-llava")
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), MmlinkLlavaConfig)
    auto = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    assert type(auto) is MmlinkLlavaForConditionalGeneration
    loaded, loaded_processor = load(tmp_path)
    batch = loaded_processor(["<image> what colour?", "Image 1: <image>\nImage 2: <image>\nsame?"],
                             [[Image.new("RGB", (32, 32), (250, 0, 0))], [Image.new("RGB", (32, 32))] * 2])
    with torch.no_grad():
        want = model(**batch).logits
        assert_close(auto(**batch).logits, want, rtol=0, atol=0)
        assert_close(loaded(**batch).logits, want, rtol=0, atol=0)


def test_fast_greedy_matches_transformers_generate():
    model, processor = load("tiny-llava")
    batch = processor(["<image> a", "Image 1: <image>\nImage 2: <image>\nlonger prompt here"],
                      [[Image.new("RGB", (32, 32), (9, 99, 199))], [Image.new("RGB", (32, 32))] * 2])
    fast = model.generate(**batch, max_new_tokens=6)
    plain = model.generate(**batch, max_new_tokens=6, fast_greedy=False, do_sample=False)
    assert fast.shape == (2, 6)
    assert torch.equal(fast, plain)


def test_ranking_with_shared_image_features_equals_full_forward():
    model, processor = load("tiny-llava")
    turns = [[{"from": "human", "value": "Image 1: <image>\nImage 2: <image>\nWhich one is red?"}]]
    images = [[Image.new("RGB", (32, 32), (250, 0, 0)), Image.new("RGB", (32, 32), (0, 0, 250))]]
    cands = [["Image 1", "Image 2", "neither"]]
    scores = score_candidates(model, processor, turns, images, cands)[0]
    for cand, logprob in zip(cands[0], scores.logprob):
        batch = processor.encode_conversation([[*turns[0], {"from": "gpt", "value": cand}]], images)
        with torch.no_grad():
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0, :-1].float()
        labels = batch["labels"][0, 1:]
        keep = labels != -100
        want = torch.log_softmax(logits, -1)[keep].gather(-1, labels[keep, None]).sum()
        assert abs(float(want) - logprob) < 1e-4
