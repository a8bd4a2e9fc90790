"""`TrainConfig`: every setting of a training run, typed, with the paper's recipe as defaults.

Load it from a YAML or JSON file (`TrainConfig.from_file`), override single fields with CLI flags
(`TrainConfig.from_file(file, overrides={"lr": "1e-4"})`), or build it from a mapping (`mmlink.settings.from_mapping`).
Unknown keys, wrong types and out-of-range values are ``ValueError``s naming the field (`mmlink.settings`) — a typo
never trains with a silent default.

Defaults follow SAM §5 / InstructBLIP: AdamW β=(0.9, 0.999), weight decay 0.05, lr 2e-5, 240 linear warm-up steps
then cosine decay to 0 at ``max_steps``, batch 20, gradient clipping at 1.0. Autocast: ``mixed_precision: auto``
(default) is bf16 only where the hardware computes bf16 natively, else none (`mmlink.runtime.choose_mixed_precision`).

``trainable`` is either a named policy or a tuple of parameter-name prefixes:

* ``sam`` (default) — SAM's recipe: only SAM's new linears and the projector (``sam.``, the model's
  ``projector_prefix``); vision encoder, Q-Former and LLM frozen;
* ``projection`` — the projector only (Q-Former family: ``language_projection.``; LLaVA family:
  ``model.multi_modal_projector.``);
* ``qformer`` — InstructBLIP's instruction-tuning recipe: query tokens, Q-Former, SAM layers and projector;
* ``all`` — every parameter;
* a list of prefixes, e.g. ``["sam.", "language_projection.", "qformer.encoder.layer.1."]`` (``<projector>`` stands
  for the model's projector prefix).

``lora`` (a `LoraSettings` mapping, default none) adds LoRA adapters (peft) to the LLM's linear layers — never to
the vision tower or the Q-Former; ``trainable`` then names what trains fully beside them (e.g. ``projection``), and
``projector_lr`` gives the projector its own learning rate (CaD-VI: LoRA 1e-4, projector 2e-5).

Relative input paths in a config file (``train_data``, ``val_data``, ``image_root``, ``model``) mean the config
file's directory when the path exists there, else the working directory (`resolve_paths`); ``out_dir`` and
command-line values are always relative to the working directory.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Union

from mmlink.models import SamMode
from mmlink.settings import check_fields, from_mapping, parse_flags, read_config_file, setting, to_plain

# Stands for the model's `projector_prefix`: the policies hold for either model family.
PROJECTOR = "<projector>"
QFORMER_PROJECTOR = "language_projection."  # the Q-Former family's projector_prefix
TRAINABLE_POLICIES: dict[str, tuple[str, ...]] = {
    "sam": ("sam.", PROJECTOR),
    "projection": (PROJECTOR,),
    "qformer": ("query_tokens", "qformer.", "sam.", PROJECTOR),
    "all": ("",),
}
# LLaMA-architecture names of the attention and MLP projections (Vicuna, SmolLM2): CaD-VI's LoRA targets.
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
Policy = Literal["sam", "projection", "qformer", "all"]


@dataclass
class LoraSettings:
    """The ``lora:`` section. Defaults are CaD-VI's released recipe (LLaVA-1.5 LoRA: r 128, α 256, dropout 0.05).

    ``target_modules`` are last name components of ``nn.Linear`` modules; only modules under the model's
    ``language_model_prefix`` are adapted, and never ``lm_head`` (`mmlink.train.lora.lora_targets`). Biases are not
    adapted (peft's ``bias="none"``)."""

    r: int = setting(128, min=1, help="adapter rank")
    alpha: float = setting(256.0, above=0, help="scaling numerator (the update is scaled by alpha / r)")
    dropout: float = setting(0.05, min=0, below=1, help="dropout on the adapter's input")
    target_modules: tuple[str, ...] = setting(LORA_TARGETS, help="last name components of the adapted linears")
    save_merged: bool = setting(False, help="also write the full model with the adapter merged into its weights "
                                "(out_dir/merged/: standalone, no base needed)")

    def __post_init__(self) -> None:
        check_fields(self, "lora.")
        names = self.target_modules
        if not names or not all(n and "." not in n for n in names):
            raise ValueError(f"lora.target_modules must be a non-empty list of module names without dots (last name "
                             f"components such as q_proj), got {list(names)!r}")
        if "lm_head" in names:
            raise ValueError("lora.target_modules: lm_head is never adapted (LoRA goes on the LLM's attention and MLP "
                             "linear layers)")


# Relative values of these fields in a config file may mean the config file's directory (`resolve_paths`).
INPUT_PATHS = ("train_data", "val_data", "image_root", "model")
WARMUP_STEPS = 240  # SAM §5


def _tracker_installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@dataclass
class TrainConfig:
    """One training run. Sizes are per process: global batch = ``batch_size × processes × grad_accum``."""

    # data and output
    train_data: str = setting(help="LLaVA-format .json/.jsonl (multi-image), a directory holding one, or a saved "
                              "datasets directory")
    out_dir: str = setting(help="checkpoints/, final/, tensorboard/ and train_summary.json go here")
    val_data: Optional[str] = setting(None, help="periodic validation loss and generation samples (null: off)")
    image_root: Optional[str] = setting(None, help="relative image paths resolve here (null: each data file's "
                                        "directory)")
    train_limit: Optional[int] = setting(None, min=1, help="train on the first N records only (data-volume sweeps, "
                                         "SAM Fig. 5)")
    # model
    model: str = setting("tiny", help="preset name or checkpoint directory (mmlink.models.load)")
    sam_mode: Optional[SamMode] = setting(None, help="SAM variant (null: the model's own)")
    max_images: Optional[int] = setting(None, min=1, help="images per instruction (null: the model's own)")
    model_overrides: dict = setting(factory=dict, help="further config overrides passed to mmlink.models.load")
    trainable: Union[Policy, tuple[str, ...]] = setting("sam", help="a policy (sam, projection, qformer, all) or a "
                                                        "comma list of parameter-name prefixes")
    frozen_eval: bool = setting(True, help="modules without trainable parameters run in eval mode (no dropout)")
    lora: Optional[LoraSettings] = setting(None, help="LoRA on the LLM's linear layers, a mapping such as "
                                           "'{r: 8, alpha: 16}' ({}: CaD-VI's recipe; null: no adapters)")
    # optimisation (paper recipe)
    seed: int = setting(0, min=0, help="seed of initialisation, data order and dropout")
    lr: float = setting(2e-5, above=0, help="peak learning rate")
    projector_lr: Optional[float] = setting(None, above=0, help="the projector's own learning rate (null: lr)")
    warmup_steps: int = setting(WARMUP_STEPS, min=0, help="linear warm-up steps before the cosine decay")
    warmup_ratio: Optional[float] = setting(None, min=0, below=1, help="warm-up as a share of max_steps (ceil, as "
                                            "transformers); replaces warmup_steps")
    max_steps: int = setting(1000, min=1, help="optimizer steps; the cosine decay ends here")
    batch_size: int = setting(20, min=1, help="records per process and micro-step")
    grad_accum: int = setting(1, min=1, help="micro-steps per optimizer step")
    weight_decay: float = setting(0.05, min=0, help="AdamW weight decay, on matrices only (biases, norms and 1-d "
                                  "parameters get none)")
    betas: tuple[float, float] = setting((0.9, 0.999), help="AdamW betas, each in [0, 1)")
    eps: float = setting(1e-8, min=0, help="AdamW epsilon")
    max_grad_norm: float = setting(1.0, min=0, help="gradient clipping norm (0: no clipping)")
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = setting(
        "auto", help="autocast; auto: bf16 only where the hardware computes bf16 natively (CUDA with bf16, a CPU "
        "with AVX512-BF16 or AMX), else none")
    # periodic work (0 disables)
    eval_every: int = setting(500, min=0, help="validation loss every N steps (0: never)")
    sample_every: int = setting(500, min=0, help="generation samples every N steps (0: never)")
    num_samples: int = setting(4, min=1, help="generation samples per sample_every (from val_data, else train_data)")
    max_new_tokens: int = setting(48, min=1, help="length limit of the generation samples")
    save_every: int = setting(500, min=0, help="a resumable checkpoint every N steps (0: only at the end)")
    keep_last: int = setting(3, min=1, help="checkpoints kept (the newest)")
    save_dtype: Literal["float32", "bfloat16"] = setting(
        "float32", help="dtype of the parameters in final/ (checkpoints stay fp32 so --resume is exact)")
    log_every: int = setting(10, min=0, help="log loss, lr and throughput every N steps")
    trackers: tuple[str, ...] = setting((), help="extra experiment trackers through accelerate (wandb, mlflow, "
                                        "comet_ml, aim, ...; their package installed), beside TensorBoard")
    # loading
    num_workers: int = setting(0, min=0, help="data-loader worker processes")
    progress: bool = setting(True, help="progress bar")

    # The directory of the config file this was read from (`from_file`), for error messages; not a setting.
    config_dir = None

    def __post_init__(self) -> None:
        check_fields(self)
        if self.warmup_ratio is not None and self.warmup_steps != WARMUP_STEPS:
            # two warm-ups: which one was meant is unclear
            raise ValueError(f"set warmup_ratio or warmup_steps, not both (warmup_steps {self.warmup_steps}, "
                             f"warmup_ratio {self.warmup_ratio})")
        if self.trackers:
            from accelerate.tracking import LOGGER_TYPE_TO_CLASS

            unknown = [t for t in self.trackers if t not in LOGGER_TYPE_TO_CLASS]
            if unknown:
                raise ValueError(f"trackers: unknown {unknown}; accelerate's: {', '.join(LOGGER_TYPE_TO_CLASS)}")
            missing = [t for t in self.trackers if not _tracker_installed(t)]  # each package is its tracker's name
            if missing:
                raise ValueError(f"trackers: {missing} not installed (pip install {' '.join(missing)})")
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {list(self.betas)!r}")
        if isinstance(self.trainable, tuple) and not self.trainable:
            raise ValueError(f"trainable must be a policy {sorted(TRAINABLE_POLICIES)} or a non-empty list of "
                             f"parameter-name prefixes, got []")
        if self.lora is not None and "" in self.trainable_prefixes:
            raise ValueError("trainable: 'all' (or the prefix '') would fully train the LLM beside its LoRA adapters; "
                             "with lora, name what trains fully besides the adapters, e.g. trainable: projection")

    # ---------------------------------------------------------------- derived

    @property
    def trainable_prefixes(self) -> tuple[str, ...]:
        """The prefixes for a Q-Former-family model (see `trainable_prefixes_for`)."""
        return self.trainable_prefixes_for(QFORMER_PROJECTOR)

    def trainable_prefixes_for(self, projector_prefix: str) -> tuple[str, ...]:
        """The parameter-name prefixes that train, for a model whose projector is ``projector_prefix``."""
        prefixes = TRAINABLE_POLICIES[self.trainable] if isinstance(self.trainable, str) else self.trainable
        return tuple(projector_prefix if p == PROJECTOR else p for p in prefixes)

    @property
    def schedule_warmup_steps(self) -> int:
        """Warm-up steps of the schedule: ``ceil(warmup_ratio × max_steps)`` when a ratio is set, else warmup_steps."""
        if self.warmup_ratio is None:
            return self.warmup_steps
        return math.ceil(self.warmup_ratio * self.max_steps)

    def check_inputs(self) -> None:
        """Every input path exists: a missing one is a FileNotFoundError naming each place it was looked for. The
        model is checked when it is spelled as a path (a bare name may be a preset: `mmlink.models.load` decides)."""
        for name in INPUT_PATHS:
            value = getattr(self, name)
            if value is None or Path(value).exists():
                continue
            if name == "model" and os.sep not in value and not value.startswith("."):
                continue
            if Path(value).is_absolute():
                raise FileNotFoundError(f"{name}: {value} not found")
            if self.config_dir is None:
                raise FileNotFoundError(f"{name}: {value} not found (looked for {Path.cwd() / value})")
            raise FileNotFoundError(
                f"{name}: {value} not found: looked for {Path(self.config_dir) / value} (beside the config file) "
                f"and {Path.cwd() / value} (the working directory)")

    def model_kwargs(self) -> dict[str, Any]:
        """Overrides for `mmlink.models.load`."""
        kw = dict(self.model_overrides)
        if self.sam_mode is not None:
            kw["sam_mode"] = self.sam_mode
        if self.max_images is not None:
            kw["max_images"] = self.max_images
        return kw

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON values (tuples → lists, also inside ``lora``)."""
        return to_plain(self)

    @classmethod
    def from_file(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> "TrainConfig":
        """Read a ``.yaml``/``.yml``/``.json`` file, its relative input paths resolved (`resolve_paths`);
        ``overrides`` (typed, or flag strings; relative to the working directory) win."""
        config_dir = Path(path).resolve().parent
        settings = resolve_paths(read_config_file(path), config_dir)
        config = from_mapping(cls, {**settings, **parse_flags(cls, overrides or {})})
        config.config_dir = str(config_dir)
        return config


def resolve_paths(settings: dict[str, Any], config_dir: str | Path) -> dict[str, Any]:
    """``settings`` with each relative `INPUT_PATHS` value that exists under ``config_dir`` made absolute there;
    the others stay as written, i.e. relative to the working directory.

    So a config file beside its data works from any directory, and the shipped configs (written relative to the
    repository root, where they are run) keep working. When the path also exists in the working directory as the
    same file, it stays as written, so that runs started before this rule still resume. ``out_dir`` is an output
    and usually does not exist yet: it always means the working directory."""
    out = dict(settings)
    for name in INPUT_PATHS:
        value = out.get(name)
        if not isinstance(value, str) or not value or Path(value).is_absolute():
            continue
        here = Path(config_dir) / value
        if here.exists() and not (Path(value).exists() and os.path.samefile(here, value)):
            out[name] = str(here.resolve())
    return out


__all__ = ["TrainConfig", "LoraSettings", "TRAINABLE_POLICIES", "LORA_TARGETS", "PROJECTOR", "INPUT_PATHS",
           "resolve_paths"]
