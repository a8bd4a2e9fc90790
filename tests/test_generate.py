"""`mmlink.generate`: decoding settings, `answer` (prompts + images → strings), `run` (`mmlink generate`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmlink.generate import GenerationSettings, answer, run
from mmlink.models import load

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "images"
BEACH, FOREST, SNOW = (EXAMPLES / f"red_ball_{n}.png" for n in ("beach", "forest", "snow"))
TWO = "Image 1: <image>\nImage 2: <image>\nWhat is common?"
ONE = "<image>\nDescribe the picture."

pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------------------------- GenerationSettings


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(max_new_tokens=0), "max_new_tokens must be >= 1, got 0"),
        (dict(num_beams=0), "num_beams must be >= 1, got 0"),
        (dict(do_sample=True, temperature=0.0), "temperature must be > 0, got 0.0"),
        (dict(do_sample=True, temperature=-1.0), "temperature must be > 0"),
        (dict(do_sample=True, top_p=0.0), r"top_p must lie in \(0, 1\], got 0.0"),
        (dict(do_sample=True, top_p=1.5), r"top_p must lie in \(0, 1\], got 1.5"),
        (dict(repetition_penalty=0.0), "repetition_penalty must be > 0, got 0.0"),
    ],
)
def test_settings_refuse_values_out_of_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GenerationSettings(**kwargs)


@pytest.mark.parametrize("kwargs", [dict(temperature=0.7), dict(top_p=0.9), dict(num_beams=3, temperature=0.5)])
def test_temperature_and_top_p_without_sampling_are_refused(kwargs):
    """Greedy and beam search ignore them: a run given them without --sample would look sampled and not be."""
    with pytest.raises(ValueError, match=r"apply only when sampling: add --sample"):
        GenerationSettings(**kwargs)


def test_generate_kwargs_pass_temperature_and_top_p_only_when_sampling():
    greedy = GenerationSettings(max_new_tokens=5, num_beams=2, repetition_penalty=1.2).generate_kwargs(pad_token_id=7)
    assert greedy == dict(max_new_tokens=5, num_beams=2, do_sample=False, repetition_penalty=1.2, pad_token_id=7)
    sampled = GenerationSettings(do_sample=True, temperature=0.7, top_p=0.9).generate_kwargs(pad_token_id=0)
    assert sampled["do_sample"] is True and (sampled["temperature"], sampled["top_p"]) == (0.7, 0.9)
    assert GenerationSettings() == GenerationSettings(max_new_tokens=64, num_beams=1, do_sample=False)  # the defaults


# --------------------------------------------------------------------------------------------- answer


@pytest.fixture(scope="module")
def tiny():
    return load("tiny")  # float32, eval mode; read-only below


def test_answer_gives_one_string_per_prompt(tiny):
    model, processor = tiny
    settings = GenerationSettings(max_new_tokens=6)
    one = answer(model, processor, ONE, [BEACH], settings)
    assert isinstance(one, list) and len(one) == 1 and isinstance(one[0], str)
    two = answer(model, processor, TWO, [BEACH, FOREST], settings)
    assert len(two) == 1 and isinstance(two[0], str)
    batch = answer(model, processor, [TWO, ONE, TWO], [[BEACH, FOREST], [SNOW], [FOREST, SNOW]], settings)
    assert len(batch) == 3 and all(isinstance(t, str) for t in batch)


def test_a_padded_batch_answers_as_each_prompt_alone_in_float32(tiny):
    """Left padding, different prompt lengths and image counts in one batch: the same strings as one at a time."""
    model, processor = tiny
    assert next(model.parameters()).dtype == torch.float32
    settings = GenerationSettings(max_new_tokens=8)
    prompts, images = [TWO, ONE, TWO + " Answer briefly."], [[BEACH, FOREST], [SNOW], [FOREST, SNOW]]
    alone = [answer(model, processor, p, im, settings)[0] for p, im in zip(prompts, images)]
    assert answer(model, processor, prompts, images, settings) == alone
    assert len(set(alone)) > 1  # the random `tiny` still tells these inputs apart: the comparison means something


def test_the_static_cache_loop_and_plain_generate_give_the_same_answer(tiny):
    model, processor = tiny
    settings = GenerationSettings(max_new_tokens=8)
    args = (model, processor, [TWO, ONE], [[BEACH, FOREST], [SNOW]], settings)
    assert answer(*args, fast_greedy=True) == answer(*args, fast_greedy=False)


def test_answer_is_deterministic_and_sampling_follows_the_seed(tiny):
    model, processor = tiny
    greedy = GenerationSettings(max_new_tokens=8)
    assert answer(model, processor, ONE, [BEACH], greedy) == answer(model, processor, ONE, [BEACH], greedy)

    def sampled(seed):
        settings = GenerationSettings(max_new_tokens=12, do_sample=True, temperature=1.5, seed=seed)
        return answer(model, processor, ONE, [BEACH], settings)[0]

    torch.manual_seed(123)  # the global state before the call does not matter: `answer` seeds from the settings
    first = sampled(0)
    assert sampled(0) == first
    assert any(sampled(s) != first for s in (1, 2, 3))


def test_answer_casts_the_pixels_to_the_model_dtype():
    model, processor = load("tiny", dtype=torch.bfloat16)
    (text,) = answer(model, processor, ONE, [BEACH], GenerationSettings(max_new_tokens=4))
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
    args = dict(model="tiny", images=[str(BEACH)], prompt=ONE, settings=GenerationSettings(max_new_tokens=2),
                dtype="float32", device="cpu")
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        run(**args)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_run_on_cuda_without_cuda_is_a_value_error(no_loading):
    with pytest.raises(ValueError, match="CUDA is not available on this machine"):
        run("tiny", [str(BEACH)], ONE, GenerationSettings(max_new_tokens=2), device="cuda")


def test_run_answers_as_answer_does_on_the_prepared_model(tiny):
    settings = GenerationSettings(max_new_tokens=8)
    text = run("tiny", [str(BEACH), str(FOREST)], TWO, settings, dtype="float32", device="cpu")
    model, processor = tiny
    assert text == answer(model, processor, TWO, [BEACH, FOREST], settings)[0]
