"""TrainConfig: paper defaults, strict keys and types, YAML/JSON files, CLI-string overrides."""

import json

import pytest

from mmlink.train.config import TRAINABLE_POLICIES, TrainConfig, parse_overrides


def test_defaults_follow_the_paper_recipe():
    c = TrainConfig(train_data="d.jsonl", out_dir="out")
    assert (c.lr, c.warmup_steps, c.batch_size, c.weight_decay, c.betas) == (2e-5, 240, 20, 0.05, (0.9, 0.999))
    # the paper's bf16 autocast where the hardware computes bf16 natively, else none (mmlink.runtime)
    assert c.max_grad_norm == 1.0 and c.mixed_precision == "auto"
    assert c.trainable == "sam" and c.trainable_prefixes == ("sam.", "language_projection.")
    assert set(TRAINABLE_POLICIES) == {"sam", "projection", "qformer", "all"}


def test_yaml_file_reads_yaml12_scalars_and_lists(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train_data: d.jsonl\nout_dir: o\nlr: 2e-5\nmixed_precision: no\nbetas: [0.9, 0.98]\n"
                 "trainable: [sam., language_projection.]\nsam_mode: bsg_mean\nmodel_overrides: {sam_context_pool: all}\n")
    c = TrainConfig.from_file(f)
    assert c.lr == 2e-5 and isinstance(c.lr, float)
    assert c.mixed_precision == "no"  # not YAML 1.1's False
    assert c.betas == (0.9, 0.98) and c.trainable == ("sam.", "language_projection.")
    assert c.model_kwargs() == {"sam_context_pool": "all", "sam_mode": "bsg_mean"}


def test_json_file_and_cli_string_overrides(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"train_data": "d.jsonl", "out_dir": "o", "max_steps": 5}))
    c = TrainConfig.from_file(f, {"lr": "1e-4", "max_steps": "10", "trainable": "sam.,language_projection.",
                                  "betas": "0.9,0.98", "progress": "false", "val_data": "v.jsonl"})
    assert (c.lr, c.max_steps, c.progress, c.val_data) == (1e-4, 10, False, "v.jsonl")
    assert c.trainable == ("sam.", "language_projection.") and c.betas == (0.9, 0.98)
    assert parse_overrides({"trainable": "qformer"}) == {"trainable": "qformer"}


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"learning_rate": 1e-4}, "unknown config key"),
        ({"batch_size": "4"}, "batch_size: expected an integer"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"lr": "fast"}, "lr: expected a number"),
        ({"mixed_precision": "fp8"}, "mixed_precision: expected one of"),
        ({"frozen_eval": 1}, "frozen_eval: expected true/false"),
        ({"trainable": "everything"}, "trainable"),
        ({"betas": [0.9]}, "betas"),
        ({"sam_mode": "full"}, "sam_mode"),
    ],
)
def test_bad_values_are_errors(extra, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict({"train_data": "d.jsonl", "out_dir": "o", **extra})


def test_required_keys_and_bad_files(tmp_path):
    with pytest.raises(ValueError, match="missing required"):
        TrainConfig.from_dict({"out_dir": "o"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="mapping"):
        TrainConfig.from_file(bad)
    with pytest.raises(FileNotFoundError):
        TrainConfig.from_file(tmp_path / "none.yaml")
