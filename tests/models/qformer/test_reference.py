"""A plain reference of the Q-Former family's steps 1–4, written straight from the equations — one image at a time,
one query at a time, obvious rather than fast — against the batched forward, with non-zero new weights: every SAM
mode (SAM Eq. 1–6), both context pools, several l ≤ k, and every CMAA variant (VisLingInstruct Eq. 1)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close
from transformers.masking_utils import create_bidirectional_mask

from mmlink.models import load

Q = 4  # query tokens of the tiny configs


def reference_features(model, pixel_values, qformer_input_ids, qformer_attention_mask, image_to_sample,
                       guide_from: str = "h"):
    """Image features ``(n, Q + c, Dl)``, computed image by image. ``guide_from="w"`` is a known mistake (the
    W-former guided by its own stream), kept to show that these inputs tell it apart."""
    c = model.config
    layers = model.qformer.encoder.layer
    l0, k0 = c.guide_layer - 1, c.context_layer - 1
    patches = model.vision_model.patch_features(pixel_values)  # (n, P, Dv)
    n = patches.shape[0]
    out = []
    for i in range(n):
        feats = patches[i : i + 1]  # (1, P, Dv)
        ids, keep = qformer_input_ids[i : i + 1], qformer_attention_mask[i : i + 1]
        x = model.qformer.embeddings(input_ids=ids, query_embeds=model.query_tokens)  # (1, Q+L, Dq)
        mask = torch.cat([keep.new_ones(1, Q), keep], dim=1)
        attn = create_bidirectional_mask(config=model.qformer.config, inputs_embeds=x, attention_mask=mask)

        # SAM Eq. 4: the contextual images of image i — the other images of its sample (or all of them, "all")
        context = [m for m in range(n) if image_to_sample[m] == image_to_sample[i]
                   and (c.sam_context_pool == "all" or m != i)]
        h = x
        if c.sam_mode == "none" or not context:
            for layer in layers:
                h = layer(h, attn, feats, query_length=Q)
        else:
            ctx = patches[context]  # (M, P, Dv)
            if c.sam_mode == "bsg_adaptive":  # Eq. 3: per patch, a softmax over the contextual images
                merged = torch.zeros_like(feats[0])
                for p in range(ctx.shape[1]):
                    a = torch.stack([model.sam.patch_scorer(ctx[m, p]).squeeze() for m in range(len(context))])
                    merged[p] = (a.softmax(dim=0)[:, None] * ctx[:, p]).sum(dim=0)
            else:  # bsg_mean and +LIN: the plain mean
                merged = ctx.mean(dim=0)
            merged = merged[None]  # (1, P, Dv)
            if c.sam_mode == "linear":  # +LIN: Linear(mean over patches) added to layer k's input
                for j, layer in enumerate(layers):
                    if j == k0:
                        h = h + model.sam.linear_context(merged.mean(dim=1))[:, None]
                    h = layer(h, attn, feats, query_length=Q)
            else:
                w = x  # the W-former starts from the same embeddings
                for j, layer in enumerate(layers):
                    if j == l0:  # Eq. 1/5: the W-former's layer-l input gets Linear(h_i), h_i the Q-Former's
                        w = w + model.sam.guide_proj(h if guide_from == "h" else w)
                    if j <= k0:  # the W-former attends to the contextual features up to layer k
                        w = layer(w, attn, merged, query_length=Q)
                    if j == k0:  # Eq. 2/6: c_i = Linear(W-former output), added to the Q-Former's layer-k input
                        h = h + model.sam.context_proj(w)
                    h = layer(h, attn, feats, query_length=Q)
        queries = h[0, :Q]  # (Q, Dq)

        # VisLingInstruct Eq. 1: each query attends over the instruction's (unpadded) states
        tokens = [queries]
        if c.cmaa != "none":
            text = (h if c.cmaa_text == "output" else x)[0, Q:][keep[0].bool()]  # (L_i, Dq)
            if c.cmaa == "released":
                tokens.append(torch.stack([(h if c.cmaa_text == "output" else x)[0, Q], text.mean(dim=0)]))
            else:
                rows = []
                for qv in queries:
                    s = text @ qv / (math.sqrt(qv.numel()) if c.cmaa_scale else 1.0)
                    rows.append(s.softmax(dim=0) @ text)
                u = torch.stack(rows)  # (Q, Dq)
                tokens.append(u.mean(dim=0, keepdim=True) if c.cmaa == "pooled" else u)
        out.append(model.language_projection(torch.cat(tokens)))
    return torch.stack(out)


def _model(**overrides):
    model = load("tiny", **overrides)[0].float().eval()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        if model.sam is not None:  # non-zero SAM weights: a swapped input would change the result
            for p in model.sam.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model


def _batch(images_per_sample, seed=0, pad=True):
    g = torch.Generator().manual_seed(seed)
    n = sum(images_per_sample)
    mask = torch.ones(n, 7, dtype=torch.long)
    if pad:  # images of the second sample have a shorter instruction: padding must not be attended
        first = images_per_sample[0]
        mask[first:, 5:] = 0
    to_sample = torch.tensor([s for s, k in enumerate(images_per_sample) for _ in range(k)])
    return (torch.randn(n, 3, 32, 32, generator=g), torch.randint(4, 260, (n, 7), generator=g), mask, to_sample)


@pytest.mark.parametrize("sam_mode", ["none", "linear", "bsg_mean", "bsg_adaptive"])
@pytest.mark.parametrize("pool", ["others", "all"])
@pytest.mark.parametrize("layers", [(None, None), (1, 1), (1, 2), (2, 2)])
def test_sam_matches_the_reference(sam_mode, pool, layers):
    model = _model(sam_mode=sam_mode, sam_context_pool=pool, sam_guide_layer=layers[0], sam_context_layer=layers[1])
    pixels, ids, mask, to_sample = _batch([3, 1, 2])
    with torch.no_grad():
        _, got = model.get_image_features(pixels, ids, mask, to_sample)
        want = reference_features(model, pixels, ids, mask, to_sample)
    assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cmaa", ["per_query", "pooled", "released"])
@pytest.mark.parametrize("text", ["output", "embedding"])
@pytest.mark.parametrize("scale", [False, True])
@pytest.mark.parametrize("sam_mode", ["none", "bsg_adaptive"])
def test_cmaa_matches_the_reference(cmaa, text, scale, sam_mode):
    model = _model(cmaa=cmaa, cmaa_text=text, cmaa_scale=scale, sam_mode=sam_mode)
    pixels, ids, mask, to_sample = _batch([2, 2])
    with torch.no_grad():
        _, got = model.get_image_features(pixels, ids, mask, to_sample)
        want = reference_features(model, pixels, ids, mask, to_sample)
    extra = {"per_query": Q, "pooled": 1, "released": 2}[cmaa]
    assert got.shape == (4, Q + extra, model.config.text_config.hidden_size) == want.shape
    assert model.config.image_seq_length == Q + extra
    assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("sam_mode", ["bsg_mean", "bsg_adaptive"])
def test_the_reference_tells_a_w_former_guided_by_its_own_stream_apart(sam_mode):
    """SAM Eq. 5 guides the W-former with the Q-Former's layer-l input h_i. A model that guided it with its own stream
    instead would fail `test_sam_matches_the_reference` at l = 2 (at l = 1 both streams are still the embeddings)."""
    model = _model(sam_mode=sam_mode, sam_guide_layer=2, sam_context_layer=2)
    pixels, ids, mask, to_sample = _batch([3, 1])
    with torch.no_grad():
        right = reference_features(model, pixels, ids, mask, to_sample)
        wrong = reference_features(model, pixels, ids, mask, to_sample, guide_from="w")
        _, got = model.get_image_features(pixels, ids, mask, to_sample)
    assert_close(got, right, rtol=1e-4, atol=1e-5)
    assert (wrong - right)[:3].abs().max() > 1e-3  # the images with context differ ...
    assert_close(wrong[3], right[3])  # ... the one alone in its sample does not
