"""Greedy decoding near the memory-bandwidth bound: a static KV cache and a lean loop over the LLM's own modules.

Batch-1 decoding of a small LLM on a CPU is bound by reading the weights once per token; transformers' ``generate``
adds per-step work on top (a growing cache re-allocated by ``torch.cat``, a fresh attention mask, logits processors
and stopping criteria, output dataclasses). Here the cache is allocated once for ``prompt + max_new_tokens``
positions, each step writes one slot and attends to a view of the filled part, and the step runs the model's own
modules (its RMSNorms, projections, rotary embedding and MLP) — so the arithmetic, and therefore every token, is the
same as ``generate``'s greedy search. The attention calls mirror transformers' SDPA integration
(``transformers.integrations.sdpa_attention``): ``enable_gqa`` without a mask, the query packed per key/value head
when a padding mask is present in decoding, key/value heads repeated for a masked prefill.

Supported: decoder-only Llama-architecture LLMs (SmolLM2, Vicuna, Llama 2/3) with greedy settings only
(`greedy_plan` returns ``None`` for anything else, and the caller falls back to ``generate``). On a CPU the matrix
products themselves are the rest of the cost: `prepare_for_decoding` re-packs the LLM's linear layers for oneDNN
(`PackedLinear`), which serves this loop, ``generate`` and prefill alike.

Step by step:

1. prefill: the whole left-padded prompt ``(B, T, D)`` through every layer, keys/values into cache slots ``[0, T)``;
2. the next token is the argmax of the last position's logits (EOS masked until ``min_new_tokens``);
3. decode: embed that token ``(B, 1, D)``, one layer pass writing cache slot ``T + s``, attending to ``[0, T + s]``;
4. finished rows (EOS seen) emit ``pad_token_id``; stop when every row is finished or after ``max_new_tokens``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import GenerationConfig
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

SUPPORTED_MODEL_TYPES = ("llama",)

# GenerationConfig fields the loop honours; any other non-default field (sampling, beams, penalties, processors,
# streamers, ...) sends the call to transformers' `generate`.
_GREEDY_FIELDS = {
    "max_new_tokens", "min_new_tokens", "bos_token_id", "eos_token_id", "pad_token_id", "do_sample", "num_beams",
    "num_return_sequences", "use_cache", "output_attentions", "output_hidden_states", "output_scores",
    "output_logits", "return_dict_in_generate", "temperature", "top_p", "top_k", "repetition_penalty",
    "transformers_version", "max_length", "_from_model_config",
}


@dataclass(frozen=True)
class GreedyPlan:
    """Resolved greedy settings: at most ``max_new_tokens``; EOS forbidden before ``min_new_tokens``."""

    max_new_tokens: int
    min_new_tokens: int
    eos_token_ids: tuple[int, ...]
    pad_token_id: int


def supports(lm) -> bool:
    """Whether the static-cache loop can run ``lm`` (a decoder-only Llama-architecture model)."""
    config = getattr(lm, "config", None)
    return (
        getattr(config, "model_type", None) in SUPPORTED_MODEL_TYPES
        and not getattr(config, "is_encoder_decoder", False)
        and hasattr(getattr(lm, "model", None), "layers")
    )


def greedy_plan(lm, generate_kwargs: dict | None = None,
                generation_config: GenerationConfig | None = None) -> GreedyPlan | None:
    """The plan for ``lm.generate(generation_config=generation_config, **generate_kwargs)`` when it is plain greedy
    search the loop reproduces exactly, else ``None``. Resolves the settings as ``generate`` does: the passed
    ``generation_config``, its unset fields filled from ``lm.generation_config``, then ``generate_kwargs`` on top."""
    if not supports(lm):
        return None
    config = GenerationConfig() if generation_config is None else copy.deepcopy(generation_config)
    config.update(**lm.generation_config.to_dict(), defaults_only=True, allow_custom_entries=True)
    unused = config.update(**(generate_kwargs or {}))
    if unused or set(config.to_diff_dict()) - _GREEDY_FIELDS:
        return None
    if config.max_new_tokens is None:  # generate's max_length rules, which the loop does not reproduce
        return None
    if config.do_sample or config.num_beams not in (None, 1) or (config.num_return_sequences or 1) != 1:
        return None
    if config.repetition_penalty not in (None, 1.0) or config.use_cache is False:
        return None
    if config.return_dict_in_generate or config.output_scores or config.output_logits:
        return None
    if config.output_attentions or config.output_hidden_states:
        return None
    eos = config.eos_token_id
    eos = () if eos is None else tuple(eos) if isinstance(eos, (list, tuple)) else (int(eos),)
    pad = config.pad_token_id if config.pad_token_id is not None else (eos[0] if eos else None)
    if pad is None:
        return None
    return GreedyPlan(int(config.max_new_tokens), int(config.min_new_tokens or 0), eos, int(pad))


class StaticKVCache:
    """Keys and values of every layer for ``length`` positions, allocated once: ``(B, KV, length, hd)`` each."""

    def __init__(self, lm, batch: int, length: int, dtype: torch.dtype, device: torch.device):
        cfg = lm.config
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        shape = (batch, cfg.num_key_value_heads, length, head_dim)
        self.keys = [torch.empty(shape, dtype=dtype, device=device) for _ in range(cfg.num_hidden_layers)]
        self.values = [torch.empty(shape, dtype=dtype, device=device) for _ in range(cfg.num_hidden_layers)]


class PackedLinear(torch.nn.Module):
    """``y = x Wᵀ + b`` with ``W`` pre-packed into oneDNN's blocked layout for the CPU (inference only).

    torch's default CPU matmul for these shapes (a few rows times a hidden size of a few hundred) reads the weight at
    about half the memory bandwidth and runs skinny products (batch 8–32) at a fraction of the FLOP peak; a weight
    re-ordered once by oneDNN streams ~2× faster at batch 1 and 1.5–3× faster at batch 8–32, and prefill is no
    slower (``benchmarks/decode_speed.py``). The packed weight is an opaque oneDNN tensor: it is not a parameter, is
    not saved, does not move with ``.to()`` and takes no gradient.
    """

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), 1)  # (N, K) blocked
        self.bias = None if linear.bias is None else linear.bias.detach().clone()
        self.dtype = linear.weight.dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != self.dtype:
            raise TypeError(f"a layer packed for {self.dtype} got {x.dtype} inputs: cast the model before "
                            "prepare_for_decoding (the packed weights do not follow .to())")
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, dtype={self.dtype}, oneDNN-packed"


def prepare_for_decoding(lm) -> list[str]:
    """Replace, in place, the linear layers of the LLM's decoder blocks and its LM head (`llm_linears`: ``lm`` is an
    mmlink model or a bare causal LM) by `PackedLinear` when they are on a CPU in float32 or bfloat16 (and torch has
    oneDNN); returns the names replaced.

    The same weights, so the same answers up to float rounding (bf16: bit-identical here; fp32: another summation
    order). A tied LM head gets its own packed copy (the input embedding keeps its rows), which costs the head's
    bytes once more. The model becomes inference-only: prepare it after choosing its dtype and device, never before
    training or saving it. ``mmlink eval`` and ``mmlink generate`` call this (not with ``--plain-generate``);
    already packed or quantized layers are left alone.
    """
    if not torch.backends.mkldnn.is_available():
        return []
    from mmlink.models.common import llm_linears

    changed = []
    for name, module in llm_linears(lm):
        w = module.weight
        if w.device.type != "cpu" or w.dtype not in (torch.float32, torch.bfloat16):
            continue
        parent, _, child = name.rpartition(".")
        setattr(lm.get_submodule(parent) if parent else lm, child, PackedLinear(module))
        changed.append(name)
    return changed


def ready_for_inference(model, dtype: torch.dtype, quantize: str = "none", fast_greedy: bool = True):
    """What ``mmlink eval`` and ``mmlink generate`` do to a loaded model, in place: cast it to ``dtype`` (eval mode),
    quantize its LLM (`mmlink.models.quantize.quantize_llm`), and — unless ``fast_greedy`` is off
    (``--plain-generate``: transformers' ``generate`` on the model exactly as loaded) — pack the LLM's layers
    (`prepare_for_decoding`). Returns the `QuantizationReport`."""
    from mmlink.models.quantize import quantize_llm

    model.to(dtype).eval()
    report = quantize_llm(model, quantize)
    if fast_greedy:
        prepare_for_decoding(model)
    return report


def _forward(lm, x, cos, sin, cache: StaticKVCache, start: int, mask: torch.Tensor | None) -> torch.Tensor:
    """Run every layer on ``x (B, S, D)`` whose keys/values go to cache slots ``[start, start + S)``; attention reads
    slots ``[0, start + S)``. ``mask``: ``None`` (no padding: causal prefill / full decode) or bool ``(B, 1, S, K)``,
    True where a query may attend. Returns the final-norm hidden state of the last position ``(B, 1, D)``."""
    b, s, _ = x.shape
    end = start + s
    for i, layer in enumerate(lm.model.layers):
        attn = layer.self_attn
        hd, groups = attn.head_dim, attn.num_key_value_groups
        h = layer.input_layernorm(x)
        q = attn.q_proj(h).view(b, s, -1, hd).transpose(1, 2)  # (B, H, S, hd)
        k = attn.k_proj(h).view(b, s, -1, hd).transpose(1, 2)  # (B, KV, S, hd)
        v = attn.v_proj(h).view(b, s, -1, hd).transpose(1, 2)  # (B, KV, S, hd)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        cache.keys[i][:, :, start:end] = k
        cache.values[i][:, :, start:end] = v
        keys, values = cache.keys[i][:, :, :end], cache.values[i][:, :, :end]  # (B, KV, K, hd) views
        if mask is None:  # no padding: transformers' SDPA path with native grouped-query attention
            o = F.scaled_dot_product_attention(q, keys, values, scale=attn.scaling, is_causal=s > 1,
                                               enable_gqa=groups > 1)
        elif s == 1 and groups > 1:  # one query per row: pack the query heads of each key/value head together
            packed = q.reshape(b, q.shape[1] // groups, groups, hd)  # (B, KV, G, hd)
            o = F.scaled_dot_product_attention(packed, keys, values, attn_mask=mask, scale=attn.scaling)
            o = o.reshape(b, -1, 1, hd)  # (B, H, 1, hd)
        else:
            keys = keys.repeat_interleave(groups, dim=1)  # (B, H, K, hd)
            values = values.repeat_interleave(groups, dim=1)
            o = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=attn.scaling)
        x = x + attn.o_proj(o.transpose(1, 2).reshape(b, s, -1))  # (B, S, D)
        x = x + layer.mlp(layer.post_attention_layernorm(x))
    return lm.model.norm(x[:, -1:])  # (B, 1, D)


def _next_token(lm, hidden: torch.Tensor, step: int, plan: GreedyPlan) -> torch.Tensor:
    """Greedy choice ``(B,)`` from the last hidden state ``(B, 1, D)``; EOS masked before ``min_new_tokens``."""
    logits = lm.lm_head(hidden)[:, -1].float()  # (B, V), fp32 as generate's processors see them
    if step < plan.min_new_tokens and plan.eos_token_ids:
        logits[:, list(plan.eos_token_ids)] = float("-inf")
    return logits.argmax(dim=-1)


@torch.inference_mode()
def greedy_decode(lm, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None,
                  plan: GreedyPlan) -> torch.LongTensor:
    """Greedy decoding of ``lm`` from left-padded prompt embeddings ``(B, T, D)`` → new tokens ``(B, T_new)``,
    token-identical to ``lm.generate(inputs_embeds=..., attention_mask=..., do_sample=False, num_beams=1, ...)``."""
    b, t, _ = inputs_embeds.shape
    device, dtype = inputs_embeds.device, inputs_embeds.dtype
    if attention_mask is None:
        attention_mask = torch.ones(b, t, dtype=torch.long, device=device)
    padded = not bool(attention_mask.all())
    cache = StaticKVCache(lm, b, t + plan.max_new_tokens, dtype, device)
    eos = torch.tensor(plan.eos_token_ids, dtype=torch.long, device=device)

    # 1. Prefill. Positions count real tokens only, as generate's (pads get position 1; they are never attended).
    positions = attention_mask.long().cumsum(-1) - 1  # (B, T)
    positions = positions.masked_fill(attention_mask == 0, 1)
    key_valid = torch.zeros(b, t + plan.max_new_tokens, dtype=torch.bool, device=device)  # (B, T + N)
    key_valid[:, :t] = attention_mask.bool()
    key_valid[:, t:] = True
    mask = None
    if padded:
        causal = torch.ones(t, t, dtype=torch.bool, device=device).tril()  # (T, T)
        mask = causal[None, None] & key_valid[:, None, None, :t]  # (B, 1, T, T)
        # A pad query would see no key at all (a NaN row); let it see itself — pads are never attended to.
        mask |= torch.eye(t, dtype=torch.bool, device=device)[None, None]
    cos, sin = lm.model.rotary_emb(inputs_embeds, positions)  # (B, T, hd) each
    hidden = _forward(lm, inputs_embeds, cos, sin, cache, 0, mask)

    # 2–4. Decode one token per step into the preallocated output.
    out = torch.full((b, plan.max_new_tokens), plan.pad_token_id, dtype=torch.long, device=device)
    unfinished = torch.ones(b, dtype=torch.bool, device=device)
    position = positions[:, -1:]  # (B, 1)
    embed = lm.get_input_embeddings()
    for step in range(plan.max_new_tokens):
        token = _next_token(lm, hidden, step, plan)
        token = torch.where(unfinished, token, plan.pad_token_id)
        out[:, step] = token
        if eos.numel():
            unfinished &= ~torch.isin(token, eos)
        if step + 1 == plan.max_new_tokens or not bool(unfinished.any()):
            return out[:, : step + 1]
        position = position + 1
        x = embed(token[:, None])  # (B, 1, D)
        cos, sin = lm.model.rotary_emb(x, position)  # (B, 1, hd)
        slot = t + step
        step_mask = key_valid[:, None, None, : slot + 1] if padded else None  # (B, 1, 1, K)
        hidden = _forward(lm, x, cos, sin, cache, slot, step_mask)
    return out


__all__ = ["GreedyPlan", "PackedLinear", "StaticKVCache", "greedy_decode", "greedy_plan", "prepare_for_decoding",
           "ready_for_inference", "supports"]
