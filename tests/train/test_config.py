"""TrainConfig: paper defaults, strict keys and types, YAML/JSON files, CLI-string overrides, the lora section."""

import json
from pathlib import Path

import pytest
import yaml

from mmlink.settings import from_mapping, parse_flags
from mmlink.train.config import LORA_TARGETS, TRAINABLE_POLICIES, LoraSettings, TrainConfig

EXAMPLES = Path(__file__).resolve().parents[2] / "configs" / "train"


def test_defaults_follow_the_paper_recipe():
    c = TrainConfig(train_data="d.jsonl", out_dir="out")
    assert (c.lr, c.warmup_steps, c.batch_size, c.weight_decay, c.betas) == (2e-5, 240, 20, 0.05, (0.9, 0.999))
    # the paper's bf16 autocast where the hardware computes bf16 natively, else none (mmlink.runtime)
    assert c.max_grad_norm == 1.0 and c.mixed_precision == "auto"
    assert c.trainable == "sam" and c.trainable_prefixes == ("sam.", "language_projection.")
    assert set(TRAINABLE_POLICIES) == {"sam", "projection", "qformer", "all"}
    assert c.lora is None and c.projector_lr is None and c.schedule_warmup_steps == 240


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
    assert parse_flags(TrainConfig, {"trainable": "qformer"}) == {"trainable": "qformer"}


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"learning_rate": 1e-4}, "unknown key"),
        ({"batch_size": "4"}, "batch_size: expected an integer"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"lr": "fast"}, "lr: expected a number"),
        ({"mixed_precision": "fp8"}, "mixed_precision: expected one of"),
        ({"frozen_eval": 1}, "frozen_eval: expected true/false"),
        ({"trainable": "everything"}, "trainable"),
        ({"betas": [0.9]}, "betas"),
        ({"sam_mode": "full"}, "sam_mode"),
        ({"lora": {"rank": 8}}, r"lora: unknown key\(s\) \['rank'\]; valid keys: r, alpha"),
        ({"lora": {"r": "8"}}, "lora.r: expected an integer"),
        ({"lora": {"r": 0}}, "lora.r must be >= 1"),
        ({"lora": {"alpha": 0}}, "lora.alpha must be > 0"),
        ({"lora": {"dropout": 1.0}}, r"lora.dropout must be in \[0, 1\)"),
        ({"lora": {"target_modules": "q_proj"}}, "lora.target_modules: expected a list"),
        ({"lora": {"target_modules": ["self_attn.q_proj"]}}, "lora.target_modules must be .* without dots"),
        ({"lora": {"target_modules": ["q_proj", "lm_head"]}}, "lm_head is never adapted"),
        ({"lora": {"save_merged": "yes"}}, "lora.save_merged: expected true/false"),
        ({"lora": 8}, "lora: expected a mapping"),
        ({"lora": {}, "trainable": "all"}, "trainable: 'all'.*beside its LoRA adapters"),
        ({"projector_lr": 0}, "projector_lr must be > 0"),
        ({"warmup_ratio": 1.5}, r"warmup_ratio must be in \[0, 1\)"),
        ({"warmup_ratio": 0.03, "warmup_steps": 10}, "set warmup_ratio or warmup_steps, not both"),
    ],
)
def test_bad_values_are_errors(extra, message):
    with pytest.raises(ValueError, match=message):
        from_mapping(TrainConfig, {"train_data": "d.jsonl", "out_dir": "o", **extra})


def test_required_keys_and_bad_files(tmp_path):
    with pytest.raises(ValueError, match="missing required"):
        from_mapping(TrainConfig, {"out_dir": "o"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="mapping"):
        TrainConfig.from_file(bad)
    with pytest.raises(FileNotFoundError):
        TrainConfig.from_file(tmp_path / "none.yaml")


def test_lora_section_defaults_to_cadvi_and_round_trips():
    c = from_mapping(TrainConfig, {"train_data": "d.jsonl", "out_dir": "o", "lora": {}, "trainable": "projection"})
    assert c.lora == LoraSettings(r=128, alpha=256.0, dropout=0.05, target_modules=LORA_TARGETS, save_merged=False)
    d = c.to_dict()
    assert d["lora"]["target_modules"] == list(LORA_TARGETS)  # plain lists: YAML/JSON safe
    assert from_mapping(TrainConfig, yaml.safe_load(yaml.safe_dump(d))) == c
    assert from_mapping(TrainConfig, json.loads(json.dumps(d))) == c
    # from the CLI: --lora '{r: 8, alpha: 16}' --projector-lr 2e-5 --warmup-ratio 0.03; --lora null switches it off
    o = parse_flags(TrainConfig, {"lora": "{r: 8, alpha: 16}", "projector_lr": "2e-5", "warmup_ratio": "0.03"})
    c = from_mapping(TrainConfig, {"train_data": "d.jsonl", "out_dir": "o", "max_steps": 1000, **o})
    assert (c.lora.r, c.lora.alpha, c.lora.dropout, c.projector_lr) == (8, 16.0, 0.05, 2e-5)
    assert c.schedule_warmup_steps == 30  # ceil(0.03 × 1000), as transformers' warmup_ratio
    assert from_mapping(TrainConfig, {**c.to_dict(), **parse_flags(TrainConfig, {"lora": "null"})}).lora is None


def test_the_projection_policy_is_the_models_projector():
    c = TrainConfig(train_data="d.jsonl", out_dir="o", trainable="qformer")
    assert c.trainable_prefixes_for("model.multi_modal_projector.") == (
        "query_tokens", "qformer.", "sam.", "model.multi_modal_projector.")  # the LLaVA family's projector
    assert TrainConfig(train_data="d.jsonl", out_dir="o", trainable="projection").trainable_prefixes == (
        "language_projection.",)
    c = TrainConfig(train_data="d.jsonl", out_dir="o", trainable=["<projector>", "sam."])
    assert c.trainable_prefixes_for("model.multi_modal_projector.") == ("model.multi_modal_projector.", "sam.")


def test_the_cadvi_example_config_holds_the_released_recipe():
    c = TrainConfig.from_file(EXAMPLES / "cadvi_lora_example.yaml")
    assert c.model == "mini-llava" and c.trainable == "projection"
    assert (c.lora.r, c.lora.alpha, c.lora.dropout, c.lora.target_modules) == (128, 256.0, 0.05, LORA_TARGETS)
    assert (c.lr, c.projector_lr, c.warmup_ratio) == (1e-4, 2e-5, 0.03)
    assert c.batch_size * c.grad_accum == 128  # CaD-VI's global batch on one process
