"""The static-cache greedy loop: token-identical to transformers' greedy `generate`, and used only where it is."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmlink.models import load
from mmlink.models.decoding import GreedyPlan, greedy_decode, greedy_plan

GREEDY = dict(do_sample=False, num_beams=1, pad_token_id=0)


def _prompts(lm, lengths: list[int], seed: int = 0, scale: float = 1.0):
    """Left-padded random prompt embeddings ``(B, T, D)`` with the given real lengths, and their mask."""
    gen = torch.Generator().manual_seed(seed)
    t = max(lengths)
    embeds = torch.randn(len(lengths), t, lm.config.hidden_size, generator=gen) * scale
    mask = torch.zeros(len(lengths), t, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, t - n :] = 1
    return embeds, mask


@pytest.fixture(scope="module")
def tiny_lm():
    return load("tiny")[0].language_model.eval()


@pytest.mark.parametrize("lengths", [[7], [9, 4, 6], [5, 5]])
def test_greedy_decode_equals_generate(tiny_lm, lengths):
    embeds, mask = _prompts(tiny_lm, lengths)
    kwargs = dict(max_new_tokens=12, **GREEDY)
    expected = tiny_lm.generate(inputs_embeds=embeds, attention_mask=mask, **kwargs)
    got = greedy_decode(tiny_lm, embeds, mask, greedy_plan(tiny_lm, kwargs))
    assert got.shape == expected.shape == (len(lengths), 12)
    assert torch.equal(got, expected)


def test_eos_stops_rows_and_pads_them_like_generate(tiny_lm):
    embeds, mask = _prompts(tiny_lm, [8, 5, 7], seed=1)
    free = greedy_decode(tiny_lm, embeds, mask, GreedyPlan(12, 0, (), 0))
    # Make a token that row 0 emits at step 2 the EOS: row 0 must stop there, the others carry on.
    eos = int(free[0, 2])
    kwargs = dict(max_new_tokens=12, eos_token_id=eos, **GREEDY)
    expected = tiny_lm.generate(inputs_embeds=embeds, attention_mask=mask, **kwargs)
    got = greedy_decode(tiny_lm, embeds, mask, greedy_plan(tiny_lm, kwargs))
    assert torch.equal(got, expected)
    first_eos = int((free[0] == eos).nonzero()[0])
    assert int(got[0, first_eos]) == eos and bool((got[0, first_eos + 1 :] == 0).all())
    # min_new_tokens forbids that EOS before step 6, as generate's MinNewTokens processor does.
    kwargs["min_new_tokens"] = 6
    expected = tiny_lm.generate(inputs_embeds=embeds, attention_mask=mask, **kwargs)
    got = greedy_decode(tiny_lm, embeds, mask, greedy_plan(tiny_lm, kwargs))
    assert torch.equal(got, expected)
    assert not bool((got[:, :6] == eos).any())


def test_stops_when_every_row_has_finished(tiny_lm):
    embeds, mask = _prompts(tiny_lm, [6, 6], seed=2)
    free = greedy_decode(tiny_lm, embeds, mask, GreedyPlan(10, 0, (), 0))
    eos = (int(free[0, 1]), int(free[1, 1]))  # a list of EOS ids, as some generation configs have
    kwargs = dict(max_new_tokens=10, eos_token_id=list(eos), **GREEDY)
    got = greedy_decode(tiny_lm, embeds, mask, greedy_plan(tiny_lm, kwargs))
    assert got.shape[1] <= 2
    assert torch.equal(got, tiny_lm.generate(inputs_embeds=embeds, attention_mask=mask, **kwargs))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(do_sample=True),
        dict(num_beams=3),
        dict(repetition_penalty=1.3),
        dict(use_cache=False),
        dict(no_repeat_ngram_size=2),
        dict(num_return_sequences=2, num_beams=2),
        dict(output_scores=True, return_dict_in_generate=True),
        dict(streamer=object()),
    ],
)
def test_anything_but_plain_greedy_goes_to_generate(tiny_lm, kwargs):
    assert greedy_plan(tiny_lm, dict(max_new_tokens=4, pad_token_id=0, **kwargs)) is None


def test_plan_resolves_the_generation_config(tiny_lm):
    plan = greedy_plan(tiny_lm, dict(max_new_tokens=5, min_new_tokens=2, temperature=0.7, top_p=0.9))
    # eos/pad from the LLM's generation config; sampling knobs are inert without do_sample
    assert plan == GreedyPlan(5, 2, (tiny_lm.generation_config.eos_token_id,), tiny_lm.generation_config.pad_token_id)
    assert greedy_plan(tiny_lm, dict(pad_token_id=0)) is None  # no max_new_tokens: generate's max_length rules


def test_encoder_decoder_llms_are_not_supported():
    from mmlink.models.decoding import supports

    t5 = load("tiny", text_config=dict(model_type="t5", vocab_size=260, d_model=32, d_kv=8, d_ff=64, num_layers=1,
                                       num_heads=4, decoder_start_token_id=0, pad_token_id=0, eos_token_id=2))[0]
    assert not supports(t5.language_model)
    assert greedy_plan(t5.language_model, dict(max_new_tokens=4)) is None


def test_model_generate_uses_the_loop_and_matches_plain_generate(monkeypatch):
    model, processor = load("tiny")
    images = [Path(__file__).parents[2] / "examples" / "images" / name
              for name in ("red_ball_beach.png", "red_ball_forest.png")]
    batch = processor(["Image 1: <image>\nImage 2: <image>\nWhat is common?", "<image> Describe."],
                      [images, images[:1]], padding_side="left")
    plain = model.generate(**batch, max_new_tokens=8, fast_greedy=False, **GREEDY)

    calls = []
    import mmlink.models.decoding as decoding

    real = decoding.greedy_decode
    monkeypatch.setattr(decoding, "greedy_decode", lambda *a, **k: calls.append(1) or real(*a, **k))
    fast = model.generate(**batch, max_new_tokens=8, **GREEDY)
    assert calls == [1]
    assert torch.equal(fast, plain)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_mini_answers_are_token_identical(dtype):
    """The shipped default on real prompts: two images each, a batch with padding, 48 new tokens."""
    from mmlink.eval.bench import make_images, make_prompt

    model, processor = load("mini")
    model = model.to(dtype).eval()
    images = make_images(5)
    batch = processor([make_prompt(2), make_prompt(3), make_prompt(1)], [images[:2], images[2:5], images[:1]],
                      padding_side="left")
    batch["pixel_values"] = batch["pixel_values"].to(dtype)
    kwargs = dict(max_new_tokens=48, do_sample=False, num_beams=1, pad_token_id=processor.pad_token_id)
    plain = model.generate(**batch, fast_greedy=False, **kwargs)
    fast = model.generate(**batch, **kwargs)
    assert torch.equal(fast, plain)
    if dtype == torch.float32:  # and the same answers as when the weights shipped (tests/models/test_mini_pinned.py)
        assert processor.batch_decode(fast) == [
            "A red ball is on the left, a green flower is on the right.",
            "A red and blue ball is a red and blue ball.",
            "A red ball is on the left and a green ball is on the right.",
        ]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_prepare_for_decoding_packs_the_llm_layers_and_keeps_the_answers(dtype):
    from torch.testing import assert_close

    from mmlink.models.decoding import PackedLinear, prepare_for_decoding

    model, _ = load("tiny")
    lm = model.language_model.eval().to(dtype)
    lm.lm_head.weight = lm.get_input_embeddings().weight  # tied, as SmolLM2's
    embeds, mask = _prompts(lm, [7, 4])
    embeds = embeds.to(dtype)
    with torch.no_grad():
        logits = lm(inputs_embeds=embeds, attention_mask=mask).logits
    tokens = greedy_decode(lm, embeds, mask, GreedyPlan(10, 0, (), 0))
    embedding = lm.get_input_embeddings().weight.detach().clone()

    changed = prepare_for_decoding(lm)
    layers = lm.config.num_hidden_layers
    assert len(changed) == 7 * layers + 1 and changed[-1] == "lm_head"  # q k v o gate up down per block + head
    assert isinstance(lm.model.layers[0].self_attn.q_proj, PackedLinear) and isinstance(lm.lm_head, PackedLinear)
    assert torch.equal(lm.get_input_embeddings().weight, embedding)  # the embedding keeps its rows
    with torch.no_grad():
        tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=0, rtol=0)
        assert_close(lm(inputs_embeds=embeds, attention_mask=mask).logits, logits, **tol)
    assert torch.equal(greedy_decode(lm, embeds, mask, GreedyPlan(10, 0, (), 0)), tokens)
    assert prepare_for_decoding(lm) == []  # idempotent


def test_prepare_for_decoding_leaves_quantized_and_float16_layers_alone():
    from mmlink.models.decoding import prepare_for_decoding
    from mmlink.models.quantize import quantize_llm

    lm = load("tiny")[0].language_model
    quantize_llm(lm, "int8")
    assert prepare_for_decoding(lm) == []
    assert prepare_for_decoding(load("tiny", dtype=torch.float16)[0].language_model) == []
