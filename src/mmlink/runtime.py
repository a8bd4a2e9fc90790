"""Which dtype to compute in on this machine: ``--dtype auto`` and training's ``mixed_precision: auto``.

The rule: bfloat16 only where the hardware computes it natively, float32 otherwise.

* CUDA: ``torch.cuda.is_bf16_supported(including_emulation=False)`` (compute capability >= 8.0, or ROCm);
* CPU: AVX512-BF16 (``torch.cpu._is_avx512_bf16_supported()``) or AMX tiles (``torch.cpu._is_amx_tile_supported()``).
  A CPU without them (AVX2, or AVX512 without the BF16 extension) emulates bf16 matmuls, which can be ~4-100x
  slower than float32. ``torch.backends.cpu.get_cpu_capability()`` ("AVX2", "AVX512", "DEFAULT", ...) names the
  kernels torch dispatches to; it does not by itself tell bf16 support, but it is recorded with every choice.

``auto`` never picks float16: its 5-bit exponent overflows on activations of models trained in bf16/fp32 (inf/NaN),
so on a GPU without native bf16 ``auto`` keeps float32, the exact reference. An explicit dtype is always honoured;
its reason says when it is emulated (slow) on this hardware.

`choose_dtype` returns a `DtypeChoice` (name, reason, what was requested, the `Capabilities` it was based on);
``DtypeChoice.to_dict()`` is what runs record in their metadata. Tests build fake `Capabilities`.

Light to import: torch is imported only inside the functions that need it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    import torch

DTYPE_NAMES = ("auto", "float32", "bfloat16", "float16")
# weight-only LLM quantization (mmlink.models.quantize), named here so that the CLI needs no torch to list them
QUANTIZE_SCHEMES = ("none", "int8", "int4")
# training's autocast setting (accelerate's names) and the compute dtype each one means
MIXED_PRECISION_NAMES = ("auto", "no", "bf16", "fp16")
_MIXED_TO_DTYPE = {"no": "float32", "bf16": "bfloat16", "fp16": "float16"}
_DTYPE_TO_MIXED = {v: k for k, v in _MIXED_TO_DTYPE.items()}

DTYPE_HELP = (
    "compute dtype: auto (default), float32, bfloat16, float16. auto = bfloat16 only where the hardware computes "
    "it natively (a CUDA GPU with bf16, a CPU with AVX512-BF16 or AMX), else float32; an explicit dtype is used "
    "as given (bfloat16 on a CPU without native bf16 is emulated and can be many times slower)"
)


@dataclass(frozen=True)
class Capabilities:
    """What the hardware reports about bf16 (`detect`); tests build fake ones."""

    device: str  # "cpu" or "cuda[:i]"
    cpu_capability: str  # torch.backends.cpu.get_cpu_capability(): "AVX2", "AVX512", "DEFAULT", ...
    avx512_bf16: bool
    amx: bool
    cuda_bf16: bool = False  # the CUDA device computes bf16 natively (no emulation)
    cuda_name: Optional[str] = None

    @property
    def is_cuda(self) -> bool:
        return self.device == "cuda" or self.device.startswith("cuda:")

    @property
    def is_cpu(self) -> bool:
        return self.device == "cpu"

    @property
    def native_bf16(self) -> bool:
        """bf16 computed natively on ``device``."""
        if self.is_cuda:
            return self.cuda_bf16
        if self.is_cpu:
            return self.avx512_bf16 or self.amx
        return False

    def describe(self) -> str:
        """``"CPU (AVX2)"``, ``"CUDA device NVIDIA H200"``, ... for reasons and reports."""
        if self.is_cuda:
            return f"CUDA device {self.cuda_name or self.device}"
        if self.is_cpu:
            return f"CPU ({self.cpu_capability})"
        return f"device {self.device}"

    def _bf16_units(self) -> str:
        return " and ".join(n for n, ok in (("AVX512-BF16", self.avx512_bf16), ("AMX", self.amx)) if ok)

    @classmethod
    def detect(cls, device: str = "cpu") -> "Capabilities":
        """Ask torch about this machine (and about ``device`` when it is a CUDA device)."""
        import torch

        device = str(device)
        cuda_bf16, cuda_name = False, None
        if device == "cuda" or device.startswith("cuda:"):
            if not torch.cuda.is_available():
                raise ValueError(f"device {device!r}: CUDA is not available on this machine")
            index = torch.device(device).index
            index = torch.cuda.current_device() if index is None else index
            cuda_name = torch.cuda.get_device_name(index)
            with torch.cuda.device(index):
                try:
                    cuda_bf16 = bool(torch.cuda.is_bf16_supported(including_emulation=False))
                except TypeError:  # an older torch without the argument
                    cuda_bf16 = torch.cuda.get_device_capability(index) >= (8, 0)
        return cls(
            device=device,
            cpu_capability=str(torch.backends.cpu.get_cpu_capability()),
            avx512_bf16=_probe("_is_avx512_bf16_supported"),
            amx=_probe("_is_amx_tile_supported"),
            cuda_bf16=cuda_bf16,
            cuda_name=cuda_name,
        )


QUANTIZE_HELP = ("weight-only quantization of the LLM's linear layers on the CPU: none (default), int8 (per channel) "
                 "or int4 (groups of 32, GGUF Q4_1's layout): 4x / 8x fewer weight bytes per decoded token")
PLAIN_GENERATE_HELP = ("decode with transformers' generate on the model exactly as loaded, instead of mmlink's "
                       "static-cache greedy loop and oneDNN-packed CPU layers (the same tokens, slower; "
                       "for comparison)")

DEVICE_HELP = "torch device: cpu, cuda or cuda:N (default: cuda when available, else cpu)"


def resolve_device(name: str | None = None) -> str:
    """The device a command runs on: ``name`` checked (cpu, cuda, cuda:N) — a device this machine lacks is a
    one-line error — or, for None, cuda when available, else cpu."""
    import torch

    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    name = str(name).strip().lower()
    if name == "cpu":
        return name
    if not (name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit())):
        raise ValueError(f"--device {name!r}: use cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine (torch {torch.__version__}); "
                         "use --device cpu")
    index = int(name[5:]) if ":" in name else 0
    if index >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return name


def _probe(name: str) -> bool:
    # private torch.cpu helpers: absent or failing means "not known to be there"
    import torch

    fn = getattr(torch.cpu, name, None)
    try:
        return bool(fn()) if fn is not None else False
    except Exception:  # noqa: BLE001 - a probe must never break a run
        return False


@dataclass(frozen=True)
class DtypeChoice:
    """The dtype a run computes in, why, and the hardware facts the choice rests on."""

    name: str  # "float32" | "bfloat16" | "float16"
    reason: str  # one readable sentence
    requested: str  # what the user asked: "auto", "float32", ... (or training's "auto", "no", "bf16", "fp16")
    capabilities: Capabilities

    @property
    def dtype(self) -> "torch.dtype":
        import torch

        return getattr(torch, self.name)

    @property
    def mixed_precision(self) -> str:
        """accelerate's name of the autocast this dtype means: ``no``, ``bf16`` or ``fp16``."""
        return _DTYPE_TO_MIXED[self.name]

    def to_dict(self) -> dict:
        """JSON-able metadata for run records."""
        c = self.capabilities
        return {
            "name": self.name,
            "requested": self.requested,
            "reason": self.reason,
            "device": c.device,
            "cpu_capability": c.cpu_capability,
            "avx512_bf16": c.avx512_bf16,
            "amx": c.amx,
            "cuda_bf16": c.cuda_bf16,
            "cuda_name": c.cuda_name,
        }


