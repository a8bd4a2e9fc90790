"""`mmlink ablation` (the demo's Table 2) wiring, with every row played by `tiny`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from mmlink.recipes.ablation import (BASE, REFERENCE, ROWS, SAM, TASKS, difference_table, examples, examples_sheet,
                                  run_ablation, table)


def _answer_half_right(predictions: Path) -> None:
    """Every other answer of a run becomes its first reference: a row far better than `tiny`'s noise, item by item
    (the next `run_ablation` rescores the stored answers without generating)."""
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    for k, r in enumerate(rows):
        if k % 2 == 0:
            r["text"] = r["refs"][0]
    predictions.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_table_rows_and_examples_come_from_the_runs(tmp_path):
    out = tmp_path / "abl"
    kwargs = dict(limit=10, batch_size=5, dtype="float32", progress=False, image_size=32, max_new_tokens=8,
                  models={preset: "tiny" for preset, *_ in ROWS})
    run_ablation(out, **kwargs)
    _answer_half_right(out / SAM / "predictions.jsonl")
    result = run_ablation(out, **kwargs)
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
    sheet = examples_sheet(picked, out / "examples.png")
    with Image.open(sheet) as im:  # one block per example: images, prompt, base / SAM / reference
        assert im.width == 1100 and im.height > 2 * 250
    assert result["dtype"]["name"] == "float32" and result["dtype"]["requested"] == "float32"
    assert "dtype float32 (requested float32)" in result["paths"]["md"].read_text()

    # every row against the reference row (Table 2's first), with a paired bootstrap interval per task and metric
    diffs = result["differences"]
    assert REFERENCE == ROWS[0][0] and set(diffs) == {preset for preset, *_ in ROWS[1:]}
    ref = json.loads((out / REFERENCE / "metrics.json").read_text())["tasks"]
    for preset in diffs:
        mine = json.loads((out / preset / "metrics.json").read_text())["tasks"]
        for task in TASKS:
            assert {"ROUGE-L", "CIDEr", "BLEU-4"} <= set(diffs[preset][task])
            for metric, d in diffs[preset][task].items():
                assert d["difference"] == pytest.approx(mine[task]["metrics"][metric] - ref[task]["metrics"][metric])
                if preset != SAM:  # the same model as the reference: the paired interval is exactly 0
                    assert d["difference"] == 0 and d["ci"] == [0.0, 0.0]
                elif metric in ("ROUGE-L", "CIDEr", "BLEU-4"):  # half its answers right: clearly better, not surely
                    lo, hi = d["ci"]
                    assert 0 < lo < d["difference"] < hi
    md = result["paths"]["ablation_md"].read_text()
    assert table(result["runs"]) in md and difference_table(diffs) in md
    sam_line = next(line for line in md.splitlines() if line.startswith(f"| {SAM} |") and "[" in line)
    d = diffs[SAM][TASKS[0]]["CIDEr"]
    assert f"{d['difference']:+.2f} [{d['ci'][0]:+.2f}, {d['ci'][1]:+.2f}]" in sam_line
    rows = list(csv.DictReader(result["paths"]["ablation_csv"].open()))
    row = next(r for r in rows if (r["row"], r["task"], r["metric"]) == (SAM, TASKS[0], "CIDEr"))
    assert float(row["difference"]) == pytest.approx(d["difference"]) and float(row["ci_low"]) == d["ci"][0]
    assert result["paths"]["ablation_png"].stat().st_size > 0


def test_the_command_defaults_to_auto_dtype():
    import argparse
    import inspect

    from mmlink.recipes.ablation import AblationSettings, add_parser
    from mmlink.settings import from_args

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    assert from_args(AblationSettings, parser.parse_args(["ablation"])).dtype == "auto"
    assert inspect.signature(run_ablation).parameters["dtype"].default == "auto"
