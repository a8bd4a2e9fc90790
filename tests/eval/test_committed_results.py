"""The README's Table 2 at n = 200 (SAM's ablation on the world) is reproducible from the committed predictions.

``docs/results/table2_n200/<row>/`` holds each row's ``predictions.jsonl`` and ``metrics.json`` exactly as
``mmlink ablation --limit 200 --out runs/ablation_200`` wrote them. Re-scoring needs no model and no pixels: the
world's test items (their references and scene graphs) are regenerated from the task generators at the run's seed,
so every number — ROUGE-L, CIDEr, BLEU-4, fact precision and recall, their bootstrap intervals, each row's paired
difference from `mini-stage1` — is recomputed here and compared with metrics.json, ablation.csv and the README.
The `mini` row runs by default (seconds); the other four rows and the paired differences are ``slow`` (~30 s).
"""

from __future__ import annotations

import csv
import functools
import json
import re
import warnings
from pathlib import Path

import pytest

from mmlink.data.synth import sample_id
from mmlink.data.tasks import TASKS as WORLD_TASKS
from mmlink.data.world.scene import rng_for, scene_to_dict
from mmlink.eval.harness import EvalConfig, PredictionStore, score_task
from mmlink.eval.intervals import intervals, paired_intervals, task_statistics
from mmlink.eval.tasks import EVAL_TASKS
from mmlink.metrics import EmptyPredictionWarning
from mmlink.recipes.ablation import CI_METRICS, GENERATION_METRICS, REFERENCE, ROWS, TASKS, signed_interval

pytest.importorskip("pycocoevalcap")

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results" / "table2_n200"
PRESETS = [preset for preset, *_ in ROWS]
# what the README says produced them; checked against each metrics.json below
SPLIT, SEED, N = "test", 0, 200


def _metrics(preset: str) -> dict:
    return json.loads((RESULTS / preset / "metrics.json").read_text(encoding="utf-8"))


def _rows(preset: str, task: str) -> dict[str, dict]:
    return {r["id"]: r for r in PredictionStore(RESULTS / preset / "predictions.jsonl").rows(task)}


@functools.lru_cache(maxsize=None)
def _items(task: str) -> tuple:
    """The eval items of ``task``'s world test set (split, seed, n as the runs used), without rendering: the
    records `mmlink synth` writes, less the pixels (`mmlink.data.synth`: sample i is the task generator on
    ``rng_for(split, seed, i, stream=task)``, the record's ``meta.scenes`` its scene graphs)."""
    spec = EVAL_TASKS.get(task)
    world = spec.world_task
    items = []
    for i in range(N):
        sample = WORLD_TASKS.get(world)(rng_for(SPLIT, SEED, i, stream=world), SPLIT)
        record = {"id": sample_id(world, SPLIT, SEED, i), "task": world,
                  "image": [f"images/{i}_{k}.png" for k in range(len(sample.scenes))],  # never opened
                  "conversations": [dict(t) for t in sample.conversations],
                  "meta": {**sample.meta, "scenes": [scene_to_dict(s) for s in sample.scenes]}}
        # through JSON, as the harness reads a record back from data.jsonl
        items += spec.build_items(json.loads(json.dumps(record)))
    return tuple(items)


@functools.lru_cache(maxsize=None)
def _stats(preset: str, task: str) -> dict:
    return task_statistics("generate", list(_items(task)), _rows(preset, task), "simple")


def test_the_committed_runs_are_the_readme_rows_on_one_test_set():
    assert sorted(p.name for p in RESULTS.iterdir() if p.is_dir()) == sorted(PRESETS)
    for preset in PRESETS:
        m = _metrics(preset)
        assert (m["model"], m["label"], m["format"]) == (preset, preset, "mmlink-eval-v1")
        assert (m["config"]["split"], m["config"]["seed"], m["config"]["limit"]) == (SPLIT, SEED, N)
        assert m["config"]["tokenize"] == "simple" and m["dtype"]["name"] == "bfloat16"
        assert sorted(m["tasks"]) == sorted(TASKS) and all(m["tasks"][t]["n"] == N for t in TASKS)
        ids = [(r["task"], r["id"]) for r in map(json.loads, (RESULTS / preset / "predictions.jsonl").open())]
        assert len(ids) == len(set(ids)) == N * len(TASKS)


@pytest.mark.parametrize("task", TASKS)
def test_the_world_still_generates_the_test_items_the_predictions_answered(task):
    """Each prediction row carries its item's references: the generators must still make those items, or the
    committed predictions no longer answer the world's test split (and the README's numbers are not reproducible)."""
    refs = {it.id: it.refs for it in _items(task)}
    for preset in PRESETS:
        rows = _rows(preset, task)
        assert sorted(rows) == sorted(refs), preset
        changed = [i for i in sorted(refs) if rows[i]["refs"] != refs[i]]
        assert not changed, f"{preset}: {len(changed)} item(s) have other references now, first {changed[0]}"


