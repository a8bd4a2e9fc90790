"""`mmlink sweep` on `tiny`: a layer grid trains and evaluates each point, skips k < l, and draws Fig. 6."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from mmlink.cli import main
from mmlink.data.synth import synthesize
from mmlink.recipes.sweep import SweepConfig, average_score


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    synthesize("mmlink_pair", root, 16, "train", 0, image_size=32, progress=False)
    return root / "data.jsonl"


def _write_sweep(tmp_path, pairs, grid, plot, tasks=("change_caption",)):
    train = tmp_path / "train.yaml"
    train.write_text(f"train_data: {pairs}\nout_dir: unused\nmodel: tiny\nsam_mode: bsg_adaptive\ntrainable: sam\n"
                     "lr: 1e-3\nwarmup_steps: 1\nmax_steps: 2\nbatch_size: 4\nmixed_precision: 'no'\n"
                     "eval_every: 0\nsample_every: 0\nsave_every: 0\nprogress: false\n")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(json.dumps({"out": str(tmp_path / "sweep"), "train": str(train), "grid": grid,
                                 "tasks": list(tasks), "plot": plot,
                                 "eval": {"limit": 10, "image_size": 32, "max_new_tokens": 4}}))
    return sweep


def test_layer_sweep_trains_each_point_with_k_at_least_l_and_draws_the_heatmap(tmp_path, pairs, capsys):
    sweep = _write_sweep(tmp_path, pairs, {"sam_guide_layer": [1, 2], "sam_context_layer": [1, 2]}, "layers")
    assert main(["sweep", "--config", str(sweep), "--no-progress"]) == 0
    out = tmp_path / "sweep"
    result = json.loads((out / "sweep.json").read_text())
    points = [(p["point"]["sam_guide_layer"], p["point"]["sam_context_layer"]) for p in result["points"]]
    assert points == [(1, 1), (1, 2), (2, 2)]  # (2, 1) has k < l
    for p in result["points"]:
        name = f"sam_guide_layer={p['point']['sam_guide_layer']}-sam_context_layer={p['point']['sam_context_layer']}"
        delta = json.loads((out / name / "train" / "final" / "mmlink_delta.json").read_text())
        assert delta["settings"]["sam_guide_layer"] == p["point"]["sam_guide_layer"]
        assert delta["settings"]["sam_context_layer"] == p["point"]["sam_context_layer"]
        metrics = json.loads((out / name / "eval" / "metrics.json").read_text())
        assert p["score"] == pytest.approx(average_score(metrics))
    with Image.open(out / "layers.png") as im:
        assert im.size[0] > 100
    assert "figure:" in capsys.readouterr().out


def test_volume_sweep_varies_the_training_records(tmp_path, pairs):
    sweep = _write_sweep(tmp_path, pairs, {"train_limit": [4, 16]}, "volume")
    assert main(["sweep", "--config", str(sweep), "--no-progress"]) == 0
    out = tmp_path / "sweep"
    seen = [json.loads((out / f"train_limit={n}" / "train" / "train_summary.json").read_text())["config"]
            ["train_limit"] for n in (4, 16)]
    assert seen == [4, 16]
    assert (out / "volume.png").stat().st_size > 0


def test_average_score_and_config_errors(tmp_path):
    metrics = {"tasks": {"a": {"metrics": {"ROUGE-L": 30.0, "CIDEr": 0.0, "BLEU-4": 3.0}},
                         "b": {"metrics": {"accuracy": 51.0}}}}
    assert average_score(metrics) == pytest.approx((11.0 + 51.0) / 2)
    metrics["tasks"]["a"]["metrics"].update({"fact precision": 90.0, "fact recall": None})  # not the papers' metrics
    assert average_score(metrics) == pytest.approx((11.0 + 51.0) / 2)
    base = {"out": "o", "train": "t.yaml", "tasks": ["x"]}
    with pytest.raises(ValueError, match="sam_guide_layer and sam_context_layer"):
        SweepConfig(**base, grid={"lr": [1.0]}, plot="layers")
    with pytest.raises(ValueError, match="exactly one grid key"):
        SweepConfig(**base, grid={"lr": [1.0], "seed": [0]}, plot="volume")
    bad = tmp_path / "bad.yaml"
    bad.write_text("out: o\ntrain: t\ngrid: {lr: [1]}\ntasks: [x]\ncolour: 1\n")
    with pytest.raises(ValueError, match="unknown key"):
        SweepConfig.from_file(bad)


def test_shipped_sweep_files_parse():
    from pathlib import Path

    root = Path(__file__).parents[2] / "configs" / "sweep"
    layers = SweepConfig.from_file(root / "mini_layers.yaml")
    assert [(p["sam_guide_layer"], p["sam_context_layer"]) for p in layers.points()] == [
        (2, 2), (2, 4), (2, 6), (4, 4), (4, 6), (6, 6)]
    volume = SweepConfig.from_file(root / "mini_volume.yaml")
    assert [p["train_limit"] for p in volume.points()] == [160, 320, 640, 1280]


@pytest.mark.parametrize("grid, needle", [
    ({"lr": [1e-3, "fast"]}, "sweep point lr=fast: lr: expected a number"),
    ({"sam_guide_layer": [1, 0]}, "SAM layers must be integers >= 1"),
    ({"sam_guide_layr": [1, 2]}, "unknown override(s) ['sam_guide_layr']"),
])
def test_every_point_is_checked_before_the_first_trains(tmp_path, pairs, capsys, grid, needle):
    sweep = _write_sweep(tmp_path, pairs, grid, "none")
    assert main(["sweep", "--config", str(sweep), "--no-progress"]) == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "sweep").exists()  # nothing trained, no half-made directory


def test_missing_sweep_data_names_the_file_and_how_to_make_it(tmp_path, capsys):
    sweep = _write_sweep(tmp_path, tmp_path / "nope.jsonl", {"train_limit": [4]}, "volume")
    assert main(["sweep", "--config", str(sweep), "--no-progress"]) == 2
    assert "train_data" in capsys.readouterr().err and not (tmp_path / "sweep").exists()
