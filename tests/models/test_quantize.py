"""Weight-only int8/int4 quantization of the LLM's linear layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from mmlink.models import load
from mmlink.models.decoding import greedy_decode, greedy_plan
from mmlink.models.quantize import WeightOnlyLinear, quantize_llm


def _q4_1_weight(n: int, k: int, group: int = 32, seed: int = 0) -> torch.Tensor:
    """A weight that GGUF's Q4_1 represents exactly: per group of ``group`` inputs, ``d * q + m`` with every
    q in 0..15 present (so the group's min and max are m and m + 15d)."""
    gen = torch.Generator().manual_seed(seed)
    d = torch.rand(n, k // group, 1, generator=gen) * 0.01 + 0.001  # powers of two would be too kind
    m = -torch.rand(n, k // group, 1, generator=gen) * 0.05
    q = torch.randint(0, 16, (n, k // group, group), generator=gen)
    q[..., 0], q[..., 1] = 0, 15
    return (d * q + m).reshape(n, k)


def test_int4_reproduces_q4_1_weights():
    linear = nn.Linear(64, 48, bias=True)
    with torch.no_grad():
        linear.weight.copy_(_q4_1_weight(48, 64))
    q = WeightOnlyLinear(linear, "int4")
    # Column j of W is W e_j: the dequantized weight is the original up to the bf16 rounding of each group's
    # scale and zero and of the output (~3 significant digits), far below the int4 step (>= 1e-3 here).
    dense = (q(torch.eye(64)) - linear.bias).T  # (N, K)
    assert (dense - linear.weight).abs().max() < 1e-3
    x = torch.randn(5, 64)
    assert_close(q(x), x.bfloat16().float() @ linear.weight.T + linear.bias, atol=2e-2, rtol=1e-2)


def test_int8_error_is_bounded_by_half_a_step():
    torch.manual_seed(0)
    linear = nn.Linear(96, 40, bias=False)
    q = WeightOnlyLinear(linear, "int8")
    dense = q(torch.eye(96)).T  # (N, K)
    step = linear.weight.abs().amax(1, keepdim=True) / 127
    assert bool(((dense - linear.weight).abs() <= step * 0.5 + 2e-3).all())
    assert q.qweight.dtype == torch.int8 and q.qweight.shape == (40, 96)


def test_output_keeps_the_input_dtype_and_shape():
    q = WeightOnlyLinear(nn.Linear(64, 32), "int4")
    y = q(torch.randn(2, 3, 64))
    assert y.shape == (2, 3, 32) and y.dtype == torch.float32
    assert q(torch.randn(4, 64, dtype=torch.bfloat16)).dtype == torch.bfloat16


def test_quantize_llm_replaces_block_linears_and_lm_head():
    model, _ = load("tiny")
    lm = model.language_model
    report = quantize_llm(lm, "int8")
    layers = lm.config.num_hidden_layers
    assert report.quantized == 7 * layers + 1 and report.kept == 0  # q k v o gate up down per block + lm_head
    assert isinstance(lm.lm_head, WeightOnlyLinear) and isinstance(lm.model.layers[0].mlp.down_proj, WeightOnlyLinear)
    assert report.bytes_after < report.bytes_before / 3
    assert isinstance(lm.get_input_embeddings(), nn.Embedding)  # lookups stay dense


def test_int4_keeps_layers_the_kernel_cannot_take():
    model, _ = load("tiny")
    report = quantize_llm(model.language_model, "int4")
    # tiny's lm_head has 260 outputs (not a multiple of 16): it stays dense, the blocks are quantized
    assert not isinstance(model.language_model.lm_head, WeightOnlyLinear)
    assert report.kept == 1 and report.quantized == 7 * model.language_model.config.num_hidden_layers


@pytest.mark.parametrize("scheme", ["int8", "int4"])
def test_quantized_llm_decodes_close_to_dense(scheme):
    model, _ = load("tiny")
    lm = model.language_model.eval()
    gen = torch.Generator().manual_seed(0)
    embeds, mask = torch.randn(2, 6, lm.config.hidden_size, generator=gen), torch.ones(2, 6, dtype=torch.long)
    with torch.no_grad():
        dense_logits = lm(inputs_embeds=embeds, attention_mask=mask).logits
    quantize_llm(lm, scheme)
    with torch.no_grad():
        logits = lm(inputs_embeds=embeds, attention_mask=mask).logits
    rel = (logits - dense_logits).norm() / dense_logits.norm()
    assert rel < (0.05 if scheme == "int8" else 0.2)
    kwargs = dict(max_new_tokens=5, do_sample=False, num_beams=1, pad_token_id=0)
    out = greedy_decode(lm, embeds, mask, greedy_plan(lm, kwargs))
    assert torch.equal(out, lm.generate(inputs_embeds=embeds, attention_mask=mask, **kwargs))


def test_none_changes_nothing_and_bad_names_fail():
    model, _ = load("tiny")
    before = {n: p.clone() for n, p in model.language_model.state_dict().items()}
    assert quantize_llm(model.language_model, "none").quantized == 0
    assert all(torch.equal(before[n], p) for n, p in model.language_model.state_dict().items())
    with pytest.raises(ValueError, match="valid: none, int8, int4"):
        quantize_llm(model.language_model, "int3")
