"""AIO (`mmlink.aio`, VisLingInstruct §3.2) on `tiny` and `tiny-llava`: the prompt split keeps the images, the
rewrites, IAS batched equals IAS one candidate at a time and the LLM's own mean loss, the comparison prompt lists
worse first, every step is recorded."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from mmlink.aio import AioSettings, candidates_of, clean, compare_prompt, ias_scores, optimize, split_prompt
from mmlink.models import load
from mmlink.textllm import TextLLM

pytestmark = pytest.mark.usefixtures("one_thread")


class Scripted(TextLLM):
    """A rewriter that appends " Be precise." to its input text."""

    name = "scripted"

    def __init__(self):
        self.calls = []

    def complete(self, prompt, system=None):
        self.calls.append(prompt)
        text = prompt.split("There is the text ", 1)[1].split(". Please modify the text", 1)[0]
        return f'"{text} Be precise."'


def _images(k, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [Image.fromarray((torch.rand(32, 32, 3, generator=g) * 255).byte().numpy()) for _ in range(k)]


def test_split_prompt_keeps_every_image_placeholder():
    assert split_prompt("Image 1: <image>\nImage 2: <image>\nWhat changed?") == (
        "Image 1: <image>\nImage 2: <image>\n", "What changed?")
    assert split_prompt("Describe the picture.") == ("", "Describe the picture.")
    with pytest.raises(ValueError, match="no.*instruction|has none"):
        split_prompt("<image>\n  ")


def test_clean_and_chained_rewrites():
    assert clean('Instruction: "Describe it."\nmore') == "Describe it."
    llm = Scripted()
    assert candidates_of(["Describe."], llm, 2) == [["Describe.", "Describe. Be precise.",
                                                   "Describe. Be precise. Be precise."]]
    # the paper's template, verbatim
    assert len(llm.calls) == 2 and "There is the text Describe. Be precise.. Please modify" in llm.calls[1]
    with pytest.raises(ValueError, match="aio.rewrites must be >= 1, got 0"):
        AioSettings(rewrites=0)
    with pytest.raises(ValueError, match="aio.max_new_tokens: expected an integer, got True"):
        AioSettings(max_new_tokens=True)


@pytest.mark.parametrize("preset", ["tiny", "tiny-llava"])
def test_ias_batched_equals_one_at_a_time_and_the_llm_loss(preset):
    model, processor = load(preset)
    model = model.float().eval()
    heads = ["Image 1: <image>\nImage 2: <image>\n", "<image>\n"]
    images = [_images(2), _images(1, 1)]
    cands = [["What changed?", "What changed between the two images, exactly?", "Compare."], ["Describe it."]]
    batched = ias_scores(model, processor, heads, images, cands)
    for head, imgs, cs, got in zip(heads, images, cands, batched):
        for c, value in zip(cs, got):
            (alone,) = ias_scores(model, processor, [head], [imgs], [[c]])
            assert alone[0] == pytest.approx(value, rel=1e-4, abs=1e-5)
            # IAS = the LLM's own mean token loss on the candidate (+ EOS) after the IAS prompt
            turns = [[{"from": "human", "value": head + "Based on the image given, the most appropriate instruction "
                                                        "should be:"}, {"from": "gpt", "value": c}]]
            batch = processor.encode_conversation(turns, [imgs])
            with torch.no_grad():
                loss = model(**batch).loss.item()
            assert value == pytest.approx(loss, rel=1e-4, abs=1e-5)


def test_compare_prompt_lists_worse_first():
    text = compare_prompt("<image>\n", ["A", "B", "C"], [1.0, 3.0, 2.0])
    assert text.startswith("<image>\n") and text.index("B") < text.index("C") < text.index("Instruction: A")
    assert "Score: 3.000" in text and text.rstrip().endswith("Instruction:")


@pytest.mark.parametrize("preset", ["tiny", "tiny-llava"])
def test_optimize_records_every_step_and_keeps_the_images(preset):
    model, processor = load(preset)
    prompts = ["Image 1: <image>\nImage 2: <image>\nWhat changed?", "<image>\nDescribe the picture."]
    results = optimize(model, processor, prompts, [_images(2), _images(1, 1)], AioSettings(rewrites=1,
                       max_new_tokens=8), llm=Scripted())
    for prompt, r in zip(prompts, results):
        assert r.candidates == [r.instruction, r.instruction + " Be precise."] and len(r.ias) == 2
        assert all(v > 0 for v in r.ias)
        assert r.optimized and r.prompt.startswith(split_prompt(prompt)[0]) and r.prompt.endswith(r.optimized)
        assert r.prompt.count("<image>") == prompt.count("<image>")
        assert set(r.to_dict()) == {"instruction", "candidates", "ias", "optimized", "fallback", "reused", "prompt"}
        assert not r.reused


def test_optimize_rewrites_an_instruction_once_per_memo():
    model, processor = load("tiny")
    llm, memo = Scripted(), {}
    prompts = ["<image>\nWhat colour is it?", "<image>\nWhat colour is it?", "<image>\nWhere is it?"]
    first = optimize(model, processor, prompts, [_images(1, s) for s in range(3)], AioSettings(max_new_tokens=4),
                     llm=llm, memo=memo)
    assert len(llm.calls) == 2 and [r.reused for r in first] == [False, True, False]
    assert first[0].candidates == first[1].candidates and first[0].ias != first[1].ias  # other images, other IAS
    again = optimize(model, processor, prompts[:1], [_images(1, 5)], AioSettings(max_new_tokens=4), llm=llm, memo=memo)
    assert len(llm.calls) == 2 and again[0].reused and again[0].candidates == first[0].candidates