def _check_name(requested: str, valid: tuple[str, ...], what: str) -> str:
    if not isinstance(requested, str) or requested not in valid:
        raise ValueError(f"unknown {what} {requested!r}; valid: {', '.join(valid)}")
    return requested


def _no_bf16(caps: Capabilities) -> str:
    if caps.is_cpu:
        return f"{caps.describe()} has no native bf16 (no AVX512-BF16/AMX)"
    if caps.is_cuda:
        return f"{caps.describe()} has no native bf16"
    return f"{caps.describe()}: bf16 support is not checked for this device type"


def _native(caps: Capabilities) -> str:
    return f"{caps.describe()} has native bf16 ({caps._bf16_units()})" if caps.is_cpu else \
        f"{caps.describe()} has native bf16"


def _resolve(name: str, requested: str, caps: Capabilities, what: str,
             outcome: Optional[dict] = None) -> DtypeChoice:
    """``name``: a concrete dtype or "auto"; ``what``: how the request is named in the reason; ``outcome``: how an
    automatic choice is named in the reason (default: the dtype's name)."""
    outcome = outcome or {}
    if name == "auto":
        if caps.native_bf16:
            return DtypeChoice("bfloat16", f"auto: {_native(caps)} -> {outcome.get('bfloat16', 'bfloat16')}",
                               requested, caps)
        why = f"auto: {_no_bf16(caps)} -> {outcome.get('float32', 'float32')}"
        if caps.is_cuda:
            why += "; float16 is never chosen automatically (its narrow range can overflow; float32 stays exact)"
        return DtypeChoice("float32", why, requested, caps)
    if name == "bfloat16":
        if caps.native_bf16:
            why = f"requested {what}; {_native(caps)}"
        else:
            why = f"requested {what}; {_no_bf16(caps)}, so bf16 is emulated and can be many times slower than float32"
        return DtypeChoice("bfloat16", why, requested, caps)
    if name == "float16":
        why = f"requested {what}"
        if not caps.is_cuda:
            why += f"; {caps.describe()} mostly emulates float16 (slow), and its narrow range can overflow"
        return DtypeChoice("float16", why, requested, caps)
    return DtypeChoice("float32", f"requested {what}", requested, caps)


