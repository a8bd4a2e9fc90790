"""Multi-image generation: load a model, encode images + prompt, decode the answer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Sequence

import torch

from mmlink.runtime import choose_dtype, resolve_device

if TYPE_CHECKING:
    from mmlink.aio import AioResult


@dataclass
class GenerationSettings:
    """Decoding settings; ``num_beams > 1`` is beam search, ``do_sample`` samples with temperature/top-p."""

    max_new_tokens: int = 64
    num_beams: int = 1
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int = 0

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.num_beams < 1:
            raise ValueError(f"num_beams must be >= 1, got {self.num_beams}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must lie in (0, 1], got {self.top_p}")
        if self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if not self.do_sample and (self.temperature != 1.0 or self.top_p != 1.0):
            # greedy and beam search ignore both: taking them silently would make a run look sampled
            raise ValueError("temperature and top_p (--temperature, --top-p) apply only when sampling: add --sample")

    def generate_kwargs(self, pad_token_id: int) -> dict:
        kw = dict(
            max_new_tokens=self.max_new_tokens,
            num_beams=self.num_beams,
            do_sample=self.do_sample,
            repetition_penalty=self.repetition_penalty,
            pad_token_id=pad_token_id,
        )
        if self.do_sample:
            kw.update(temperature=self.temperature, top_p=self.top_p)
        return kw


@torch.inference_mode()
def answer(model, processor, prompts, images=None, settings: GenerationSettings | None = None,
           fast_greedy: bool = True) -> list[str]:
    """Answer one or several prompts (see `MmlinkQFormerProcessor` for the accepted forms) → list of strings."""
    settings = settings or GenerationSettings()
    batch = processor(prompts, images, padding_side="left")
    dtype = next(model.parameters()).dtype
    device = next(model.parameters()).device
    batch = batch.to(device, dtype=dtype)  # BatchFeature casts the floating tensors only (pixel values)
    torch.manual_seed(settings.seed)
    out = model.generate(**batch, **settings.generate_kwargs(processor.pad_token_id), fast_greedy=fast_greedy)
    return processor.batch_decode(out)


def run(
    model: str,
    images: Sequence[str],
    prompt: str,
    settings: GenerationSettings,
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto",
    sam_mode: str | None = None,
    quantize: str = "none",
    fast_greedy: bool = True,
    aio=None,
    device: str | None = None,
) -> str | tuple[str, "AioResult"]:
    """Load ``model`` (preset or directory) and answer ``prompt`` about ``images`` (file paths).

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
        return answer(m, processor, prompt, paths, settings, fast_greedy=fast_greedy)[0]
    from mmlink.aio import optimize

    (result,) = optimize(m, processor, [prompt], [paths], aio)
    return answer(m, processor, result.prompt, paths, settings, fast_greedy=fast_greedy)[0], result
