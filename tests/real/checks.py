"""Checks of mmlink on real checkpoints and on CUDA, shared by the `hub`/`gpu`-marked tests and the default tests that
run the very same code on `tiny` directories on the CPU.

* `reference_parity` — a directory in transformers' InstructBLIP or LLaVA layout, loaded by transformers and by
  mmlink: equal logits on the same tensors, and the same greedy tokens;
* `two_images` — mmlink answers one prompt over two images (something transformers' InstructBLIP cannot take);
* `sam_is_base_at_init` — SAM's layers start at zero: with SAM on, the logits equal SAM off;
* `batch_matches_single` — a left-padded batch generates what each prompt alone does;
* `stage2_step` — one optimizer step of the Stage-2 recipe (SAM layers + projection) changes exactly those weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from PIL import Image
from torch.testing import assert_close

# bf16/fp16 keep ~3 significant digits: logits of two implementations of the same network agree to this much
TOLERANCE = {torch.float32: dict(rtol=1e-4, atol=1e-4), torch.bfloat16: dict(rtol=3e-2, atol=3e-1),
             torch.float16: dict(rtol=1e-2, atol=5e-2)}


def model_type(path: str | Path) -> str:
    return json.loads((Path(path) / "config.json").read_text())["model_type"]


def picture(seed: int, size: int = 64) -> Image.Image:
    """A deterministic image with structure (gradients and a square), not noise."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(3, generator=g)
    ramp = torch.linspace(0, 1, size)
    pixels = (base[:, None, None] * 0.6 + 0.4 * ramp[None, :, None] * ramp[None, None, :]) * 255
    x0 = int(torch.randint(0, size // 2, (1,), generator=g))
    pixels[:, x0:x0 + size // 4, x0:x0 + size // 4] = 255 * torch.rand(3, 1, 1, generator=g)
    return Image.fromarray(pixels.permute(1, 2, 0).to(torch.uint8).numpy())


def reference_parity(path: str | Path, batch: dict, device: str = "cpu", dtype: torch.dtype = torch.float32,
                     max_new_tokens: int = 8) -> dict:
    """Load ``path`` with transformers and with mmlink, run both on ``batch`` (transformers' input names), and
    check the logits and the greedy continuation agree. Returns what was compared."""
    from transformers import InstructBlipForConditionalGeneration, LlavaForConditionalGeneration

    from mmlink.models import load

    kind = model_type(path)
    reference_class = {"instructblip": InstructBlipForConditionalGeneration,
                       "llava": LlavaForConditionalGeneration}[kind]
    ref = reference_class.from_pretrained(path, dtype=dtype).to(device).eval()
    model, _ = load(path, dtype=dtype)
    model = model.to(device).eval()
    batch = {k: (v.to(device, dtype) if v.is_floating_point() else v.to(device)) for k, v in batch.items()}
    with torch.inference_mode():
        expected, got = ref(**batch).logits, model(**batch).logits
        assert_close(got.float(), expected.float(), **TOLERANCE[dtype])
        kw = dict(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
        ref_tokens = ref.generate(**batch, **kw)
        our_tokens = model.generate(**batch, **kw)
    # transformers returns prompt + answer for a decoder-only LLM, mmlink the answer alone (as its callers use it)
    width = our_tokens.shape[1]
    assert torch.equal(our_tokens.cpu(), ref_tokens[:, -width:].cpu()), (our_tokens, ref_tokens)
    return {"kind": kind, "max_abs_diff": float((got.float() - expected.float()).abs().max()),
            "tokens": our_tokens.tolist()}


def two_images(path_or_preset, device: str = "cpu", dtype: torch.dtype = torch.float32, sam_mode=None,
               max_new_tokens: int = 8) -> str:
    """mmlink's answer to one prompt over two images: a non-empty string."""
    from mmlink.generate import answer, make_generation_config
    from mmlink.models import load

    overrides = {"dtype": dtype, **({"sam_mode": sam_mode} if sam_mode else {})}
    model, processor = load(path_or_preset, **overrides)
    model = model.to(device).eval()
    prompt = "Image 1: <image>\nImage 2: <image>\nWhat is different between the two images?"
    out = answer(model, processor, [prompt], [[picture(1), picture(2)]], make_generation_config(max_new_tokens))
    assert len(out) == 1 and isinstance(out[0], str)
    return out[0]


def sam_is_base_at_init(path_or_preset, device: str = "cpu", dtype: torch.dtype = torch.float32) -> float:
    """Largest logit difference between SAM on (its zero-initialised layers) and off over two images: 0."""
    from mmlink.models import load

    logits = []
    for mode in ("none", "bsg_adaptive"):
        model, processor = load(path_or_preset, dtype=dtype, sam_mode=mode)
        model = model.to(device).eval()
        batch = processor(["Image 1: <image>\nImage 2: <image>\nDescribe both."], [[picture(3), picture(4)]])
        batch = {k: (v.to(device, dtype) if v.is_floating_point() else v.to(device)) for k, v in batch.items()}
        with torch.inference_mode():
            logits.append(model(**batch).logits.float())
    diff = float((logits[0] - logits[1]).abs().max())
    assert diff == 0.0, diff
    return diff


def batch_matches_single(model, processor, max_new_tokens: int = 6) -> list[str]:
    """Greedy answers of three prompts with 1, 2 and 3 images in one left-padded batch equal each alone."""
    from mmlink.generate import answer, make_generation_config

    prompts = ["<image>\nWhat is this?", "Image 1: <image>\nImage 2: <image>\nCompare them.",
               "Image 1: <image>\nImage 2: <image>\nImage 3: <image>\nTell a story about these pictures."]
    images = [[picture(5)], [picture(6), picture(7)], [picture(8), picture(9), picture(10)]]
    config = make_generation_config(max_new_tokens)
    together = answer(model, processor, prompts, images, config)
    alone = [answer(model, processor, [p], [i], config)[0] for p, i in zip(prompts, images)]
    assert together == alone, (together, alone)
    return together


def stage2_step(data: str | Path, out: str | Path, model: str = "tiny", **overrides) -> dict:
    """One optimizer step of the Stage-2 recipe (SAM + projection trainable, the rest frozen): the trained weights
    change, the loss is finite, and the run finishes with its final checkpoint."""
    from safetensors.torch import load_file

    from mmlink.models import load
    from mmlink.train import TrainConfig, train

    base, _ = load(model, sam_mode="bsg_adaptive")
    config = TrainConfig(train_data=str(data), out_dir=str(out), model=model, sam_mode="bsg_adaptive",
                         trainable="sam", lr=1e-3, warmup_steps=0, max_steps=1, batch_size=2, eval_every=0,
                         sample_every=0, save_every=0, progress=False, log_every=1, **overrides)
    summary = train(config)
    trained = load_file(Path(out) / "final" / "trainable.safetensors")
    before = dict(base.named_parameters())
    changed = [k for k, v in trained.items() if not torch.equal(v.float(), before[k].detach().float().cpu())]
    assert changed, "no trainable weight changed in one step"
    assert all("sam" in k or "language_projection" in k for k in trained), sorted(trained)
    return {"summary": summary, "changed": len(changed), "trainable": len(trained)}


# ---------------------------------------------------------------------------- inputs for a real and a tiny directory


def processor_batch(path: str | Path, prompt: str = "What is in the image?") -> dict:
    """Inputs for one image and a prompt made by the directory's own transformers processor (real checkpoints)."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(path)
    if model_type(path) == "llava":
        prompt = f"USER: <image>\n{prompt} ASSISTANT:"
    return dict(processor(images=picture(0, 336), text=prompt, return_tensors="pt"))


def tiny_reference_dir(kind: str, path: Path) -> tuple[Path, dict]:
    """A random transformers InstructBLIP or LLaVA model saved in its hub layout, and inputs for it (tensors with
    the placeholder runs the model expects): the CPU stand-in for a real checkpoint."""
    from transformers import (CLIPImageProcessorPil, InstructBlipConfig, InstructBlipForConditionalGeneration,
                              LlavaConfig, LlavaForConditionalGeneration)

    from mmlink.models.presets import byte_tokenizer, tiny_llava_config

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    if kind == "instructblip":
        q, img = 4, 119
        config = InstructBlipConfig(
            vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                               image_size=28, patch_size=14),
            qformer_config=dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=64, max_position_embeddings=64, cross_attention_frequency=1),
            text_config=dict(model_type="llama", vocab_size=120, hidden_size=32, intermediate_size=64,
                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                             max_position_embeddings=128),
            num_query_tokens=q, image_token_index=img)
        ref = InstructBlipForConditionalGeneration(config).eval()
        with torch.no_grad():  # transformers starts the query tokens at zero; make them matter
            ref.query_tokens.normal_(generator=g)
        ids = torch.tensor([[5, 17, *[img] * q, 30, 41, 52]])
        batch = dict(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=torch.randn(1, 3, 28, 28,
                     generator=g), qformer_input_ids=torch.randint(1, 100, (1, 6), generator=g),
                     qformer_attention_mask=torch.ones(1, 6, dtype=torch.long))
        ref.save_pretrained(path)
        byte_tokenizer().save_pretrained(path)
        byte_tokenizer().save_pretrained(path / "qformer_tokenizer")
    else:
        from llava_reference import IMG, P, reference_config

        ref = LlavaForConditionalGeneration(reference_config()).eval()
        ids = torch.tensor([[1, 40, *[IMG] * P, 70, 71]])
        batch = dict(input_ids=ids, attention_mask=torch.ones_like(ids),
                     pixel_values=torch.randn(1, 3, 32, 32, generator=g))
        ref.save_pretrained(path)
        byte_tokenizer().save_pretrained(path)
        CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return path, batch
