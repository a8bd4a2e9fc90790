"""Multi-image generation: load a model, encode images + prompt, decode the answer."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Sequence

import torch
from transformers import GenerationConfig

from mmlink.runtime import choose_dtype, resolve_device

if TYPE_CHECKING:
    from mmlink.aio import AioResult


def make_generation_config(max_new_tokens: int = 64, num_beams: int = 1, do_sample: bool = False,
                           temperature: float | None = None, top_p: float | None = None,
                           repetition_penalty: float = 1.0) -> GenerationConfig:
    """transformers' `GenerationConfig` for decoding settings a user gave (``mmlink generate``'s flags); a bad one
    is a ValueError naming it. ``num_beams > 1`` is beam search; ``do_sample`` samples with ``temperature`` and
    ``top_p`` (None: 1.0, the model's distribution as it is), which only sampling may be given.

    transformers refuses ``max_new_tokens < 1`` itself; the ranges checked here it accepts, and ``generate`` fails on
    them only after the model has loaded (``num_beams < 1`` as a ZeroDivisionError or a RuntimeError)."""
    if num_beams < 1:
        raise ValueError(f"num_beams must be >= 1, got {num_beams}")
    if temperature is not None and temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must lie in (0, 1], got {top_p}")
    if repetition_penalty <= 0:
        raise ValueError(f"repetition_penalty must be > 0, got {repetition_penalty}")
    if not do_sample and (temperature is not None or top_p is not None):
        # greedy and beam search ignore both: taking them silently would make a run look sampled
        raise ValueError("temperature and top_p (--temperature, --top-p) apply only when sampling: add --sample")
    if do_sample:  # set, not left to the model's own generation config, which could change what --sample means
        temperature = 1.0 if temperature is None else temperature
        top_p = 1.0 if top_p is None else top_p
    config = GenerationConfig(max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=do_sample,
                              temperature=temperature, top_p=top_p, repetition_penalty=repetition_penalty)
    config.validate(strict=True)  # what transformers would only log (a flag this mode ignores) is an error here
    return config


@torch.inference_mode()
def answer(model, processor, prompts, images=None, generation_config: GenerationConfig | None = None, seed: int = 0,
           fast_greedy: bool = True) -> list[str]:
    """Answer one or several prompts (see `MmlinkQFormerProcessor` for the accepted forms) → list of strings.

    ``generation_config``: how to decode (None: `make_generation_config`'s defaults, greedy); the processor's pad
    token is set on a copy. ``seed`` seeds torch's generator first, which matters only when sampling."""
    config = make_generation_config() if generation_config is None else copy.deepcopy(generation_config)
    config.pad_token_id = processor.pad_token_id
    batch = processor(prompts, images, padding_side="left")
    dtype = next(model.parameters()).dtype
    device = next(model.parameters()).device
    batch = batch.to(device, dtype=dtype)  # BatchFeature casts the floating tensors only (pixel values)
    torch.manual_seed(seed)
    out = model.generate(**batch, generation_config=config, fast_greedy=fast_greedy)
    return processor.batch_decode(out)


def run(
    model: str,
    images: Sequence[str],
    prompt: str,
    generation_config: GenerationConfig | None = None,
    seed: int = 0,
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto",
    sam_mode: str | None = None,
    quantize: str = "none",
    fast_greedy: bool = True,
    aio=None,
    device: str | None = None,
) -> str | tuple[str, "AioResult"]:
    """Load ``model`` (preset or directory) and answer ``prompt`` about ``images`` (file paths), decoding per
    ``generation_config`` and ``seed`` (see `answer`).

    ``dtype``: see `mmlink.runtime.choose_dtype` (``auto``: bfloat16 where the hardware computes it natively).
    ``aio``: an `mmlink.aio.AioSettings` — optimize the instruction first (VisLingInstruct's AIO) and return
    ``(answer, AioResult)``. ``device``: cpu, cuda, cuda:N (`mmlink.runtime.resolve_device`; None: cuda when
    available)."""
    from mmlink.models import load
    from mmlink.models.decoding import ready_for_inference

    if not images:
        raise ValueError("give at least one --image")
    if not prompt.strip():
        raise ValueError("the prompt is empty (--prompt)")
    if aio is not None:
        from mmlink.aio import split_prompt

        split_prompt(prompt)  # a prompt with no instruction fails before the model is loaded
    device = resolve_device(device)  # a bad device and unknown dtype names fail before the model is loaded
    choice = choose_dtype(dtype, device)
    overrides = {} if sam_mode is None else {"sam_mode": sam_mode}
    m, processor = load(model, **overrides)
    m.to(device)
    ready_for_inference(m, choice.dtype, quantize, fast_greedy)
    paths = [Path(p) for p in images]
    if aio is None:
        return answer(m, processor, prompt, paths, generation_config, seed, fast_greedy)[0]
    from mmlink.aio import optimize

    (result,) = optimize(m, processor, [prompt], [paths], aio)
    return answer(m, processor, result.prompt, paths, generation_config, seed, fast_greedy)[0], result
