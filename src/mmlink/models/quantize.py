"""Weight-only quantization of the LLM's linear layers for CPU decoding (opt-in per run: ``--quantize int8|int4``).

Batch-1 decoding reads every weight once per token, so its speed is set by the bytes of the weights: int8 reads a
quarter of fp32's bytes, int4 an eighth. Both schemes use torch's own CPU kernels, which dequantize inside the
matrix multiply. Those kernels are vectorized for bf16 inputs only (fp32 inputs take a scalar path ~10× slower than
a dense fp32 matmul), so each quantized layer rounds its input to bf16 and casts its output back: the rest of the
model (norms, attention, residuals) keeps its own dtype.

* ``int8`` — symmetric, one scale per output channel: ``W ≈ s_n · q``, ``q ∈ [-128, 127]``
  (``torch._weight_int8pack_mm``);
* ``int4`` — asymmetric groups of ``group_size`` inputs per output channel: ``W ≈ d · q + m``, ``q ∈ [0, 15]``
  (``torch._weight_int4pack_mm_for_cpu``, which computes ``(q − 8) · scale + zero``, so ``zero = m + 8d``).
  This is the layout of GGUF's Q4_1 with groups of 32: the `mini` LLM's weights, dequantized from a Q4_1 file,
  come back almost exactly.

Every linear layer of the decoder blocks and the LM head (``lm_head``, 28% of SmolLM2-135M's bytes read per token)
is replaced; the input embedding stays as it is (a lookup reads one row per token). Inference only: the
quantized modules have no gradients and are not saved by ``save_pretrained``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mmlink.models.common import llm_linears
from mmlink.runtime import QUANTIZE_SCHEMES as SCHEMES


class WeightOnlyLinear(nn.Module):
    """``y = x Wᵀ + b`` with ``W`` stored as int8 (per output channel) or packed int4 (groups along the input)."""

    def __init__(self, linear: nn.Linear, scheme: str, group_size: int = 32):
        super().__init__()
        w = linear.weight.detach().float()  # (N, K)
        n, k = w.shape
        self.in_features, self.out_features, self.scheme, self.group_size = k, n, scheme, group_size
        dtype = torch.bfloat16  # the kernels' fast path (see the module docstring)
        if scheme == "int8":
            scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127  # (N,)
            self.register_buffer("qweight", torch.round(w / scale[:, None]).clamp(-128, 127).to(torch.int8))
            self.register_buffer("scales", scale.to(dtype))
        elif scheme == "int4":
            groups = w.reshape(n, k // group_size, group_size)  # (N, K/g, g)
            low, high = groups.amin(-1), groups.amax(-1)  # (N, K/g)
            step = ((high - low) / 15).clamp(min=1e-12)
            q = torch.round((groups - low[..., None]) / step[..., None]).clamp(0, 15).to(torch.int32)  # (N, K/g, g)
            self.register_buffer("qweight", torch._convert_weight_to_int4pack_for_cpu(q.reshape(n, k), 2))
            scale_zero = torch.stack([step, low + 8 * step], dim=-1)  # (N, K/g, 2)
            self.register_buffer("scales", scale_zero.transpose(0, 1).contiguous().to(dtype))  # (K/g, N, 2)
        else:
            raise ValueError(f"unknown quantization scheme {scheme!r}; valid: int8, int4")
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    @staticmethod
    def fits(linear: nn.Linear, scheme: str, group_size: int = 32) -> bool:
        """Whether the kernels take this layer's shape (int4 packs inputs in groups and outputs in tiles of 16)."""
        n, k = linear.weight.shape
        return scheme == "int8" or (k % group_size == 0 and k % 32 == 0 and n % 16 == 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features).to(torch.bfloat16)  # (M, K)
        if self.scheme == "int8":
            y = torch._weight_int8pack_mm(x2, self.qweight, self.scales)  # (M, N)
        else:
            y = torch._weight_int4pack_mm_for_cpu(x2, self.qweight, self.group_size, self.scales)  # (M, N)
        y = y.to(x.dtype)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)  # a no-op unless the model was cast after quantizing
        return y.reshape(*shape, self.out_features)

    def extra_repr(self) -> str:
        group = f", group_size={self.group_size}" if self.scheme == "int4" else ""
        return f"in_features={self.in_features}, out_features={self.out_features}, scheme={self.scheme}{group}"


@dataclass(frozen=True)
class QuantizationReport:
    """What `quantize_llm` replaced: layers quantized / kept, and the bytes of their weights before and after."""

    scheme: str
    quantized: int
    kept: int
    bytes_before: int
    bytes_after: int

    def to_dict(self) -> dict:
        return dict(scheme=self.scheme, quantized=self.quantized, kept=self.kept, bytes_before=self.bytes_before,
                    bytes_after=self.bytes_after)


def quantize_llm(lm: nn.Module, scheme: str, group_size: int = 32) -> QuantizationReport:
    """Replace, in place, the linear layers of the LLM's decoder blocks and its LM head (`llm_linears`: ``lm`` is an
    mmlink model or a bare causal LM) by `WeightOnlyLinear`.

    CPU only (the packed layouts are those of torch's CPU kernels). Layers whose shape the kernel cannot take stay
    as they are and are counted in ``kept``. ``scheme="none"`` changes nothing.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown quantization scheme {scheme!r}; valid: {', '.join(SCHEMES)}")
    if scheme == "none":
        return QuantizationReport(scheme, 0, 0, 0, 0)
    if any(p.device.type != "cpu" for p in lm.parameters()):
        raise ValueError(f"--quantize {scheme} runs on the CPU only (torch's packed int kernels); "
                         "move the model to cpu")
    targets = llm_linears(lm)
    quantized = kept = before = after = 0
    for name, linear in targets:
        if not WeightOnlyLinear.fits(linear, scheme, group_size):
            kept += 1
            continue
        q = WeightOnlyLinear(linear, scheme, group_size)
        before += linear.weight.numel() * linear.weight.element_size()
        after += q.qweight.numel() * q.qweight.element_size() + q.scales.numel() * q.scales.element_size()
        parent_name, _, child = name.rpartition(".")
        setattr(lm.get_submodule(parent_name) if parent_name else lm, child, q)
        quantized += 1
    return QuantizationReport(scheme, quantized, kept, before, after)


__all__ = ["SCHEMES", "QuantizationReport", "WeightOnlyLinear", "quantize_llm"]
