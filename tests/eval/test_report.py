"""mmlink.eval.report: metrics.json loading, per-run report, comparison table/CSV and its chart (the charts' own
tests: tests/eval/test_plots.py)."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import pytest

from lightimport import run_light

from mmlink.eval import report


def _metrics(label: str | None = "mini", **task_overrides) -> dict:
    """A full mmlink-eval-v1 metrics dict (the harness's schema); task_overrides replace or drop (None) tasks."""
    tasks = {
        "group_caption": {
            "kind": "generate",
            "n": 50,
            "metrics": {"ROUGE-L": 20.1, "CIDEr": 19.5, "BLEU-4": 3.2},
            "data": "runs/x/data.jsonl",
            "group": "Group captioning",
        },
        "storytelling": {
            "kind": "generate",
            "n": 50,
            "metrics": {"ROUGE-L": 19.5, "CIDEr": 25.4, "BLEU-4": 3.25},
            "group": "Storytelling",
        },
        "bison": {"kind": "rank", "n": 100, "metrics": {"accuracy": 55.0}, "chance": 50.0, "scoring": "sum"},
        "eqben": {"kind": "pair_match", "n": 100, "metrics": {"accuracy": 31.0}, "chance": 25.0, "scoring": "sum"},
        "cad_qa": {
            "kind": "judge",
            "n": 40,
            "metrics": {"rating": 1.9},
            "judge": {
                "backend": "local:SmolLM2-135M",
                "weak": True,
                "prompt_version": "cadqa-judge-v1",
                "rated": 38,
                "failures": 2,
            },
        },
    }
    for name, task in task_overrides.items():
        if task is None:
            tasks.pop(name)
        else:
            tasks[name] = task
    data = {
        "format": "mmlink-eval-v1",
        "model": "mini",
        "model_settings": {"sam_mode": "bsg_adaptive", "sam_context_pool": "others"},
        "commit": "abc1234",
        "seed": 0,
        "created": "2026-11-24T12:00:00Z",
        "config": {"batch_size": 8, "limit": 50, "option_scoring": "sum", "max_new_tokens": 64, "tokenize": "simple"},
        "tasks": tasks,
    }
    if label is not None:
        data["label"] = label
    return data


def _write(root: Path, name: str, data: dict) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps(data), encoding="utf-8")
    return run


def _cells(line: str) -> list[str]:
    assert line.startswith("| ") and line.endswith(" |"), line
    return [c.strip() for c in line[2:-2].split(" | ")]


