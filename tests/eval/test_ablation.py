"""`mmlink ablation` (the demo's Table 2) wiring, with every row played by `tiny`."""

from __future__ import annotations

import json
from pathlib import Path

from mmlink.eval.ablation import BASE, ROWS, SAM, TASKS, examples, run_ablation, table


def test_table_rows_and_examples_come_from_the_runs(tmp_path):
    out = tmp_path / "abl"
    result = run_ablation(out, limit=10, batch_size=5, dtype="float32", progress=False, image_size=32, max_new_tokens=8,
                          models={preset: "tiny" for preset, *_ in ROWS})
    text = table(result["runs"])
    lines = text.splitlines()
    assert len(lines) == 2 + len(ROWS)
    assert lines[0].count("ROUGE-L") == len(TASKS) + 1  # one per task + the average
    for line, (preset, *flags) in zip(lines[2:], ROWS):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == preset and cells[1:5] == ["✓" if f else "" for f in flags]
        metrics = json.loads((out / preset / "metrics.json").read_text())["tasks"]
        want = [metrics[t]["metrics"][m] for t in TASKS for m in ("ROUGE-L", "CIDEr", "BLEU-4")]
        assert [float(c) for c in cells[5:5 + len(want)]] == [round(v, 2) for v in want]
        avg = [sum(metrics[t]["metrics"][m] for t in TASKS) / len(TASKS) for m in ("ROUGE-L", "CIDEr", "BLEU-4")]
        assert [float(c) for c in cells[5 + len(want):]] == [round(v, 2) for v in avg]
    picked = examples(out)
    assert [p["task"] for p in picked] == list(TASKS[:2])
    for p in picked:
        rows = {json.loads(line)["id"]: json.loads(line) for line in (out / BASE / "predictions.jsonl").open()}
        sam = {json.loads(line)["id"]: json.loads(line) for line in (out / SAM / "predictions.jsonl").open()}
        assert p["base"] == rows[p["id"]]["text"] and p["sam"] == sam[p["id"]]["text"]
        assert len(p["images"]) >= 2 and all(Path(i).is_file() for i in p["images"])
    assert result["paths"]["png"].exists() and result["paths"]["csv"].exists()
    assert result["dtype"]["name"] == "float32" and result["dtype"]["requested"] == "float32"
    assert "dtype float32 (requested float32)" in result["paths"]["md"].read_text()


def test_the_command_defaults_to_auto_dtype():
    import argparse
    import inspect

    from mmlink.eval.ablation import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    assert parser.parse_args(["ablation"]).dtype == "auto"
    assert inspect.signature(run_ablation).parameters["dtype"].default == "auto"
