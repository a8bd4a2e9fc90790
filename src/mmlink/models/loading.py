"""Load and save checkpoints of both families: mmlink directories, InstructBLIP and LLaVA directories.

The on-disk forms understood:

* **mmlink full** — ``config.json`` (``model_type: mmlink_qformer``) + safetensors weights + ``tokenizer/`` +
  ``qformer_tokenizer/`` + ``preprocessor_config.json`` (written by ``save_pretrained``);
* **mmlink trainable-only** — ``mmlink_delta.json`` naming the base (a preset or a directory) and the settings,
  plus ``trainable.safetensors`` holding only the parameters that were trained. A directory base is stored as
  ``base`` relative to the delta's own directory, ``base_absolute`` (where it was when the delta was written) and
  ``base_fingerprint`` (`weights_fingerprint`); see `base_reference` and `resolve_base`;
* **InstructBLIP** — a directory written by ``InstructBlipForConditionalGeneration.save_pretrained`` (its LLM
  tokenizer at the top, its Q-Former tokenizer in ``qformer_tokenizer/``). SAM's new layers start at zero, so
  the loaded model computes exactly what the InstructBLIP model computes;
* **LLaVA** — a directory in the ``llava-hf/llava-1.5-7b-hf`` layout (``model_type: llava``) or mmlink's own LLaVA
  save (``model_type: mmlink_llava``); the model is transformers' LLaVA (`mmlink.models.llava`).

Any of them may be a model-only save (``save_pretrained`` of the model alone, no tokenizer files): the model loads
and the processor is None.

Weights are read with safetensors only; nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save
from transformers import AutoTokenizer, CLIPImageProcessorPil, InstructBlipConfig, LlavaConfig
from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil
from transformers.utils import logging as hf_logging

from mmlink.fileio import atomic_write
from mmlink.models.llava import MmlinkLlavaConfig, MmlinkLlavaForConditionalGeneration, MmlinkLlavaProcessor
from mmlink.models.qformer import MmlinkQFormerConfig, MmlinkQFormerForConditionalGeneration
from mmlink.models.qformer.processing import MmlinkQFormerProcessor

DELTA_CONFIG = "mmlink_delta.json"
DELTA_WEIGHTS = "trainable.safetensors"
DELTA_FORMAT = 1
# Settings a trainable-only checkpoint may change relative to its base.
SETTING_KEYS = ("sam_mode", "sam_context_pool", "sam_guide_layer", "sam_context_layer", "cmaa", "cmaa_text",
                "cmaa_scale", "max_images")
_LOAD_KWARGS = ("dtype", "device_map", "attn_implementation")
PROCESSOR_CONFIG = "processor_config.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.txt", "vocab.json")


def check_overrides(overrides: dict, extra: tuple[str, ...] = (), config_class=MmlinkQFormerConfig) -> None:
    """Unknown override keys are errors (a typo must not be stored silently as a config attribute)."""
    valid = set(config_class.__annotations__) | set(_LOAD_KWARGS) | set(extra)
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ValueError(f"unknown override(s) {unknown}; valid: {sorted(valid)}")


def _split_overrides(overrides: dict, config_class=MmlinkQFormerConfig) -> tuple[dict, dict]:
    """Separate config overrides from loader keyword arguments; unknown keys are errors."""
    check_overrides(overrides, config_class=config_class)
    config_kw = {k: v for k, v in overrides.items() if k not in _LOAD_KWARGS}
    return config_kw, {k: v for k, v in overrides.items() if k in _LOAD_KWARGS}


def _load_weights(path: Path, config, load_kw: dict, model_class=MmlinkQFormerForConditionalGeneration):
    """``from_pretrained`` with a strict check: only SAM's layers may be absent (they start at zero) or extra."""
    if not any(path.glob("*.safetensors")):
        found = sorted(p.name for p in path.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
        raise ValueError(
            f"{path}: no safetensors weights{f' (found {found})' if found else ''}; mmlink never unpickles weights — "
            "convert them with safetensors first"
        )
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the expected SAM gaps are reported by us, precisely, below
    try:
        model, info = model_class.from_pretrained(
            path, config=config, output_loading_info=True, use_safetensors=True, **load_kw
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    missing = [k for k in info["missing_keys"] if not k.startswith("sam.")]
    unexpected = [k for k in info["unexpected_keys"] if not k.startswith("sam.")]
    mismatched = info.get("mismatched_keys") or []
    if missing or unexpected or mismatched:
        raise ValueError(
            f"{path}: checkpoint does not match its config (missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"mismatched {list(mismatched)[:5]})"
        )
    return model.eval()


def _has_tokenizer(directory: Path) -> bool:
    return directory.is_dir() and any((directory / f).exists() for f in TOKENIZER_FILES)


def _load_llava_processor(path: Path, config: MmlinkLlavaConfig) -> MmlinkLlavaProcessor | None:
    """mmlink's own save (``processor_config.json`` naming `MmlinkLlavaProcessor`), else a llava-hf directory's
    tokenizer and image processor with the settings from the config; None for a model-only save."""
    processor_config = path / PROCESSOR_CONFIG
    if processor_config.exists() and json.loads(processor_config.read_text()).get("processor_class") == (
        MmlinkLlavaProcessor.__name__
    ):
        return MmlinkLlavaProcessor.from_pretrained(path)
    if not _has_tokenizer(path):
        return None
    image_processor = None
    if (path / "preprocessor_config.json").exists():
        image_processor = CLIPImageProcessorPil.from_pretrained(path)
    return MmlinkLlavaProcessor.from_config(config, AutoTokenizer.from_pretrained(path), image_processor)


def _load_processor(path: Path, config: MmlinkQFormerConfig, tokenizer_dir: Path, own_save: bool):
    """The processor saved beside the weights: ``processor_config.json`` (mmlink's `ProcessorMixin` save), else the
    tokenizers in ``tokenizer_dir`` (InstructBLIP: the checkpoint's top; older mmlink saves: ``tokenizer/``) and
    ``qformer_tokenizer/`` with the image processor from ``preprocessor_config.json`` or the config. A model-only
    directory (no tokenizer files at all) gives None."""
    if own_save and (path / PROCESSOR_CONFIG).exists():
        return MmlinkQFormerProcessor.from_pretrained(path)
    if not _has_tokenizer(tokenizer_dir) and not (path / "qformer_tokenizer").is_dir():
        return None
    for directory in (tokenizer_dir, path / "qformer_tokenizer"):
        if not _has_tokenizer(directory):
            raise ValueError(f"{path}: checkpoint has no tokenizer in {directory.relative_to(path)}/")
    image_processor = None
    if (path / "preprocessor_config.json").exists():
        image_processor = BlipImageProcessorPil.from_pretrained(path)
    return MmlinkQFormerProcessor.from_config(
        config,
        AutoTokenizer.from_pretrained(tokenizer_dir),
        AutoTokenizer.from_pretrained(path / "qformer_tokenizer"),
        image_processor,
    )


def load_checkpoint(path: str | os.PathLike, **overrides):
    """Load a checkpoint directory (any of the three forms) → ``(model, processor)``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint directory not found: {path}")
    if not path.is_dir():
        raise ValueError(f"{path} is not a directory; pass a preset name or a checkpoint directory")
    if (path / DELTA_CONFIG).exists():
        return _load_delta(path, **overrides)
    if not (path / "config.json").exists():
        raise ValueError(f"{path} is not a checkpoint: it has no config.json or {DELTA_CONFIG}")
    try:
        raw = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path / 'config.json'} is not valid JSON: {err}") from None
    model_type = raw.get("model_type")
    if model_type in ("llava", MmlinkLlavaConfig.model_type):
        config_kw, load_kw = _split_overrides(overrides, MmlinkLlavaConfig)
        if model_type == "llava":
            config = MmlinkLlavaConfig.from_llava(LlavaConfig.from_pretrained(path), **config_kw)
        else:
            config = MmlinkLlavaConfig.from_dict({**raw, **config_kw})
        model = _load_weights(path, config, load_kw, MmlinkLlavaForConditionalGeneration)
        processor = _load_llava_processor(path, config)
    elif model_type == "instructblip":
        config_kw, load_kw = _split_overrides(overrides)
        config = MmlinkQFormerConfig.from_instructblip(InstructBlipConfig.from_pretrained(path), **config_kw)
        model = _load_weights(path, config, load_kw)
        processor = _load_processor(path, config, tokenizer_dir=path, own_save=False)
    elif model_type == MmlinkQFormerConfig.model_type:
        config_kw, load_kw = _split_overrides(overrides)
        # Through the constructor, so that overrides are validated like any other setting.
        config = MmlinkQFormerConfig.from_dict({**raw, **config_kw})
        model = _load_weights(path, config, load_kw)
        legacy = path / "tokenizer"  # saves before the ProcessorMixin processors kept the LLM tokenizer here
        processor = _load_processor(path, config, tokenizer_dir=legacy if legacy.is_dir() else path, own_save=True)
    else:
        raise ValueError(
            f"{path}: model_type {model_type!r} is not supported (expected 'instructblip', "
            f"{MmlinkQFormerConfig.model_type!r}, 'llava' or {MmlinkLlavaConfig.model_type!r})"
        )
    if isinstance(processor, MmlinkQFormerProcessor):  # a CMAA override changes the placeholders per image
        processor.num_query_tokens = config.image_seq_length
    if processor is None:
        print(f"mmlink: {path} is a model-only save (no tokenizer files): the processor is None", file=sys.stderr)
    model.mmlink_source = str(path.resolve())
    return model, processor


def delta_settings(config) -> dict:
    """The settings a trainable-only save records (those of `SETTING_KEYS` the model's family has)."""
    return {k: getattr(config, k) for k in SETTING_KEYS if hasattr(config, k)}


def save_trainable(model, directory: str | os.PathLike, base: str | None = None):
    """Save only the parameters with ``requires_grad`` plus a reference to the base model.

    ``base`` is a preset name or checkpoint directory; defaults to where ``model`` was loaded from.
    """
    base = base or getattr(model, "mmlink_source", None)
    if not base:
        raise ValueError("save_trainable needs `base`: the preset or directory this model was loaded from")
    state = {k: v.detach().contiguous().cpu() for k, v in model.named_parameters() if v.requires_grad}
    if not state:
        raise ValueError("the model has no trainable parameters; call model.set_trainable(...) first")
    write_delta(directory, state, base, model.config)


def write_delta(directory: str | os.PathLike, state: dict[str, torch.Tensor], base: str, config,
                **extra) -> Path:
    """The trainable-only form: ``trainable.safetensors`` (``state``) and ``mmlink_delta.json`` naming ``base``
    and the settings of ``config`` that differ from it (``extra``: more keys, e.g. a LoRA ``adapter`` directory).
    The one writer of the format, for `save_trainable` and the training loop's checkpoints."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(directory / DELTA_WEIGHTS, save(state, metadata={"format": "pt"}))
    meta = {
        "format": DELTA_FORMAT,
        **base_reference(base, directory),
        "settings": delta_settings(config),
        "parameters": sum(v.numel() for v in state.values()),
        **extra,
    }
    atomic_write(directory / DELTA_CONFIG, json.dumps(meta, indent=2) + "\n")
    return directory


FINGERPRINT_BYTES = 1 << 20


def weights_fingerprint(directory: str | os.PathLike) -> str | None:
    """A cheap identity of a model directory's weights: sha256 over each ``*.safetensors`` file's relative name,
    size, first MiB and last MiB (the first MiB holds the safetensors header: every tensor's name, dtype, shape and
    offset). Reads at most 2 MiB per file whatever the model's size; None when there are no such files.

    It tells "the same files" from "other weights" (another training run, another model, a re-save in another
    dtype); it is not a cryptographic digest of every byte."""
    directory = Path(directory)
    files = sorted(p for p in directory.rglob("*.safetensors")
                   if not any(part.startswith(".") for part in p.relative_to(directory).parts))
    if not files:
        return None
    digest = hashlib.sha256()
    for file in files:
        size = file.stat().st_size
        digest.update(f"{file.relative_to(directory).as_posix()}\0{size}\0".encode())
        with open(file, "rb") as fh:
            digest.update(fh.read(FINGERPRINT_BYTES))
            if size > FINGERPRINT_BYTES:
                fh.seek(max(FINGERPRINT_BYTES, size - FINGERPRINT_BYTES))
                digest.update(fh.read())
    return "sha256:" + digest.hexdigest()


def base_reference(base: str | os.PathLike, directory: str | os.PathLike) -> dict:
    """The ``base*`` entries of ``mmlink_delta.json`` for a delta written to ``directory``.

    A preset (any ``base`` that is not an existing path) is stored by name. A directory is stored three ways, so that
    the delta survives moves: ``base`` relative to ``directory`` (move the delta and its base together, e.g. a whole
    runs/ tree), ``base_absolute`` (move the delta alone) and ``base_fingerprint`` (`weights_fingerprint`: whichever
    path is found must hold the weights the delta was trained on)."""
    if not Path(base).exists():
        return {"base": str(base)}
    absolute = Path(base).resolve()
    try:
        relative = os.path.relpath(absolute, Path(directory).resolve())
    except ValueError:  # another drive (Windows): no relative path exists
        relative = str(absolute)
    return {"base": Path(relative).as_posix(), "base_absolute": str(absolute),
            "base_fingerprint": weights_fingerprint(absolute)}


def resolve_base(path: Path, meta: dict) -> str:
    """The base a delta directory ``path`` names (its ``mmlink_delta.json`` read into ``meta``): a preset name or a
    directory. Tried in order: ``base`` (relative to ``path`` unless absolute), ``base_absolute``, and for deltas
    written before those existed ``base`` relative to the working directory; the first that exists and — when the
    delta records a fingerprint — holds the same weights wins. None found is an error naming ``path``, every place
    looked and the fix."""
    from mmlink.models.presets import PRESETS

    base = str(meta["base"])
    if "base_absolute" not in meta and base in PRESETS and not (path / base).exists():
        return base
    candidates = [Path(base) if Path(base).is_absolute() else path / base]
    if meta.get("base_absolute"):
        candidates.append(Path(meta["base_absolute"]))
    if not Path(base).is_absolute() and "base_absolute" not in meta:
        candidates.append(Path(base))  # older deltas: a relative base meant the working directory
    expected = meta.get("base_fingerprint")
    looked, differs = [], []
    for candidate in candidates:
        if str(candidate) in looked:
            continue
        looked.append(str(candidate))
        if not candidate.exists():
            continue
        if expected and weights_fingerprint(candidate) != expected:
            differs.append(str(candidate))
            continue
        return str(candidate)
    config = path / DELTA_CONFIG
    if differs:
        raise ValueError(
            f"{path}: its base {differs[0]} holds other weights than the model this checkpoint was trained from "
            f"(their fingerprint differs from base_fingerprint in {config}). Put the original base back, or set "
            f"\"base\" in {config} to it; if {differs[0]} is the right base after all (e.g. re-saved), delete "
            f"\"base_fingerprint\" from {config}")
    raise FileNotFoundError(
        f"{path}: its base is missing: looked for {' and '.join(looked)} (\"base\": {base!r} in {config}). Move "
        f"the base back (keep a checkpoint and its base together to keep the relative path valid), or set \"base\" "
        f"in {config} to where it is now (a preset name, or a path absolute or relative to {path})")


def _load_delta(path: Path, **overrides):
    from mmlink.models import load

    try:
        meta = json.loads((path / DELTA_CONFIG).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path / DELTA_CONFIG} is not valid JSON: {err}") from None
    if meta.get("format") != DELTA_FORMAT or "base" not in meta:
        raise ValueError(f"{path / DELTA_CONFIG}: unsupported format {meta.get('format')!r} (expected {DELTA_FORMAT})")
    base = resolve_base(path, meta)
    settings = {**meta.get("settings", {}), **overrides}
    model, processor = load(base, **settings)
    weights = path / DELTA_WEIGHTS
    if not weights.exists():
        raise FileNotFoundError(f"{path}: {DELTA_WEIGHTS} is missing")
    state = load_file(weights)
    own = model.state_dict()
    if getattr(model.config, "sam_mode", None) == "none":  # SAM switched off: its trained linears have nowhere to go, by request
        state = {k: v for k, v in state.items() if not k.startswith("sam.")}
    bad = [k for k in state if k not in own or own[k].shape != state[k].shape]
    if bad:
        raise ValueError(f"{weights}: parameters {bad[:5]} do not fit base {base!r}")
    with torch.no_grad():
        for k, v in state.items():
            own[k].copy_(v)
    if meta.get("adapter"):  # a LoRA run: its adapter directory (peft) beside the delta
        model = merge_adapter(model, path / meta["adapter"])
    model.mmlink_source = str(path.resolve())
    return model, processor


def merge_adapter(model, directory: Path):
    """Apply the PEFT (LoRA) adapter saved in ``directory`` and merge it into the weights (peft's
    ``merge_and_unload``): the result is the plain model computing what base + adapter computes, so decoding,
    quantization and serving need nothing peft-specific. ``requires_grad`` flags stay as they were."""
    from peft import PeftModel

    if not (directory / "adapter_config.json").exists():
        raise FileNotFoundError(f"{directory}: the PEFT adapter named by {DELTA_CONFIG} is missing")
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    model = PeftModel.from_pretrained(model, directory).merge_and_unload()
    for name, p in model.named_parameters():  # PeftModel froze everything
        p.requires_grad_(flags[name])
    return model


__all__ = ["load_checkpoint", "save_trainable", "base_reference", "resolve_base", "weights_fingerprint",
           "DELTA_CONFIG", "DELTA_WEIGHTS"]