def _table(md: str, heading: str) -> list[list[str]]:
    """The first markdown table after the line starting with ``heading``: header, then body rows (no align row)."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    i = start + 1
    while not lines[i].startswith("|"):
        i += 1
    rows = []
    while i < len(lines) and lines[i].startswith("|"):
        rows.append(_cells(lines[i]))
        i += 1
    return [rows[0]] + rows[2:]


def _grouped(table: list[list[str]]) -> dict[str, dict[tuple[str, str], str]]:
    """A SAM-layout table (group header row, metric row, value rows) as {row label: {(group, metric): cell}}."""
    header, sub, *body = table
    keys, group = [], ""
    for h, m in zip(header[1:], sub[1:]):
        group = h or group  # a group names only its first column
        keys.append((group, m))
    return {row[0]: dict(zip(keys, row[1:])) for row in body}


# ---------------------------------------------------------------------------------------------------------- loading


def test_load_metrics_from_dir_and_file(tmp_path):
    run = _write(tmp_path, "run_a", _metrics())
    from_dir = report.load_metrics(run)
    from_file = report.load_metrics(run / "metrics.json")
    assert from_dir == from_file
    assert from_dir["_path"] == str(run)
    assert from_dir["tasks"]["bison"]["metrics"]["accuracy"] == 55.0


@pytest.mark.parametrize(
    "content, error, phrase",
    [
        ("{not json", ValueError, "invalid JSON"),
        (json.dumps({"model": "mini", "tasks": {}}), ValueError, "missing 'format'"),
        (json.dumps({"format": "mmlink-eval-v0", "model": "mini", "tasks": {}}), ValueError, "unsupported format"),
        (json.dumps({"format": "mmlink-eval-v1", "model": "mini"}), ValueError, "missing 'tasks'"),
        (json.dumps({"format": "mmlink-eval-v1", "model": "mini", "tasks": []}), ValueError, "'tasks' must be"),
        (json.dumps([1, 2]), ValueError, "expected a JSON object"),
    ],
)
def test_load_metrics_errors_name_the_file(tmp_path, content, error, phrase):
    file = tmp_path / "metrics.json"
    file.write_text(content, encoding="utf-8")
    with pytest.raises(error) as info:
        report.load_metrics(tmp_path)
    assert phrase in str(info.value)
    assert str(file) in str(info.value)


def test_load_metrics_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.json in run directory"):
        report.load_metrics(tmp_path)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        report.load_metrics(tmp_path / "nope.json")


# ---------------------------------------------------------------------------------------------------------- one run


def test_run_markdown_header():
    md = report.run_markdown(_metrics(label="SAM mini"))
    assert md.startswith("# Evaluation report: SAM mini\n")
    assert "- Model: `mini`" in md
    assert "- Model settings: sam_mode=bsg_adaptive, sam_context_pool=others" in md
    assert "- Commit: `abc1234`" in md and "- Seed: 0" in md
    assert "- Config: batch_size=8, limit=50, option_scoring=sum, max_new_tokens=64, tokenize=simple" in md


def test_run_markdown_generation_table_sam_layout():
    md = report.run_markdown(_metrics())
    table = _table(md, "## Generation tasks")
    assert table[1][1:4] == ["ROUGE-L", "CIDEr", "BLEU-4"]  # the papers' order within each group
    row = _grouped(table)["mini"]
    assert row[("group_caption", "ROUGE-L")] == "20.10"
    assert row[("group_caption", "CIDEr")] == "19.50"
    assert row[("group_caption", "BLEU-4")] == "3.20"
    assert row[("storytelling", "CIDEr")] == "25.40"
    assert row[("storytelling", "BLEU-4")] == "3.25"
    # Average = mean of the task values, per metric.
    assert row[("Average", "ROUGE-L")] == f"{(20.1 + 19.5) / 2:.2f}" == "19.80"
    assert row[("Average", "CIDEr")] == f"{(19.5 + 25.4) / 2:.2f}" == "22.45"
    assert float(row[("Average", "BLEU-4")]) == pytest.approx((3.2 + 3.25) / 2, abs=0.006)
    assert "- `group_caption` (Group captioning): n=50, data `runs/x/data.jsonl`" in md
    assert "- `storytelling` (Storytelling): n=50" in md


def test_run_markdown_closed_ended_and_scoring():
    md = report.run_markdown(_metrics())
    table = _table(md, "## Closed-ended tasks")
    assert table[0] == ["Model", "bison", "eqben"]
    assert table[1] == ["mini", "55.00 (chance 50)", "31.00 (chance 25)"]
    assert "Candidates scored by: summed log-likelihood of each candidate's tokens + EOS." in md
    assert "- `bison`: rank, n=100" in md and "- `eqben`: pair_match, n=100" in md

    mean = _metrics(bison={"kind": "rank", "n": 10, "metrics": {"accuracy": 70.0}, "chance": 50, "scoring": "mean"})
    md_mean = report.run_markdown(mean)
    mean_line = (
        "Candidates scored by (`bison`): log-likelihood divided by the candidate's token count (length-normalised)."
    )
    assert mean_line in md_mean
    assert "Candidates scored by (`eqben`): summed log-likelihood" in md_mean


def test_run_markdown_judge_and_weak_warning():
    md = report.run_markdown(_metrics())
    table = _table(md, "## Judged open-ended tasks")
    assert table[0][:3] == ["Task", "n", "Mean rating (0-5)"]
    # the judge's AUC: "—" in metrics written before `mmlink judge-check` existed
    assert table[1] == ["cad_qa", "40", "1.90", "38", "2", "—", "local:SmolLM2-135M", "cadqa-judge-v1"]
    assert report.WEAK_JUDGE_TEXT in md

    strong = _metrics()
    strong["tasks"]["cad_qa"]["judge"]["weak"] = False
    assert report.WEAK_JUDGE_TEXT not in report.run_markdown(strong)


def test_run_markdown_blind_rows_gap_and_intervals():
    data = _metrics()
    gc, st, bison, qa = (data["tasks"][t] for t in ("group_caption", "storytelling", "bison", "cad_qa"))
    gc["ci"] = {"ROUGE-L": [18.0, 22.25], "CIDEr": [15.0, 24.0], "BLEU-4": [2.0, 4.5]}
    for task, blind in ((gc, {"ROUGE-L": 10.1, "CIDEr": 4.5, "BLEU-4": 3.7}),
                        (st, {"ROUGE-L": 19.5, "CIDEr": 20.4, "BLEU-4": 1.25}),
                        (bison, {"accuracy": 50.0}), (qa, {"rating": 1.0})):
        task["blind"] = blind
        task["gap"] = {m: task["metrics"][m] - v for m, v in blind.items()}
    gc["gap_ci"] = {"ROUGE-L": [5.0, 15.5], "CIDEr": [-1.0, 30.0], "BLEU-4": [-2.0, 1.0]}
    bison.update(scoring="generate", unmatched=3, blind_unmatched=7)
    md = report.run_markdown(data)
    rows = _grouped(_table(md, "## Generation tasks"))
    assert rows[report.BLIND][("group_caption", "ROUGE-L")] == "10.10"
    assert rows[report.GAP][("group_caption", "ROUGE-L")] == "+10.00"
    assert rows[report.GAP][("group_caption", "BLEU-4")] == "-0.50"
    assert rows[report.GAP][("Average", "CIDEr")] == f"{((19.5 - 4.5) + (25.4 - 20.4)) / 2:+.2f}" == "+10.00"
    assert "  - 95% CI (bootstrap): ROUGE-L [18.00, 22.25], CIDEr [15.00, 24.00], BLEU-4 [2.00, 4.50]" in md
    assert "  - gap real − blind, 95% CI (paired bootstrap): ROUGE-L [+5.00, +15.50], CIDEr [-1.00, +30.00]" in md
    closed = _table(md, "## Closed-ended tasks")
    assert closed[2] == [report.BLIND, "50.00", "—"] and closed[3] == [report.GAP, "+5.00", "—"]
    assert "- `bison`: rank, n=100, 3 answer(s) matched no option (7 in the blind pass)" in md
    assert "Candidates scored by (`bison`): a short greedy answer matched to the options" in md
    judge = _table(md, "## Judged open-ended tasks")
    assert judge[0][:5] == ["Task", "n", "Mean rating (0-5)", "Blind", "Gap"]
    assert judge[1][:5] == ["cad_qa", "40", "1.90", "1.00", "+0.90"]
    # without a blind pass the tables keep their plain layout
    plain = report.run_markdown(_metrics())
    assert report.GAP not in plain and "| Blind |" not in plain


def test_run_markdown_minimal_file():
    """Only format, model and tasks: optional fields read 'not recorded', one generation task has no Average."""
    minimal = {
        "format": "mmlink-eval-v1",
        "model": "ckpt/dir",
        "tasks": {"group_caption": {"kind": "generate", "metrics": {"ROUGE-L": 12.0}}},
    }
    md = report.run_markdown(minimal)
    assert "# Evaluation report: ckpt/dir" in md
    assert "- Commit: not recorded" in md and "- Seed: not recorded" in md
    table = _table(md, "## Generation tasks")
    assert "Average" not in table[0]
    row = _grouped(table)["ckpt/dir"]
    assert row[("group_caption", "ROUGE-L")] == "12.00"
    assert row[("group_caption", "CIDEr")] == report.MISSING
    assert "n=not recorded" in md
    assert "## Closed-ended" not in md and "## Judged" not in md


# ------------------------------------------------------------------------------------------------------- comparison


def _three_runs(tmp_path) -> list[dict]:
    a = _metrics(label="A")
    b = _metrics(label="B", storytelling=None)  # lacks a generation task
    b["tasks"]["bison"]["metrics"]["accuracy"] = 60.0
    c = copy.deepcopy(a)
    c["label"] = "C"
    c["tasks"]["group_caption"]["metrics"]["ROUGE-L"] = 22.5
    c["tasks"]["eqben"]["metrics"]["accuracy"] = 31.0  # ties with A
    return [report.load_metrics(_write(tmp_path, name, d)) for name, d in (("a", a), ("b", b), ("c", c))]


def test_compare_best_is_bold_and_missing_task(tmp_path):
    md, rows = report.compare(_three_runs(tmp_path))
    by_run = {r["run"]: r for r in rows}
    assert list(by_run) == ["A", "B", "C"]
    assert by_run["B"]["storytelling/ROUGE-L"] is None
    assert by_run["B"]["Average/CIDEr"] is None  # an average over fewer tasks would not be comparable
    assert by_run["A"]["Average/CIDEr"] == pytest.approx((19.5 + 25.4) / 2)
    assert by_run["C"]["Average/ROUGE-L"] == pytest.approx((22.5 + 19.5) / 2)

    table = _grouped(_table(md, "# Comparison of 3 runs"))
    assert table["C"][("group_caption", "ROUGE-L")] == "**22.50**"
    assert table["A"][("group_caption", "ROUGE-L")] == "20.10"
    assert table["B"][("bison", "accuracy")] == "**60.00**"
    assert table["A"][("bison", "accuracy")] == "55.00"
    assert table["A"][("eqben", "accuracy")] == table["C"][("eqben", "accuracy")] == "**31.00**"  # ties: all bold
    assert table["B"][("storytelling", "ROUGE-L")] == report.MISSING
    assert table["B"][("Average", "ROUGE-L")] == report.MISSING
    assert table["C"][("Average", "ROUGE-L")] == "**21.00**"


def test_compare_column_order_and_names(tmp_path):
    first = _metrics(label="mini", storytelling=None)
    second = _metrics(label="mini", extra={"kind": "rank", "n": 5, "metrics": {"accuracy": 40.0}, "chance": 50})
    runs = [report.load_metrics(_write(tmp_path, name, d)) for name, d in (("run_a", first), ("run_b", second))]
    columns, gen_tasks = report.comparison_columns(runs)
    assert gen_tasks == ["group_caption", "storytelling"]
    assert columns[:3] == [("group_caption", m) for m in ("ROUGE-L", "CIDEr", "BLEU-4")]
    # Tasks in first-seen order; Average right after the last generation task; new tasks of later runs appended.
    tasks = list(dict.fromkeys(t for t, _ in columns))
    assert tasks == ["group_caption", "bison", "eqben", "cad_qa", "storytelling", "Average", "extra"]
    _, rows = report.compare(runs)
    assert [r["run"] for r in rows] == ["mini (run_a)", "mini (run_b)"]  # duplicate labels get the directory

    no_label = _metrics(label=None)
    _, rows = report.compare([no_label])
    assert rows[0]["run"] == "mini"


def test_compare_rejects_empty():
    with pytest.raises(ValueError, match="no runs"):
        report.compare([])


def test_write_comparison_csv_roundtrip_and_png(tmp_path):
    runs = _three_runs(tmp_path)
    md, rows = report.compare(runs)
    paths = report.write_comparison(runs, tmp_path / "out" / "cmp")
    assert set(paths) == {"md", "csv", "png"}
    assert paths["md"].read_text(encoding="utf-8") == md
    with paths["csv"].open(newline="", encoding="utf-8") as f:
        read = list(csv.DictReader(f))
    assert len(read) == len(rows)
    for got, want in zip(read, rows):
        assert set(got) == set(want)
        for key, value in want.items():
            if value is None:
                assert got[key] == ""
            elif isinstance(value, float):
                assert float(got[key]) == value
            else:
                assert got[key] == value
    assert read[2]["group_caption/ROUGE-L"] == "22.5"

    from PIL import Image

    with Image.open(paths["png"]) as im:
        assert im.format == "PNG"
        assert im.size[0] > 0 and im.size[1] > 0


# ------------------------------------------------------------------------------------------------------------ plots


def test_import_loads_neither_torch_nor_matplotlib():
    run_light("import mmlink.eval.report, mmlink.eval.plots", heavy=("torch", "transformers", "matplotlib"))


def test_run_markdown_shows_fact_precision_and_recall_beside_sams_metrics():
    facts = {"precision/color": 80.0, "recall/color": 50.0, "precision/object": 100.0}
    gc = {"kind": "generate", "n": 50, "metrics": {"ROUGE-L": 20.1, "CIDEr": 19.5, "BLEU-4": 3.2,
                                                    "fact precision": 91.25, "fact recall": 40.0}, "facts": facts}
    md = report.run_markdown(_metrics(group_caption=gc))
    table = _table(md, "## Generation tasks")
    assert table[1][1:6] == ["ROUGE-L", "CIDEr", "BLEU-4", "fact precision", "fact recall"]
    row = _grouped(table)["mini"]
    assert row[("group_caption", "fact precision")] == "91.25" and row[("group_caption", "fact recall")] == "40.00"
    assert row[("storytelling", "fact precision")] == report.MISSING  # a task scored without scene graphs
    assert row[("Average", "fact precision")] == report.MISSING  # an average over fewer tasks would mislead
    assert "world facts per type (precision / recall): color 80.00 / 50.00, object 100.00 / —" in md
    assert "other metrics" not in md  # the fact scores are columns, not left over
    # undefined precision (no fact stated) is written as null and shown as missing
    gc["metrics"]["fact precision"] = None
    assert _grouped(_table(report.run_markdown(_metrics(group_caption=gc)), "## Generation tasks"))["mini"][
        ("group_caption", "fact precision")] == report.MISSING
    # without fact scores the table keeps SAM's three columns
    plain = _table(report.run_markdown(_metrics()), "## Generation tasks")
    assert "fact precision" not in plain[1]



def test_the_comparison_chart_draws_each_runs_intervals(tmp_path, monkeypatch):
    import mmlink.eval.plots as plots
    from mmlink.eval.report import write_comparison

    seen = {}
    monkeypatch.setattr(plots, "bar_chart", lambda rows, columns, path, title=None, errors=None:
                        seen.update(errors=errors, title=title) or Path(path))
    run = {"format": "mmlink-eval-v1", "model": "m", "label": "m", "seed": 0,
           "tasks": {"bison": {"kind": "rank", "n": 10, "metrics": {"accuracy": 60.0}, "ci": {"accuracy": [30.0, 90.0]}}}}
    write_comparison([run], tmp_path)
    assert seen["errors"] == {"m": {"bison/accuracy": [30.0, 90.0]}} and "95% bootstrap" in seen["title"]
