"""`mmlink.models.load`: presets, checkpoint directories, trainable-only saves, overrides and their errors."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch
from PIL import Image
from safetensors import safe_open

from mmlink.models import from_pretrained, load
from mmlink.models.loading import DELTA_CONFIG, DELTA_WEIGHTS, save_trainable

TRAINABLE_PREFIXES = ("sam.", "language_projection.")


def _images():
    return [Image.new("RGB", (40, 30), c) for c in ((250, 20, 20), (20, 250, 20), (20, 20, 250))]


def _batch(processor):
    a, b, c = _images()
    return processor(["First: <image> second: <image> same?", "<image> Describe."], [[a, b], [c]])


@torch.no_grad()
def _logits(model, batch):
    return model(**batch).logits


@torch.no_grad()
def _perturb(module: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        p.add_(0.5 * torch.randn(p.shape, generator=gen))


@pytest.fixture(scope="module")
def base_logits():
    model, processor = load("tiny")
    return _logits(model, _batch(processor))


@pytest.fixture(scope="module")
def saved(tmp_path_factory, base_logits):
    """A full save of ``tiny`` whose (zero-initialised) SAM layers were made non-zero, so they matter."""
    model, processor = load("tiny")
    _perturb(model.sam, seed=1)
    logits = _logits(model, _batch(processor))
    assert not torch.allclose(logits, base_logits)  # SAM now changes the output
    path = tmp_path_factory.mktemp("full")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path, model, logits


# ---------------------------------------------------------------------------------------------- where to load from


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="nonexistent-preset") as err:
        load("nonexistent-preset")
    assert "tiny" in str(err.value) and "mini" in str(err.value)


@pytest.mark.parametrize("name", ["./no/such/dir", "no/such/dir"])
def test_missing_directory_is_file_not_found(name):
    with pytest.raises(FileNotFoundError, match=re.escape(name)):
        load(name)


def test_missing_absolute_directory_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "gone"))):
        from_pretrained(tmp_path / "gone")


def test_empty_directory_is_not_a_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="not a checkpoint"):
        load(tmp_path)


def test_existing_directory_wins_over_a_preset_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny").mkdir()
    with pytest.raises(ValueError, match="not a checkpoint"):
        load("tiny")


def test_a_file_is_not_a_checkpoint(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="not a directory"):
        load(tmp_path / "weights.bin")


def test_config_of_another_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="model_type 'bert' is not supported"):
        load(tmp_path)


def test_invalid_json_config_names_the_file(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": ')
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "config.json")) + " is not valid JSON"):
        load(tmp_path)


def test_checkpoint_missing_its_llm_tokenizer_names_it(saved, tmp_path):
    path = tmp_path / "ckpt"
    shutil.copytree(saved[0], path)
    for name in ("processor_config.json", "tokenizer.json", "tokenizer_config.json"):
        (path / name).unlink()
    with pytest.raises(ValueError, match=r"no tokenizer in \./"):
        load(path)


@pytest.mark.parametrize("preset", ["tiny", "tiny-llava"])
def test_model_only_save_loads_with_no_processor(preset, tmp_path, capsys):
    model, processor = load(preset)
    model.save_pretrained(tmp_path)
    loaded, none = load(tmp_path)
    assert none is None and "model-only save" in capsys.readouterr().err
    batch = processor("Describe <image>", [Image.new("RGB", (40, 30), (200, 20, 20))])
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, model(**batch).logits, rtol=0, atol=0)


def test_processor_save_is_the_instructblip_layout_and_round_trips(saved):
    path = saved[0]
    assert (path / "tokenizer.json").exists() and (path / "qformer_tokenizer").is_dir()
    assert (path / "processor_config.json").exists()
    _, processor = load(path)
    _, original = load("tiny")
    image = Image.new("RGB", (40, 30), (20, 200, 20))
    a, b = processor("Is it green? <image>", [image]), original("Is it green? <image>", [image])
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------- overrides


def test_unknown_override_for_a_directory_names_the_key_and_the_valid_ones(saved):
    with pytest.raises(ValueError, match=r"unknown override\(s\) \['sam_mod'\]") as err:
        load(saved[0], sam_mod="x")
    assert "'sam_mode'" in str(err.value) and "'dtype'" in str(err.value)


def test_unknown_override_for_a_preset_names_the_key():
    with pytest.raises(ValueError, match=r"unknown override\(s\) \['sam_mod'\]") as err:
        load("tiny", sam_mod="x")
    assert "'sam_mode'" in str(err.value)


@pytest.mark.parametrize("source", ["preset", "directory"])
def test_dtype_override_converts_the_weights(saved, source):
    model, _ = load("tiny" if source == "preset" else saved[0], dtype=torch.bfloat16)
    assert {p.dtype for p in model.language_model.parameters()} == {torch.bfloat16}
    assert model.language_projection.weight.dtype == torch.bfloat16


def test_directory_overrides_take_effect(saved, base_logits):
    path, _, sam_logits = saved
    model, processor = load(path, sam_mode="none")
    assert model.config.sam_mode == "none" and model.sam is None
    # Without SAM the perturbed SAM layers are gone: the output is tiny's (whose SAM starts at zero).
    assert torch.equal(_logits(model, _batch(processor)), base_logits)
    model, _ = load(path, sam_context_pool="all", max_images=3)
    assert (model.config.sam_context_pool, model.config.max_images) == ("all", 3)


BAD_SAM = [
    ("mode-bogus", dict(sam_mode="bogus"), "^Field 'sam_mode' expected one of"),
    ("pool-bogus", dict(sam_context_pool="mine"), "^Field 'sam_context_pool' expected one of"),
    ("context-before-guide", dict(sam_guide_layer=2, sam_context_layer=1), "must not precede"),
    ("guide-too-large", dict(sam_guide_layer=3), r"must lie in 1\.\.2"),
    ("context-too-large", dict(sam_context_layer=3), r"must lie in 1\.\.2"),
    ("guide-negative", dict(sam_guide_layer=-1), r"must lie in 1\.\.2"),
    ("guide-zero", dict(sam_guide_layer=0), r"must lie in 1\.\.2"),
    ("context-zero", dict(sam_context_layer=0), r"must lie in 1\.\.2"),
]


@pytest.mark.parametrize(
    "overrides, message",
    [pytest.param(o, m, id=i) for i, o, m in BAD_SAM],
)
def test_invalid_sam_settings_for_a_preset(overrides, message):
    with pytest.raises(ValueError, match=message):
        load("tiny", **overrides)


@pytest.mark.parametrize(
    "overrides, message", [pytest.param(o, m, id=i) for i, o, m in BAD_SAM]
)
def test_invalid_sam_settings_for_a_directory(saved, overrides, message):
    with pytest.raises(ValueError, match=message):
        load(saved[0], **overrides)


# ---------------------------------------------------------------------------------------------- save / load


def test_full_save_round_trip_gives_identical_logits(saved):
    path, original, logits = saved
    model, processor = load(path)
    assert model.mmlink_source == str(path.resolve())
    for key in ("sam_mode", "sam_context_pool", "num_query_tokens", "image_token_index", "max_images"):
        assert getattr(model.config, key) == getattr(original.config, key), key
    assert (processor.num_query_tokens, processor.image_token_index, processor.max_images) == (4, 260, 8)
    batch = _batch(processor)
    _, tiny_processor = load("tiny")
    reference = _batch(tiny_processor)
    for key in reference:
        assert torch.equal(batch[key], reference[key]), key
    assert torch.equal(_logits(model, batch), logits)
    for name, value in original.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name


def _trainable_model(source, seed: int):
    model, processor = load(source)
    trainable, total = model.set_trainable()
    assert 0 < trainable < total
    _perturb(model.sam, seed)
    _perturb(model.language_projection, seed + 1)
    return model, processor


def test_save_trainable_writes_only_trainable_parameters_and_reloads_them(tmp_path, base_logits):
    model, processor = _trainable_model("tiny", seed=2)
    delta = tmp_path / "delta"
    save_trainable(model, delta)
    assert sorted(p.name for p in delta.iterdir()) == sorted([DELTA_CONFIG, DELTA_WEIGHTS])
    meta = json.loads((delta / DELTA_CONFIG).read_text())
    assert meta["base"] == "tiny"
    with safe_open(str(delta / DELTA_WEIGHTS), "pt") as f:
        keys = set(f.keys())
    assert keys and all(k.startswith(TRAINABLE_PREFIXES) for k in keys)
    assert keys == {n for n, p in model.named_parameters() if p.requires_grad}
    assert meta["parameters"] == sum(model.get_parameter(k).numel() for k in keys)

    loaded, loaded_processor = load(delta)
    assert loaded.mmlink_source == str(delta.resolve())
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    logits = _logits(loaded, _batch(loaded_processor))
    assert torch.equal(logits, _logits(model, _batch(processor)))
    assert not torch.allclose(logits, base_logits)


def test_trainable_save_of_a_directory_and_its_base_gone(saved, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(saved[0], base)
    model, processor = _trainable_model(base, seed=3)
    delta = tmp_path / "delta"
    save_trainable(model, delta)
    meta = json.loads((delta / DELTA_CONFIG).read_text())  # relative to the delta, and where it was
    assert (meta["base"], meta["base_absolute"]) == ("../base", str(base.resolve()))
    loaded, loaded_processor = load(delta)
    assert torch.equal(_logits(loaded, _batch(loaded_processor)), _logits(model, _batch(processor)))

    shutil.rmtree(base)
    with pytest.raises(FileNotFoundError, match=re.escape(str(base.resolve()))):
        load(delta)


def test_trainable_save_settings_are_restored(tmp_path):
    model, _ = load("tiny", sam_mode="bsg_mean", sam_context_pool="all")
    model.set_trainable()
    save_trainable(model, tmp_path)
    loaded, _ = load(tmp_path)
    assert (loaded.config.sam_mode, loaded.config.sam_context_pool) == ("bsg_mean", "all")


def test_broken_trainable_saves(tmp_path):
    model, _ = load("tiny")
    model.set_trainable()
    save_trainable(model, tmp_path)
    (tmp_path / DELTA_WEIGHTS).unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(DELTA_WEIGHTS)):
        load(tmp_path)
    (tmp_path / DELTA_CONFIG).write_text("{not json")
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / DELTA_CONFIG)) + " is not valid JSON"):
        load(tmp_path)
    (tmp_path / DELTA_CONFIG).write_text(json.dumps({"format": 99, "base": "tiny"}))
    with pytest.raises(ValueError, match="unsupported format 99"):
        load(tmp_path)


def test_save_trainable_needs_a_base():
    model, _ = load("tiny")
    model.set_trainable()
    del model.mmlink_source
    with pytest.raises(ValueError, match="needs `base`"):
        save_trainable(model, "unused")


# ---------------------------------------------------------------------------------------------- no unpickling


class _Unpickled(Exception):
    pass


@pytest.fixture
def no_torch_load(monkeypatch):
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise _Unpickled("torch.load was called")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(torch.serialization, "load", refuse)
    return calls


def test_loading_never_calls_torch_load(saved, tmp_path, no_torch_load):
    model, _ = load(saved[0])
    model.set_trainable()
    save_trainable(model, tmp_path)
    load(tmp_path)
    assert no_torch_load == []


def test_pickle_only_checkpoint_is_refused_without_unpickling(saved, tmp_path):
    path = tmp_path / "bin"
    shutil.copytree(saved[0], path)
    state = saved[1].state_dict()
    (path / "model.safetensors").unlink()
    torch.save(state, path / "pytorch_model.bin")
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise _Unpickled("torch.load was called")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "load", refuse)
        mp.setattr(torch.serialization, "load", refuse)
        with pytest.raises(ValueError, match=r"no safetensors weights \(found \['pytorch_model.bin'\]\)"):
            load(path)
    assert calls == [], "torch.load was called"


def test_family_is_read_without_loading_weights(saved, tmp_path):
    from mmlink.models import family

    assert family("tiny") == "qformer" and family("tiny-llava") == "llava"
    assert family(saved[0]) == "qformer"
    model, _ = load("tiny-llava")
    model.save_pretrained(tmp_path / "llava")
    assert family(tmp_path / "llava") == "llava"
    model.set_trainable((model.projector_prefix,))
    save_trainable(model, tmp_path / "delta", base=str(tmp_path / "llava"))
    assert family(tmp_path / "delta") == "llava"  # a trainable-only save: its base's family
