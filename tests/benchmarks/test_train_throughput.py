"""benchmarks/train_throughput.py on `tiny`: the Stage-1 before/after mode and the default (base vs SAM) mode run end
to end; the old recipe's config and the batch's task mix."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tt():
    sys.path.insert(0, str(ROOT / "benchmarks"))  # the script imports benchlib from its own directory
    try:
        import train_throughput

        yield train_throughput
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def test_stage1_before_vs_after_on_tiny(tt, tmp_path, capsys):
    from mmlink.models import load
    from mmlink.train.config import TrainConfig

    out = tmp_path / "r.json"
    argv = ["--recipes", "stage1", "--models", "tiny", "--batch-size", "4", "--steps", "2", "--warmup", "0"]
    assert tt.main([*argv, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "samples/s before -> after, tiny: " in text
    assert "vision tower share of the step, tiny (" in text

    report = json.loads(out.read_text())
    assert report["settings"]["recipes"] == "stage1" and report["settings"]["dtype"] in ("bf16", "fp32")
    stage1 = report["stage1"]
    assert stage1["batch_tasks"] == {"caption": 2, "vqa_options": 1, "group_caption": 1}  # the make train-mini mix
    (r,) = stage1["results"]
    before, after = r["shape"]["before"], r["shape"]["after"]
    assert before["query_tokens"] == 2 * after["query_tokens"] == 8  # tiny has no colour bins: only the queries vary
    assert before["vision_width"] == after["vision_width"] and before["images"] == after["images"] >= 4
    assert before["image_tokens"] == 2 * after["image_tokens"] == 8 * after["images"]
    assert r["fresh"] == ["query_tokens"]  # everything else is the loaded model's
    # trainable = the prefixes listed in the Stage-1 YAML
    cfg = TrainConfig.from_file(ROOT / "configs" / "train" / "mini_stage1.yaml")
    model, _ = load("tiny", **cfg.model_kwargs())
    assert tuple(r["params"]["after"]) == model.set_trainable(cfg.trainable_prefixes)
    assert r["params"]["before"][0] == r["params"]["after"][0] + 4 * model.config.qformer_config.hidden_size
    for v in ("before", "after"):
        assert len(r["step_s"][v]) == len(r["vision_s"][v]) == 2 and min(r["step_s"][v]) > 0
        assert 0 < r["vision_share"][v] < 1 and r["flops"][v] > 0
        assert r["samples_per_s"][v] == pytest.approx(4 / statistics.median(r["step_s"][v]))
    assert r["flops"]["before"] > r["flops"]["after"]
    lo, hi = r["throughput_ratio_iqr"]
    assert lo <= hi and r["throughput_ratio_after_before"] > 0


def test_default_mode_is_base_vs_sam_on_tiny(tt, capsys):
    argv = ["--models", "tiny", "--steps", "1", "--warmup", "0", "--no-memory", "--peak-sizes", "64",
            "--peak-repeats", "1"]
    assert tt.main(argv) == 0
    text = capsys.readouterr().out
    assert "SAM (bsg_adaptive) vs base" in text and "SAM/base" in text


def test_defaults_per_mode(tt):
    sam = tt.parse_args([])
    assert (sam.recipes, sam.batch_size, sam.dtype) == ("sam", 4, "bf16")
    stage1 = tt.parse_args(["--recipes", "stage1"])
    assert stage1.batch_size == 8 and stage1.dtype in ("bf16", "fp32")  # the config's batch; its autocast here
    assert tt.parse_args(["--recipes", "stage1", "--batch-size", "3", "--dtype", "fp32"]).batch_size == 3
    with pytest.raises(SystemExit):
        tt.parse_args(["--recipes", "stage1", "--stage1-config", "/nonexistent.yaml"])


def test_old_recipe_config_of_the_efficientnet_tower(tt):
    from mmlink.models.qformer import MmlinkQFormerConfig

    text = dict(model_type="llama", vocab_size=260, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=4, num_key_value_heads=2)
    qformer = dict(vocab_size=260, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    new = MmlinkQFormerConfig(
        vision_config={"model_type": "mmlink_efficientnet_lite", "variant": "efficientnet-lite0", "color_bins": 4},
        qformer_config=qformer, text_config=text, num_query_tokens=16, image_token_index=260, sam_mode="none",
    )
    assert new.qformer_config.encoder_hidden_size == 1280 + 64
    old = tt.old_recipe_config(new)
    assert old.num_query_tokens == 32 and old.vision_config.color_bins == 0
    assert old.vision_config.hidden_size == old.qformer_config.encoder_hidden_size == 1280
    assert (old.sam_mode, old.text_config.hidden_size) == ("none", 32)  # the rest unchanged
    assert new.num_query_tokens == 16 and new.vision_config.color_bins == 4  # the input is left alone


def test_apportion_follows_the_stage1_mix(tt):
    assert tt.apportion(tt.STAGE1_MIX, 36) == {
        "caption": 14, "vqa_options": 4, "group_caption": 3, "change_caption": 3, "mmlink_pair": 3, "bison": 3,
        "svo": 3, "nlvr2": 3,
    }
    for n in (1, 4, 8, 20):
        assert sum(tt.apportion(tt.STAGE1_MIX, n).values()) == n
    assert tt.apportion(tt.STAGE1_MIX, 8) == {
        "caption": 3, "vqa_options": 1, "group_caption": 1, "change_caption": 1, "mmlink_pair": 1, "bison": 1,
    }