@pytest.mark.parametrize("preset", [p if p == "mini" else pytest.param(p, marks=pytest.mark.slow) for p in PRESETS])
def test_rescoring_the_committed_predictions_gives_their_metrics_json(preset):
    """`score_task` and the bootstrap intervals on the committed predictions: every number of metrics.json, exactly
    (the same code on the same inputs), but each task's timing and data path."""
    recorded = _metrics(preset)["tasks"]
    config = EvalConfig(out=str(RESULTS / preset), limit=N, seed=SEED, progress=False)
    store = PredictionStore(RESULTS / preset / "predictions.jsonl")
    for task in TASKS:
        items = list(_items(task))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EmptyPredictionWarning)  # storytelling: most answers are empty
            entry = score_task(EVAL_TASKS.get(task), items, store, config)
            entry["ci"] = intervals(entry["metrics"], _stats(preset, task))
        want = {k: v for k, v in recorded[task].items() if k not in ("seconds", "data")}
        assert entry == want, task


def test_mmlink_score_reproduces_the_corpus_metrics_from_the_file_alone(capsys):
    """`mmlink score --pred predictions.jsonl --task T` (the references are in the rows): the same three numbers."""
    from mmlink.cli import main

    recorded = _metrics("mini")["tasks"]
    for task in TASKS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EmptyPredictionWarning)
            assert main(["score", "--pred", str(RESULTS / "mini" / "predictions.jsonl"), "--task", task]) == 0
        got = json.loads(capsys.readouterr().out)
        assert got == {**{m: recorded[task]["metrics"][m] for m in GENERATION_METRICS}, "n": N}, task


@pytest.mark.slow  # ~15 s: the per-item statistics of all five rows
def test_the_paired_differences_from_stage1_are_ablation_csv():
    """Each row − `mini-stage1` with its 95 % paired bootstrap interval, recomputed: ablation.csv, exactly."""
    with (RESULTS / "ablation.csv").open(encoding="utf-8", newline="") as f:
        recorded = {(r["row"], r["task"], r["metric"]): r for r in csv.DictReader(f)}
    seen = set()
    for preset in PRESETS:
        if preset == REFERENCE:
            continue
        for task in TASKS:
            mine, ref = _metrics(preset)["tasks"][task]["metrics"], _metrics(REFERENCE)["tasks"][task]["metrics"]
            cis = paired_intervals(_stats(preset, task), _stats(REFERENCE, task), list(CI_METRICS))
            for metric in CI_METRICS:
                row = recorded[(preset, task, metric)]
                assert float(row["value"]) == mine[metric] and float(row["reference"]) == ref[metric]
                assert float(row["difference"]) == mine[metric] - ref[metric]
                assert [float(row["ci_low"]), float(row["ci_high"])] == cis[metric], (preset, task, metric)
                seen.add((preset, task, metric))
    assert seen == set(recorded)


# --------------------------------------------------------------------------------------------- the README's tables


def _table_after(text: str, heading: str, nth: int = 0) -> dict[str, list[str]]:
    """The ``nth`` markdown table after ``heading``: {first cell: the other cells}."""
    rest = text[text.index(heading):]
    tables = re.findall(r"((?:^\|.*\|[ \t]*\n)+)", rest, flags=re.M)
    lines = tables[nth].strip().splitlines()
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    assert set(cells[1][0]) <= set("-:"), "not a table"
    return {row[0]: row[1:] for row in [cells[0], *cells[2:]]}


def _expected_table2(preset: str) -> list[str]:
    tasks = _metrics(preset)["tasks"]
    values = [tasks[t]["metrics"][m] for t in TASKS for m in GENERATION_METRICS]
    averages = [sum(tasks[t]["metrics"][m] for t in TASKS) / len(TASKS) for m in GENERATION_METRICS]
    return [f"{v:.2f}" for v in values + averages]


@pytest.mark.parametrize("path, heading", [("README.md", "### Table 2 at n = 200"),
                                           ("docs/results/table2_n200/ablation.md", "# SAM Table 2")])
def test_table2_prints_the_committed_metrics(path, heading):
    table = _table_after((ROOT / path).read_text(encoding="utf-8"), heading)
    assert list(table) == ["row", *PRESETS]
    head = table["row"]
    assert head[:4] == ["+DATA", "+BSG", "+AA", "+LIN"] and head[-3:] == [f"Average {m}" for m in GENERATION_METRICS]
    for preset, *flags in ROWS:
        cells = table[preset]
        assert cells[:4] == ["✓" if f else "" for f in flags], preset
        assert cells[4:] == _expected_table2(preset), preset
    # the README's `mini` row, read cell by cell: full SAM's averages
    mini = dict(zip(head, table["mini"]))
    assert mini["Average CIDEr"] == f"{_expected_average('mini', 'CIDEr'):.2f}"


