"""`mmlink.generate`: decoding settings (`make_generation_config`), `answer` (prompts + images → strings), `run`
(`mmlink generate`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import GenerationConfig

from mmlink.generate import answer, make_generation_config, run
from mmlink.models import load
from mmlink.models.decoding import GreedyPlan, greedy_plan

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "images"
BEACH, FOREST, SNOW = (EXAMPLES / f"red_ball_{n}.png" for n in ("beach", "forest", "snow"))
TWO = "Image 1: <image>\nImage 2: <image>\nWhat is common?"
ONE = "<image>\nDescribe the picture."

pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------------------------- make_generation_config


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(max_new_tokens=0), "max_new_tokens.* must be greater than 0"),  # transformers' own check
        (dict(num_beams=0), "num_beams must be >= 1, got 0"),
        (dict(do_sample=True, temperature=0.0), "temperature must be > 0, got 0.0"),
        (dict(do_sample=True, temperature=-1.0), "temperature must be > 0"),
        (dict(do_sample=True, top_p=0.0), r"top_p must lie in \(0, 1\], got 0.0"),
        (dict(do_sample=True, top_p=1.5), r"top_p must lie in \(0, 1\], got 1.5"),
        (dict(repetition_penalty=0.0), "repetition_penalty must be > 0, got 0.0"),
    ],
)
def test_config_refuses_values_out_of_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_generation_config(**kwargs)


@pytest.mark.parametrize("kwargs", [dict(temperature=0.7), dict(top_p=0.9), dict(num_beams=3, temperature=0.5),
                                    dict(temperature=1.0), dict(top_p=1.0)])
def test_temperature_and_top_p_without_sampling_are_refused(kwargs):
    """Greedy and beam search ignore them: a run given them without --sample would look sampled and not be (even
    at 1.0, which transformers' own validation lets through)."""
    with pytest.raises(ValueError, match=r"\(--temperature, --top-p\) apply only when sampling: add --sample"):
        make_generation_config(**kwargs)


def test_config_defaults_and_sampling_fields():
    default = make_generation_config()
    assert isinstance(default, GenerationConfig)
    assert (default.max_new_tokens, default.num_beams, default.do_sample, default.repetition_penalty) == (64, 1, False,
                                                                                                          1.0)
    assert default.temperature is None and default.top_p is None and default.pad_token_id is None
    beams = make_generation_config(max_new_tokens=5, num_beams=2, repetition_penalty=1.2)
    assert (beams.max_new_tokens, beams.num_beams, beams.repetition_penalty) == (5, 2, 1.2)
    sampled = make_generation_config(do_sample=True, temperature=0.7, top_p=0.9)
    assert sampled.do_sample is True and (sampled.temperature, sampled.top_p) == (0.7, 0.9)
    plain = make_generation_config(do_sample=True)  # 1.0 set, not left to the model's generation config
    assert (plain.temperature, plain.top_p) == (1.0, 1.0)


# --------------------------------------------------------------------------------------------- answer


@pytest.fixture(scope="module")
def tiny():
    return load("tiny")  # float32, eval mode; read-only below


def test_answer_gives_one_string_per_prompt(tiny):
    model, processor = tiny
    config = make_generation_config(max_new_tokens=6)
    one = answer(model, processor, ONE, [BEACH], config)
    assert isinstance(one, list) and len(one) == 1 and isinstance(one[0], str)
    two = answer(model, processor, TWO, [BEACH, FOREST], config)
    assert len(two) == 1 and isinstance(two[0], str)
    batch = answer(model, processor, [TWO, ONE, TWO], [[BEACH, FOREST], [SNOW], [FOREST, SNOW]], config)
    assert len(batch) == 3 and all(isinstance(t, str) for t in batch)


def test_a_padded_batch_answers_as_each_prompt_alone_in_float32(tiny):
    """Left padding, different prompt lengths and image counts in one batch: the same strings as one at a time."""
    model, processor = tiny
    assert next(model.parameters()).dtype == torch.float32
    config = make_generation_config(max_new_tokens=8)
    prompts, images = [TWO, ONE, TWO + " Answer briefly."], [[BEACH, FOREST], [SNOW], [FOREST, SNOW]]
    alone = [answer(model, processor, p, im, config)[0] for p, im in zip(prompts, images)]
    assert answer(model, processor, prompts, images, config) == alone
    assert len(set(alone)) > 1  # the random `tiny` still tells these inputs apart: the comparison means something


def test_the_static_cache_loop_and_plain_generate_give_the_same_answer(tiny):
    model, processor = tiny
    config = make_generation_config(max_new_tokens=8)
    args = (model, processor, [TWO, ONE], [[BEACH, FOREST], [SNOW]], config)
    assert answer(*args, fast_greedy=True) == answer(*args, fast_greedy=False)
    assert config.pad_token_id is None  # `answer` set the processor's on a copy


@pytest.mark.parametrize(
    "config, fast",
    [
        (make_generation_config(max_new_tokens=5), True),
        (make_generation_config(max_new_tokens=5, do_sample=True), False),
        (make_generation_config(max_new_tokens=5, num_beams=2), False),
        (make_generation_config(max_new_tokens=5, repetition_penalty=1.3), False),
    ],
)
def test_only_a_plain_greedy_config_takes_the_static_cache_loop(tiny, monkeypatch, config, fast):
    import mmlink.models.decoding as decoding

    lm = tiny[0].language_model
    eos, pad = (lm.generation_config.eos_token_id,), lm.generation_config.pad_token_id
    # eos and pad come from the LLM's own generation config where the passed one leaves them unset, as in generate
    assert greedy_plan(lm, {}, config) == (GreedyPlan(5, 0, eos, pad) if fast else None)
    assert greedy_plan(lm, dict(pad_token_id=7), config) == (GreedyPlan(5, 0, eos, 7) if fast else None)
    assert greedy_plan(lm, dict(do_sample=True), config) is None  # the call's kwargs override the config
    calls = []
    real = decoding.greedy_decode
    monkeypatch.setattr(decoding, "greedy_decode", lambda *a, **k: calls.append(1) or real(*a, **k))
    answer(*tiny, ONE, [BEACH], config)
    assert calls == ([1] if fast else [])


def test_answer_is_deterministic_and_sampling_follows_the_seed(tiny):
    model, processor = tiny
    greedy = make_generation_config(max_new_tokens=8)
    assert answer(model, processor, ONE, [BEACH], greedy) == answer(model, processor, ONE, [BEACH], greedy)
    config = make_generation_config(max_new_tokens=12, do_sample=True, temperature=1.5)

    def sampled(seed):
        return answer(model, processor, ONE, [BEACH], config, seed=seed)[0]

    torch.manual_seed(123)  # the global state before the call does not matter: `answer` seeds from ``seed``
    first = sampled(0)
    assert sampled(0) == first
    assert any(sampled(s) != first for s in (1, 2, 3))


def test_answer_casts_the_pixels_to_the_model_dtype():
    model, processor = load("tiny", dtype=torch.bfloat16)
    (text,) = answer(model, processor, ONE, [BEACH], make_generation_config(max_new_tokens=4))
    assert isinstance(text, str)


# --------------------------------------------------------------------------------------------- run


@pytest.fixture
def no_loading(monkeypatch):
    """Fail the test if `run` gets as far as loading a model."""
    import mmlink.models

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(mmlink.models, "load", refuse)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(device="tpu"), r"--device 'tpu': use cpu, cuda or cuda:N"),
        (dict(device="cuda:x"), r"--device 'cuda:x': use cpu, cuda or cuda:N"),
        (dict(dtype="float64"), "float64"),
        (dict(images=[]), "give at least one --image"),
        (dict(prompt="   "), r"the prompt is empty \(--prompt\)"),
    ],
)
def test_run_refuses_bad_arguments_before_loading_the_model(no_loading, kwargs, message):
    args = dict(model="tiny", images=[str(BEACH)], prompt=ONE, dtype="float32", device="cpu",
                generation_config=make_generation_config(max_new_tokens=2))
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        run(**args)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_run_on_cuda_without_cuda_is_a_value_error(no_loading):
    with pytest.raises(ValueError, match="CUDA is not available on this machine"):
        run("tiny", [str(BEACH)], ONE, make_generation_config(max_new_tokens=2), device="cuda")


def test_run_answers_as_answer_does_on_the_prepared_model(tiny):
    config = make_generation_config(max_new_tokens=8, do_sample=True)
    text = run("tiny", [str(BEACH), str(FOREST)], TWO, config, seed=3, dtype="float32", device="cpu")
    model, processor = tiny
    assert text == answer(model, processor, TWO, [BEACH, FOREST], config, seed=3)[0]
