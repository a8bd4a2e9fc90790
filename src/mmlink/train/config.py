"""`TrainConfig`: every setting of a training run, typed, with the paper's recipe as defaults.

Load it from a YAML or JSON file (`TrainConfig.from_file`), override single fields with CLI flags
(`TrainConfig.from_file(file, overrides={"lr": "1e-4"})`). Unknown keys, wrong types and out-of-range values are
``ValueError``s naming the field — a typo never trains with a silent default.

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

import dataclasses
import json
import math
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

from mmlink.models import SamMode

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

    r: int = 128
    alpha: float = 256.0
    dropout: float = 0.05
    target_modules: tuple = LORA_TARGETS
    # also write the full model with the adapter merged into its weights (out_dir/merged/: standalone, no base needed)
    save_merged: bool = False

    def __post_init__(self) -> None:
        check_fields(self, "lora.")
        if self.r < 1:
            raise ValueError(f"lora.r must be >= 1, got {self.r}")
        if not self.alpha > 0:
            raise ValueError(f"lora.alpha must be > 0, got {self.alpha}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"lora.dropout must be in [0, 1), got {self.dropout}")
        names = self.target_modules
        if not names or not all(isinstance(n, str) and n and "." not in n for n in names):
            raise ValueError(f"lora.target_modules must be a non-empty list of module names without dots (last name "
                             f"components such as q_proj), got {list(names)!r}")
        if "lm_head" in names:
            raise ValueError("lora.target_modules: lm_head is never adapted (LoRA goes on the LLM's attention and MLP "
                             "linear layers)")


# Relative values of these fields in a config file may mean the config file's directory (`resolve_paths`).
INPUT_PATHS = ("train_data", "val_data", "image_root", "model")


def _tracker_installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@dataclass
class TrainConfig:
    """One training run. Sizes are per process: global batch = ``batch_size × processes × grad_accum``."""

    # data and output
    train_data: str  # LLaVA-format .json/.jsonl (multi-image); required
    out_dir: str  # checkpoints/, final/, tensorboard/, train_summary.json go here; required
    val_data: Optional[str] = None  # periodic validation loss + generation samples (None: off)
    image_root: Optional[str] = None  # relative image paths resolve here (default: each data file's directory)
    train_limit: Optional[int] = None  # train on the first N records only (data-volume sweeps, SAM Fig. 5)
    # model
    model: str = "tiny"  # preset name or checkpoint directory (see `mmlink.models.load`)
    sam_mode: Optional[SamMode] = None  # None: the model's own setting
    max_images: Optional[int] = None  # None: the model's own setting
    model_overrides: dict = field(default_factory=dict)  # further config overrides passed to `load`
    trainable: Union[Policy, tuple] = "sam"  # named policy or tuple of parameter-name prefixes (see module doc)
    frozen_eval: bool = True  # modules without trainable parameters run in eval mode (no dropout)
    lora: Optional[LoraSettings] = None  # LoRA on the LLM's linear layers (peft); None: no adapters
    # optimisation (paper recipe)
    seed: int = 0
    lr: float = 2e-5
    projector_lr: Optional[float] = None  # the projector's own learning rate (None: lr)
    warmup_steps: int = 240
    warmup_ratio: Optional[float] = None  # warm-up as a share of max_steps (ceil, as transformers); replaces the steps
    max_steps: int = 1000
    batch_size: int = 20
    grad_accum: int = 1
    weight_decay: float = 0.05  # applied to matrices only; biases, norms and 1-d parameters get none
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8
    max_grad_norm: float = 1.0  # 0 disables clipping
    # auto: bf16 autocast where the hardware computes bf16 natively (CUDA with bf16, CPU with AVX512-BF16/AMX), else no
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    # periodic work (0 disables)
    eval_every: int = 500
    sample_every: int = 500
    num_samples: int = 4  # generation samples per sample_every (from val_data, else train_data)
    max_new_tokens: int = 48
    save_every: int = 500
    keep_last: int = 3
    # dtype of the parameters in final/ (checkpoints stay fp32 so --resume is exact); bfloat16 halves what ships
    save_dtype: Literal["float32", "bfloat16"] = "float32"
    log_every: int = 10
    # extra experiment trackers through accelerate (wandb, mlflow, comet_ml, aim, ...; their package installed), beside
    # the TensorBoard log every run writes
    trackers: tuple = ()
    # loading
    num_workers: int = 0
    progress: bool = True

    # The directory of the config file this was read from (`from_file`), for error messages; not a setting.
    config_dir = None

    def __post_init__(self) -> None:
        check_fields(self)
        for name in ("train_data", "out_dir", "model"):
            if not getattr(self, name):
                raise ValueError(f"{name} is required (a non-empty string)")
        positive = ("max_steps", "batch_size", "grad_accum", "keep_last", "num_samples", "max_new_tokens")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        nonneg = ("warmup_steps", "eval_every", "sample_every", "save_every", "log_every", "num_workers", "seed")
        for name in nonneg:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.train_limit is not None and self.train_limit < 1:
            raise ValueError(f"train_limit must be >= 1, got {self.train_limit}")
        if self.max_images is not None and self.max_images < 1:
            raise ValueError(f"max_images must be >= 1, got {self.max_images}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.projector_lr is not None and not self.projector_lr > 0:
            raise ValueError(f"projector_lr must be > 0, got {self.projector_lr}")
        if self.warmup_ratio is not None:
            if not 0 <= self.warmup_ratio < 1:
                raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
            if self.warmup_steps != _WARMUP_STEPS_DEFAULT:  # two warm-ups: which one was meant is unclear
                raise ValueError(f"set warmup_ratio or warmup_steps, not both (warmup_steps {self.warmup_steps}, "
                                 f"warmup_ratio {self.warmup_ratio})")
        for name in ("weight_decay", "max_grad_norm", "eps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.trackers:
            from accelerate.tracking import LOGGER_TYPE_TO_CLASS

            unknown = [t for t in self.trackers if t not in LOGGER_TYPE_TO_CLASS]
            if unknown:
                raise ValueError(f"trackers: unknown {unknown}; accelerate's: {', '.join(LOGGER_TYPE_TO_CLASS)}")
            missing = [t for t in self.trackers if not _tracker_installed(t)]  # each package is its tracker's name
            if missing:
                raise ValueError(f"trackers: {missing} not installed (pip install {' '.join(missing)})")
        if len(self.betas) != 2 or not all(isinstance(b, float) and 0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if isinstance(self.trainable, tuple):
            if not self.trainable or not all(isinstance(p, str) for p in self.trainable):
                raise ValueError(f"trainable must be a policy {sorted(TRAINABLE_POLICIES)} or a non-empty list of "
                                 f"parameter-name prefixes, got {self.trainable!r}")
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

        def plain(v):
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            return list(v) if isinstance(v, tuple) else v

        return plain(dataclasses.asdict(self))

    # ---------------------------------------------------------------- construction

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        if not isinstance(data, dict):
            raise ValueError(f"a training config must be a mapping of settings, got {type(data).__name__}")
        unknown = sorted(set(data) - set(cls.field_names()))
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; valid keys: {', '.join(cls.field_names())}")
        missing = [n for n in ("train_data", "out_dir") if n not in data]
        if missing:
            raise ValueError(f"missing required config key(s) {missing}")
        return cls(**data)

    @classmethod
    def from_file(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> "TrainConfig":
        """Read a ``.yaml``/``.yml``/``.json`` file, its relative input paths resolved (`resolve_paths`);
        ``overrides`` (already typed, or strings from a CLI; relative to the working directory) win."""
        config_dir = Path(path).resolve().parent
        settings = resolve_paths(read_config_file(path), config_dir)
        config = cls.from_dict({**settings, **parse_overrides(overrides or {})})
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


def read_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.load(text, Loader=YamlLoader)
    except Exception as err:  # noqa: BLE001 - any parse error is a bad config file
        raise ValueError(f"{path}: cannot parse: {str(err).splitlines()[0] if str(err) else err}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the top level must be a mapping of settings, got {type(data).__name__}")
    return data


def parse_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """CLI strings → typed values (YAML scalars: ``1e-4``, ``true``, ``null``, ``[a, b]``); others kept."""
    import yaml

    hints = typing.get_type_hints(TrainConfig)
    out = {}
    for key, value in overrides.items():
        if key not in hints:
            raise ValueError(f"unknown config key {key!r}; valid keys: {', '.join(TrainConfig.field_names())}")
        if isinstance(value, str) and hints[key] not in (str,):
            try:
                parsed = yaml.load(value, Loader=YamlLoader)
            except Exception:  # noqa: BLE001
                parsed = value
            if isinstance(parsed, str) and "," in parsed and key in ("trainable", "betas"):
                parsed = [p.strip() for p in parsed.split(",") if p.strip()]
                if key == "betas":
                    parsed = [yaml.load(p, Loader=YamlLoader) for p in parsed]
            value = parsed
        out[key] = value
    return out


def check_fields(obj: Any, prefix: str = "") -> None:
    """Type-check and convert every field of a settings dataclass in place (list → tuple, int → float, Literal,
    Optional, nested sections); a wrong value is a ValueError naming ``<prefix><field>``. Every settings dataclass
    of mmlink (TrainConfig, LoraSettings, the recipes') checks itself with it."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        setattr(obj, f.name, check_value(prefix + f.name, getattr(obj, f.name), hints[f.name]))


def parse_scalar(value: str) -> Any:
    """A command-line string as the YAML 1.2 scalar it spells (``1e-4`` a float, ``no`` a string, ``[a, b]`` a
    list), with the loader config files use; the string itself when it does not parse."""
    import yaml

    try:
        return yaml.load(value, Loader=YamlLoader)
    except yaml.YAMLError:
        return value


def check_value(name: str, value: Any, hint: Any) -> Any:
    """Return ``value`` converted to the field's type (list→tuple, int→float) or raise ValueError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:
        errors = []
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return check_value(name, value, arg)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError(errors[-1] if len(errors) == 1 else f"{name}: {value!r} matches none of: " + "; ".join(
            e.split(": ", 1)[-1] for e in errors))
    if origin is Literal:
        if isinstance(value, str) and value in args:
            return value
        raise ValueError(f"{name}: expected one of {list(args)}, got {value!r}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{name}: expected true/false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"{name}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"{name}: expected a string, got {value!r}")
    if hint is tuple or origin is tuple:
        if isinstance(value, (list, tuple)):
            return tuple(float(v) if isinstance(v, int) and not isinstance(v, bool) and name == "betas" else v
                         for v in value)
        raise ValueError(f"{name}: expected a list, got {value!r}")
    if hint is dict or origin is dict:
        if isinstance(value, dict):
            return dict(value)
        raise ValueError(f"{name}: expected a mapping, got {value!r}")
    if dataclasses.is_dataclass(hint):  # a section such as ``lora:`` — its own fields are checked by its class
        if isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            raise ValueError(f"{name}: expected a mapping of settings, got {value!r}")
        valid = [f.name for f in dataclasses.fields(hint)]
        unknown = sorted(set(value) - set(valid))
        if unknown:
            raise ValueError(f"{name}: unknown key(s) {unknown}; valid keys: {', '.join(valid)}")
        return hint(**value)
    raise TypeError(f"{name}: unsupported annotation {hint!r}")  # a bug in TrainConfig, not in the user's file


def _make_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader with YAML 1.2 scalars: ``2e-5`` is a float, only true/false are booleans (``no`` stays a
        string, as ``mixed_precision: no`` means)."""

    Loader.yaml_implicit_resolvers = {
        k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
        for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+|\.[0-9_]+(?:[eE]"
                   r"[-+]?[0-9]+)?|\.inf|\.Inf|\.INF|\.nan|\.NaN|\.NAN)$"),
        list("-+0123456789."),
    )
    return Loader


YamlLoader = _make_loader()
_WARMUP_STEPS_DEFAULT = next(f.default for f in dataclasses.fields(TrainConfig) if f.name == "warmup_steps")

__all__ = ["TrainConfig", "LoraSettings", "TRAINABLE_POLICIES", "LORA_TARGETS", "PROJECTOR", "YamlLoader",
           "INPUT_PATHS", "check_fields", "check_value", "parse_overrides", "parse_scalar", "read_config_file",
           "resolve_paths"]