def _expected_average(preset: str, metric: str) -> float:
    tasks = _metrics(preset)["tasks"]
    return sum(tasks[t]["metrics"][metric] for t in TASKS) / len(TASKS)


@pytest.mark.parametrize("path, heading", [("README.md", "### Table 2 at n = 200"),
                                           ("docs/results/table2_n200/ablation.md", "## Difference from")])
def test_the_difference_table_prints_ablation_csv(path, heading):
    table = _table_after((ROOT / path).read_text(encoding="utf-8"), heading, nth=1 if path == "README.md" else 0)
    with (RESULTS / "ablation.csv").open(encoding="utf-8", newline="") as f:
        recorded = {(r["row"], f"{r['task']} {r['metric']}"): r for r in csv.DictReader(f)}
    assert list(table) == ["row", *(p for p in PRESETS if p != REFERENCE)]
    for preset in PRESETS[1:]:
        for column, cell in zip(table["row"], table[preset]):
            r = recorded[(preset, column)]
            assert cell == signed_interval(float(r["difference"]), [float(r["ci_low"]), float(r["ci_high"])]), \
                (preset, column)


# --------------------------------------------------------------------------------------------- CaD-VI (README)

CADVI = ROOT / "docs" / "results" / "cadvi_tables"
CADVI_PRESETS = ["mini-llava", "mini-cadvi-phase1", "mini-cadvi"]
CADVI_TABLE1 = ["bison", "svo", "nlvr2", "eqben", "cola"]


def _cadvi(scoring: str, preset: str) -> dict:
    return json.loads((CADVI / scoring / preset / "metrics.json").read_text(encoding="utf-8"))["tasks"]


def _cadvi_rows(table: dict[str, list[str]]) -> dict[str, list[str]]:
    """README rows named like 'Phase 1 (`mini-cadvi-phase1`)' by their preset."""
    return {re.search(r"`([^`]+)`", name)[1]: cells for name, cells in table.items() if "`" in name}


@pytest.mark.parametrize("scoring, heading", [("sum", "**Table 1 — candidate ranking"),
                                              ("generate", "**Table 1 — exact match of the option")])
def test_the_readme_cadvi_table1_prints_the_committed_metrics(scoring, heading):
    """Accuracy (blind) from each run's metrics.json; the difference from the base and its interval from
    tables.json, whose differences are the metrics.json values' differences."""
    table = _table_after((ROOT / "README.md").read_text(encoding="utf-8"), heading)
    diffs = json.loads((CADVI / "tables.json").read_text(encoding="utf-8"))[scoring]["differences"]
    base = _cadvi(scoring, CADVI_PRESETS[0])
    assert table["chance"] == [f"{base[t]['chance']:.0f}" for t in CADVI_TABLE1]
    rows = _cadvi_rows(table)
    assert list(rows) == CADVI_PRESETS
    for preset, cells in rows.items():
        tasks = _cadvi(scoring, preset)
        for task, cell in zip(CADVI_TABLE1, cells, strict=True):
            acc, blind = tasks[task]["metrics"]["accuracy"], tasks[task]["blind"]["accuracy"]
            want = f"{acc:.1f} ({blind:.1f})"
            if preset != CADVI_PRESETS[0]:
                d = diffs[preset][task]["accuracy"]
                assert d["difference"] == acc - base[task]["metrics"]["accuracy"] and d["value"] == acc
                want += " " + signed_interval(d["difference"], d["ci"], 1)
            assert cell == want, (preset, task)


def test_the_readme_cadvi_table2_prints_the_committed_metrics():
    table = _table_after((ROOT / "README.md").read_text(encoding="utf-8"), "**Table 2 — CaD-QA**")
    assert table["row"] == ["rating (blind)", "Δ rating", "fact precision (blind)", "Δ fact precision",
                            "fact recall (blind)"]
    diffs = json.loads((CADVI / "tables.json").read_text(encoding="utf-8"))["sum"]["differences"]
    rows = _cadvi_rows(table)
    assert list(rows) == CADVI_PRESETS
    for preset, cells in rows.items():
        entry = _cadvi("sum", preset)["cad_qa"]

        def value(metric, digits):
            return f"{entry['metrics'][metric]:.{digits}f} ({entry['blind'][metric]:.{digits}f})"

        def delta(metric, digits):
            if preset == CADVI_PRESETS[0]:
                return "—"
            d = diffs[preset]["cad_qa"][metric]
            return signed_interval(d["difference"], d["ci"], digits)

        assert cells == [value("rating", 2), delta("rating", 2), value("fact precision", 1),
                         delta("fact precision", 1), value("fact recall", 1)], preset
