"""scripts/ship_mini.py: finished runs become package deltas whose bases do not depend on the runs' location."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("ship_mini", Path(__file__).parents[2] / "scripts" / "ship_mini.py")
ship_mini = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ship_mini)


def _fake_run(run: Path, base: str, sam_mode: str, size: int) -> None:
    (run / "final").mkdir(parents=True)
    (run / "final" / "trainable.safetensors").write_bytes(b"\0" * size)
    (run / "final" / "mmlink_delta.json").write_text(json.dumps(
        {"format": 1, "base": base, "settings": {"sam_mode": sam_mode}, "parameters": 1}))
    (run / "train_summary.json").write_text(json.dumps({
        "steps": 3, "time_s": 60.0, "trainable_params": 1, "initial_train_loss": 2.0, "final_train_loss": 1.0,
        "final_val_loss": 1.5, "config": {"train_data": "d.jsonl", "val_data": "v.jsonl", "seed": 0, "lr": 1e-4,
                                          "warmup_steps": 1, "batch_size": 8}}))


def test_ship_rewrites_bases_and_records_the_runs(tmp_path):
    runs, dest = tmp_path / "runs", tmp_path / "dest"
    _fake_run(runs / "stage1", "mini", "none", 10)
    for i, v in enumerate(ship_mini.VARIANTS):
        _fake_run(runs / f"stage2_{v}", "runs/mini/stage1/final", "none" if v in ("base", "cmaa") else v, 20 + i)
    assert ship_mini.main(["--runs", str(runs), "--dest", str(dest)]) == 0
    assert json.loads((dest / "stage1" / "mmlink_delta.json").read_text())["base"] == "mini-untrained"
    for i, v in enumerate(ship_mini.VARIANTS):
        meta = json.loads((dest / v / "mmlink_delta.json").read_text())
        assert meta["base"] == "../stage1" and (dest / v / meta["base"]).resolve() == (dest / "stage1").resolve()
        assert (dest / v / "trainable.safetensors").stat().st_size == 20 + i
    record = json.loads((dest / "training.json").read_text())
    assert set(record) == {"stage1", *ship_mini.VARIANTS} and record["linear"]["sam_mode"] == "linear"


def test_an_unfinished_run_is_an_error(tmp_path, capsys):
    _fake_run(tmp_path / "runs" / "stage1", "mini", "none", 10)
    assert ship_mini.main(["--runs", str(tmp_path / "runs"), "--dest", str(tmp_path / "d")]) == 2
    assert "stage2_base" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        ship_mini.ship(tmp_path / "nothing", tmp_path / "d")


def test_ship_cadvi_copies_the_lora_adapters_and_chains_phase2_on_phase1(tmp_path):
    runs, dest = tmp_path / "runs", tmp_path / "dest"
    for run, base, size in ((runs / "phase1_lora", "mini-llava", 10), (runs / "phase2" / "train", "/abs/phase1/final", 12)):
        _fake_run(run, base, "none", size)
        meta = json.loads((run / "final" / "mmlink_delta.json").read_text())
        (run / "final" / "mmlink_delta.json").write_text(json.dumps({**meta, "adapter": "adapter"}))
        (run / "final" / "adapter").mkdir()
        (run / "final" / "adapter" / "adapter_config.json").write_text("{}")
        (run / "final" / "adapter" / "adapter_model.safetensors").write_bytes(b"\0" * 100)
        (run / "final" / "adapter" / "README.md").write_text("peft's template card")
    assert ship_mini.main(["--recipe", "mini-cadvi", "--runs", str(runs), "--dest", str(dest)]) == 0
    assert json.loads((dest / "phase1" / "mmlink_delta.json").read_text())["base"] == "mini-llava"
    assert json.loads((dest / "phase2" / "mmlink_delta.json").read_text())["base"] == "../phase1"
    for phase in ("phase1", "phase2"):
        adapter = json.loads((dest / phase / "adapter" / "adapter_config.json").read_text())
        assert adapter == {"base_model_name_or_path": "mini-llava" if phase == "phase1" else "../phase1"}
        assert not (dest / phase / "adapter" / "README.md").exists()
    record = json.loads((dest / "training.json").read_text())
    assert record["phase1"]["bytes"] == 110 and record["phase2"]["bytes"] == 112  # the delta and its adapter