def choose_dtype(requested: str = "auto", device: str = "cpu",
                 capabilities: Optional[Capabilities] = None) -> DtypeChoice:
    """The compute dtype for ``requested`` (one of `DTYPE_NAMES`) on ``device``.

    ``capabilities``: use these instead of asking torch (then ``device`` is theirs). ValueError on an unknown name.
    """
    _check_name(requested, DTYPE_NAMES, "dtype")
    caps = capabilities if capabilities is not None else Capabilities.detect(str(device))
    return _resolve(requested, requested, caps, requested)


def choose_mixed_precision(requested: str = "auto", device: str = "cpu",
                           capabilities: Optional[Capabilities] = None) -> DtypeChoice:
    """Training's autocast for ``requested`` (one of `MIXED_PRECISION_NAMES`): ``auto`` is bf16 where native, else
    ``no``. The result's ``mixed_precision`` is accelerate's name; ``name`` the dtype autocast computes in."""
    _check_name(requested, MIXED_PRECISION_NAMES, "mixed_precision")
    caps = capabilities if capabilities is not None else Capabilities.detect(str(device))
    name = "auto" if requested == "auto" else _MIXED_TO_DTYPE[requested]
    what = f"{requested} autocast" if requested != "no" else "no autocast (float32)"
    return _resolve(name, requested, caps, what, {"bfloat16": "bf16 autocast", "float32": "no autocast (float32)"})


__all__ = [
    "Capabilities", "DEVICE_HELP", "DTYPE_HELP", "DTYPE_NAMES", "DtypeChoice", "MIXED_PRECISION_NAMES",
    "PLAIN_GENERATE_HELP", "QUANTIZE_HELP",
    "choose_dtype", "choose_mixed_precision", "resolve_device",
]
