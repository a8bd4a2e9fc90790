"""Q-Former family: parity with transformers' InstructBLIP, SAM's mechanics, gradients, generation."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close
from transformers import InstructBlipConfig, InstructBlipForConditionalGeneration

from mmlink.models import load
from mmlink.models.loading import load_checkpoint
from mmlink.models.presets import byte_tokenizer
from mmlink.models.qformer import MmlinkQFormerForConditionalGeneration

Q = 4  # query tokens of the tiny configs
IMG = 119  # image placeholder id inside the reference model's vocabulary


def _instructblip_config() -> InstructBlipConfig:
    return InstructBlipConfig(
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=28, patch_size=14
        ),
        qformer_config=dict(
            vocab_size=100,
            hidden_size=32,
            num_hidden_layers=4,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=64,
            cross_attention_frequency=2,
        ),
        text_config=dict(
            model_type="llama",
            vocab_size=120,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
        ),
        num_query_tokens=Q,
        image_token_index=IMG,
    )


@pytest.fixture(scope="module")
def instructblip_dir(tmp_path_factory):
    torch.manual_seed(0)
    ref = InstructBlipForConditionalGeneration(_instructblip_config()).eval()
    with torch.no_grad():  # HF initialises query tokens to zero; make them matter
        ref.query_tokens.normal_()
    path = tmp_path_factory.mktemp("instructblip")
    ref.save_pretrained(path)
    # An InstructBLIP directory carries its LLM tokenizer at the top and the Q-Former's in a subfolder.
    byte_tokenizer().save_pretrained(path)
    byte_tokenizer().save_pretrained(path / "qformer_tokenizer")
    return path, ref


def _inputs(images_per_sample: list[int], seed: int = 0, qlen: int = 5):
    """Random HF-style tensors: placeholders at varied positions, left padding on shorter rows."""
    g = torch.Generator().manual_seed(seed)
    n = sum(images_per_sample)
    rows = []
    for k in images_per_sample:
        row = [5]
        for _ in range(k):
            row += [int(x) for x in torch.randint(6, 100, (int(torch.randint(0, 3, (1,), generator=g)),), generator=g)]
            row += [IMG] * Q
        row += [int(x) for x in torch.randint(6, 100, (3,), generator=g)]
        rows.append(row)
    width = max(map(len, rows))
    input_ids = torch.tensor([[0] * (width - len(r)) + r for r in rows])
    attention_mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    qmask = torch.ones(n, qlen, dtype=torch.long)
    qmask[0, -2:] = 0  # one padded instruction
    return dict(
        pixel_values=torch.randn(n, 3, 28, 28, generator=g),
        qformer_input_ids=torch.randint(1, 100, (n, qlen), generator=g),
        qformer_attention_mask=qmask,
        input_ids=input_ids,
        attention_mask=attention_mask,
    )


# ------------------------------------------------------------------ parity with transformers


@pytest.mark.parametrize("images_per_sample", [[1], [1, 1, 1], [2], [3, 1, 2]])
@pytest.mark.parametrize("sam_mode", ["none", "linear", "bsg_mean", "bsg_adaptive"])
def test_logits_match_transformers_instructblip(instructblip_dir, images_per_sample, sam_mode):
    path, ref = instructblip_dir
    model, _ = _load_instructblip(path, sam_mode=sam_mode)
    batch = _inputs(images_per_sample)
    labels = batch["input_ids"].masked_fill(batch["input_ids"] == IMG, -100)
    with torch.no_grad():
        expected = ref(**batch, labels=labels)
        got = model(**batch, labels=labels)
    assert_close(got.logits, expected.logits)
    assert_close(got.loss, expected.loss)


def _load_instructblip(path, **overrides):
    return load_checkpoint(path, **overrides)


def test_instructblip_load_has_zero_sam_layers_and_pool_all(instructblip_dir):
    path, ref = instructblip_dir
    model, _ = _load_instructblip(path, sam_context_pool="all", sam_guide_layer=2, sam_context_layer=3)
    assert all(float(p.detach().abs().sum()) == 0 for p in model.sam.parameters())
    batch = _inputs([2, 1])
    with torch.no_grad():
        assert_close(model(**batch).logits, ref(**batch).logits)


# ------------------------------------------------------------------ SAM mechanics (tiny preset)


def _tiny(**overrides) -> MmlinkQFormerForConditionalGeneration:
    return load("tiny", **overrides)[0]


def _with_weights_of(model, source):
    """Copy every shared weight of ``source`` into ``model`` (SAM's own layers stay as they are)."""
    result = model.load_state_dict(source.state_dict(), strict=False)
    assert all(k.startswith("sam.") for k in result.missing_keys + result.unexpected_keys)
    return model


def _randomise_sam(model, seed=1, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.sam.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return model


def _tiny_inputs(images_per_sample, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = sum(images_per_sample)
    rows = [[1] + [260] * (Q * k) + [40, 41, 42] for k in images_per_sample]
    width = max(map(len, rows))
    return dict(
        pixel_values=torch.randn(n, 3, 32, 32, generator=g),
        qformer_input_ids=torch.randint(4, 260, (n, 6), generator=g),
        qformer_attention_mask=torch.ones(n, 6, dtype=torch.long),
        input_ids=torch.tensor([[0] * (width - len(r)) + r for r in rows]),
        attention_mask=torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows]),
    )


def _queries(model, batch):
    with torch.no_grad():
        return model(**batch).query_output


@pytest.mark.parametrize("sam_mode", ["linear", "bsg_mean", "bsg_adaptive"])
def test_single_image_with_pool_others_is_exactly_the_base_model(sam_mode):
    base = _tiny(sam_mode="none", seed=1)
    sam = _randomise_sam(_with_weights_of(_tiny(sam_mode=sam_mode, sam_context_pool="others"), base))
    batch = _tiny_inputs([1, 1])
    with torch.no_grad():
        assert torch.equal(sam(**batch).logits, base(**batch).logits)


def test_pool_all_lets_a_single_image_guide_itself():
    base = _tiny(sam_mode="none", seed=1)
    sam = _randomise_sam(_with_weights_of(_tiny(sam_context_pool="all"), base))
    batch = _tiny_inputs([1])
    assert not torch.allclose(_queries(sam, batch), _queries(base, batch))


@pytest.mark.parametrize("sam_mode", ["linear", "bsg_mean", "bsg_adaptive"])
@pytest.mark.parametrize("layers", [(None, None), (1, 1), (1, 2)])
def test_contextual_image_changes_current_queries_only_when_sam_is_on(sam_mode, layers):
    l, k = layers
    model = _tiny(sam_mode=sam_mode, sam_guide_layer=l, sam_context_layer=k)
    a, b = _tiny_inputs([2], seed=0), _tiny_inputs([2], seed=0)
    b["pixel_values"][1] = torch.randn(3, 32, 32)  # only the contextual image differs
    # Zero-initialised SAM: image 0 cannot see image 1.
    assert torch.equal(_queries(model, a)[0], _queries(model, b)[0])
    _randomise_sam(model)
    assert not torch.allclose(_queries(model, a)[0], _queries(model, b)[0])


def test_samples_in_a_batch_do_not_see_each_other():
    model = _randomise_sam(_tiny())
    batch = _tiny_inputs([2, 3, 1])
    together = _queries(model, batch)
    starts = [0, 2, 5, 6]
    for s, k in enumerate([2, 3, 1]):
        alone = _tiny_inputs([k])
        alone["pixel_values"] = batch["pixel_values"][starts[s] : starts[s + 1]]
        alone["qformer_input_ids"] = batch["qformer_input_ids"][starts[s] : starts[s + 1]]
        alone["qformer_attention_mask"] = batch["qformer_attention_mask"][starts[s] : starts[s + 1]]
        assert_close(_queries(model, alone), together[starts[s] : starts[s + 1]], rtol=1e-5, atol=1e-5)


def _reference_merge(feats, scores, groups, pool):
    """Eq. 3–4 written out with loops, for one image at a time."""
    merged = torch.zeros_like(feats)
    for i in range(feats.shape[0]):
        ctx = [m for m in range(feats.shape[0]) if groups[m] == groups[i] and (pool == "all" or m != i)]
        if not ctx:
            continue
        for j in range(feats.shape[1]):
            alpha = torch.softmax(torch.stack([scores[m, j] for m in ctx]), dim=0)
            merged[i, j] = sum(a * feats[m, j] for a, m in zip(alpha, ctx))
    return merged


@pytest.mark.parametrize("pool", ["others", "all"])
def test_adaptive_adjustment_is_a_softmax_across_images_per_patch(pool):
    model = _randomise_sam(_tiny(sam_context_pool=pool))
    feats = torch.randn(6, 5, 32)
    groups = torch.tensor([0, 0, 0, 1, 1, 2])
    merged, has_context = model.sam.context_features(feats, groups)
    with torch.no_grad():
        scores = model.sam.patch_scorer(feats).squeeze(-1)
    assert_close(merged, _reference_merge(feats, scores, groups.tolist(), pool))
    expected_context = [True] * 5 + [pool == "all"]
    assert has_context.tolist() == expected_context


def test_bsg_mean_averages_the_contextual_images():
    model = _tiny(sam_mode="bsg_mean")
    feats = torch.randn(3, 5, 32)
    merged, _ = model.sam.context_features(feats, torch.tensor([0, 0, 0]))
    assert_close(merged[0], (feats[1] + feats[2]) / 2)
    assert_close(merged[2], (feats[0] + feats[1]) / 2)


def test_sam_layers_are_zero_initialised_and_counted():
    model = _tiny()
    assert {n for n, _ in model.sam.named_parameters()} == {
        "patch_scorer.weight",
        "patch_scorer.bias",
        "guide_proj.weight",
        "guide_proj.bias",
        "context_proj.weight",
        "context_proj.bias",
    }
    assert all(float(p.detach().abs().sum()) == 0 for p in model.sam.parameters())
    trainable, total = model.set_trainable()
    dq, dv, dl = 32, 32, 32
    assert trainable == (dv + 1) + 2 * (dq * dq + dq) + (dq * dl + dl)
    assert 0 < trainable < total


@pytest.mark.parametrize("nonzero", [False, True])
def test_gradients_reach_only_trainable_parameters(nonzero):
    model = _tiny()
    if nonzero:
        _randomise_sam(model)
    model.set_trainable()
    model.train()
    # Three images: each has two contextual images, so the softmax across images has a gradient
    # (with a single contextual image its weight is always 1).
    batch = _tiny_inputs([3, 1])
    labels = batch["input_ids"].masked_fill(batch["input_ids"] == 260, -100)
    model(**batch, labels=labels).loss.backward()
    for name, p in model.named_parameters():
        if name.startswith(("sam.", "language_projection.")):
            assert p.grad is not None, name
        else:
            assert p.grad is None, name
    assert model.sam.context_proj.weight.grad.abs().sum() > 0
    assert model.language_projection.weight.grad.abs().sum() > 0
    # Zero-initialised: guidance and patch scores get gradient only once the context branch is non-zero.
    assert (model.sam.guide_proj.weight.grad.abs().sum() > 0) == nonzero
    assert (model.sam.patch_scorer.weight.grad.abs().sum() > 0) == nonzero


def test_placeholder_image_mismatch_is_an_error():
    model = _tiny()
    batch = _tiny_inputs([2])
    batch["pixel_values"] = batch["pixel_values"][:1]
    with pytest.raises(ValueError, match=r"placeholders for 2 images but pixel_values \(or image_features\) has 1"):
        model(**batch)
    batch = _tiny_inputs([1])
    batch["input_ids"][0, -1] = 260  # a stray placeholder
    with pytest.raises(ValueError, match="placeholder"):
        model(**batch)


def test_too_many_images_is_an_error():
    model = _tiny(max_images=2)
    with pytest.raises(ValueError, match="max_images"):
        model(**_tiny_inputs([3]))


# ------------------------------------------------------------------ generation


def test_generate_uses_the_kv_cache_and_matches_uncached_greedy():
    model = _randomise_sam(_tiny())
    batch = _tiny_inputs([2, 1])
    cached = model.generate(**batch, max_new_tokens=6, do_sample=False, pad_token_id=0)
    uncached = model.generate(**batch, max_new_tokens=6, do_sample=False, pad_token_id=0, use_cache=False)
    assert cached.shape == (2, 6)
    assert torch.equal(cached, uncached)
    # And greedy decoding equals argmax over the full forward pass, step by step.
    ids, mask = batch["input_ids"], batch["attention_mask"]
    for step in range(6):
        with torch.no_grad():
            logits = model(**{**batch, "input_ids": ids, "attention_mask": mask}).logits[:, -1]
        nxt = logits.argmax(-1, keepdim=True)
        assert torch.equal(nxt[:, 0], cached[:, step])
        ids, mask = torch.cat([ids, nxt], 1), torch.cat([mask, torch.ones_like(nxt)], 1)


def test_beam_search_and_sampling():
    model = _tiny()
    batch = _tiny_inputs([1, 2])
    beams = model.generate(**batch, max_new_tokens=4, num_beams=3, num_return_sequences=2, pad_token_id=0)
    assert beams.shape[0] == 4
    torch.manual_seed(3)
    s1 = model.generate(**batch, max_new_tokens=5, do_sample=True, top_p=0.9, pad_token_id=0)
    torch.manual_seed(3)
    s2 = model.generate(**batch, max_new_tokens=5, do_sample=True, top_p=0.9, pad_token_id=0)
    assert torch.equal(s1, s2)


# ------------------------------------------------------------------ encoder-decoder LLM (InstructBLIP-FlanT5)


@pytest.fixture(scope="module")
def instructblip_t5_dir(tmp_path_factory):
    config = _instructblip_config()
    config = InstructBlipConfig(
        vision_config=config.vision_config.to_dict(),
        qformer_config=config.qformer_config.to_dict(),
        text_config=dict(
            model_type="t5",
            vocab_size=120,
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_decoder_layers=2,
            num_heads=4,
            decoder_start_token_id=0,
            feed_forward_proj="gated-gelu",
        ),
        num_query_tokens=Q,
        image_token_index=IMG,
    )
    torch.manual_seed(0)
    ref = InstructBlipForConditionalGeneration(config).eval()
    with torch.no_grad():
        ref.query_tokens.normal_()
    path = tmp_path_factory.mktemp("instructblip_t5")
    ref.save_pretrained(path)
    byte_tokenizer().save_pretrained(path)
    byte_tokenizer().save_pretrained(path / "qformer_tokenizer")
    return path, ref


@pytest.mark.parametrize("images_per_sample", [[1], [3, 1]])
def test_flan_t5_logits_and_loss_match_transformers(instructblip_t5_dir, images_per_sample):
    path, ref = instructblip_t5_dir
    model, processor = load_checkpoint(path)
    assert not model.config.use_decoder_only_language_model and processor.is_encoder_decoder
    batch = _inputs(images_per_sample)
    labels = torch.randint(3, 100, (len(images_per_sample), 4))
    labels[0, -1] = -100
    with torch.no_grad():
        expected = ref(**batch, labels=labels)
        got = model(**batch, labels=labels)
    assert_close(got.logits, expected.logits)
    assert_close(got.loss, expected.loss)
    out = model.generate(**batch, max_new_tokens=3, do_sample=False)
    assert out.shape[0] == len(images_per_sample)


def test_processor_puts_answers_in_labels_for_an_encoder_decoder(instructblip_t5_dir):
    path, _ = instructblip_t5_dir
    _, processor = load_checkpoint(path)
    from PIL import Image

    img = Image.new("RGB", (30, 30), (200, 10, 10))
    batch = processor(["<image> what?", "<image> and <image>?"], [[img], [img, img]], targets=["red", "two red"])
    prompt_only = processor(["<image> what?", "<image> and <image>?"], [[img], [img, img]], padding_side="right")
    assert torch.equal(batch["input_ids"], prompt_only["input_ids"])  # the answer is not in the encoder input
    eos = processor.tokenizer.eos_token_id
    red, two_red = (processor.tokenizer(t, add_special_tokens=False).input_ids for t in ("red", "two red"))
    assert batch["labels"].tolist() == [red + [eos] + [-100] * 4, two_red + [eos]]


# ------------------------------------------------------------------ precomputed image features


def test_image_features_given_equal_the_pixel_values_path():
    model = _randomise_sam(_tiny())
    batch = _tiny_inputs([2, 1, 3])
    n = batch["pixel_values"].shape[0]
    with torch.no_grad():
        want = model(**batch)
        image_to_sample = model.image_to_sample(batch["input_ids"], n)
        _, features = model.get_image_features(
            batch["pixel_values"], batch["qformer_input_ids"], batch["qformer_attention_mask"], image_to_sample
        )
        got = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], image_features=features)
    assert_close(got.logits, want.logits)
    assert_close(got.image_features, want.image_features)
    assert got.query_output is None  # steps 1–3 did not run


def test_exactly_one_of_pixel_values_and_image_features():
    model = _tiny()
    batch = _tiny_inputs([2])
    features = torch.zeros(2, Q, model.config.text_config.hidden_size)
    with pytest.raises(ValueError, match="exactly one of pixel_values and image_features"):
        model(**batch, image_features=features)
    with pytest.raises(ValueError, match="exactly one of pixel_values and image_features"):
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    with pytest.raises(ValueError, match="placeholders for 2 images"):  # the count is still checked
        model(input_ids=batch["input_ids"], image_features=features[:1])
    with pytest.raises(ValueError, match=r"image_features must be \(n, 4, 32\)"):
        model(input_ids=batch["input_ids"], image_features=torch.zeros(2, Q + 1, 32))
