"""`mmlink cadvi tables`: CaD-VI's Table 1 and Table 2 on the embedded world — the base, Phase 1, Phase 1 + 2.

Rows are the LLaVA-family presets `make train-mini-cadvi` ships (docs/mini_cadvi_card.md): `mini-llava` (the base,
LLaVA-1.5's place in the paper), `mini-cadvi-phase1` and `mini-cadvi`. Every row answers the same world test items
(generated once into ``out/data``), each beside its **blind control** (the same items with flat gray images), so a
score can be read against what the language model alone gets.

* **Table 1** — BISON, SVO, NLVR2, EQBEN, COLA (two rounds: both images must be matched, chance 25 %), scored twice:
  ``generate``, the authors' scripts (a short greedy answer must name the option exactly; unmatched counts wrong), and
  ``sum``, candidate ranking by log-likelihood. Runs in ``out/<scoring>/<preset>``.
* **Table 2** — CaD-QA, rated 0–5 by the judge (``--judge``, a `mmlink.textllm` spec; its AUC measured by
  `mmlink judge-check` is printed beside every rating and a judge below 0.8 is flagged), and, because the world knows
  every fact of every image, the exact fact precision / recall of the same answers. Runs in ``out/sum/<preset>``.

Every row's difference from the base comes with its 95 % **paired** bootstrap interval over the same items
(`mmlink.recipes.ablation.differences`); so does every real − blind gap (`mmlink eval --blind`). Written to
``out/tables.md``, ``out/tables.json`` and ``out/tables.png`` (the differences from the base with their intervals).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from mmlink.eval.report import markdown_table
from mmlink.recipes import WorldTableSettings
from mmlink.recipes.ablation import signed_interval
from mmlink.settings import NO_PROGRESS, add_command, add_flags, from_args, setting

ROWS = (("mini-llava", "base (mini-llava)"), ("mini-cadvi-phase1", "Phase 1"), ("mini-cadvi", "Phase 1 + 2"))
TABLE1 = ("bison", "svo", "nlvr2", "eqben", "cola")
TABLE2 = ("cad_qa",)
SCORINGS = ("generate", "sum")
SCORING_TITLES = {"generate": "exact match of the option (the authors' scripts)",
                  "sum": "candidate ranking (summed log-likelihood)", "mean": "candidate ranking (mean log-likelihood)"}
CI_METRICS = ("accuracy", "rating", "fact precision")


def run_tables(out: str | Path, n: int = 200, seed: int = 0, batch_size: int = 8, dtype: str = "auto",
               judge: str = "template", scorings: Sequence[str] = SCORINGS, progress: bool = True,
               models: dict | None = None, image_size: int = 224) -> dict[str, Any]:
    """Evaluate every row (``models`` maps a preset to another model to load in its place: tests use ``tiny-llava``)
    and write the tables; returns ``{"runs": {scoring: [metrics]}, "differences": {scoring: ...}, "paths"}``.
    Table 2 is measured with the last scoring's runs (its answers are generated; the scoring does not touch it)."""
    from mmlink.recipes.ablation import differences
    from mmlink.eval.harness import EvalConfig, evaluate
    from mmlink.eval.report import load_metrics

    if not scorings or any(s not in SCORING_TITLES for s in scorings):
        raise ValueError(f"scorings must be some of {', '.join(SCORING_TITLES)}; got {list(scorings)}")
    out = Path(out)
    runs, diffs = {}, {}
    for k, scoring in enumerate(scorings):
        tasks = TABLE1 + (TABLE2 if k == len(scorings) - 1 else ())
        for preset, _ in ROWS:
            if progress:
                print(f"== {scoring}: {preset}", flush=True)
            config = EvalConfig(out=str(out / scoring / preset), data_dir=str(out / "data"), limit=n, seed=seed,
                                batch_size=batch_size, dtype=dtype, label=preset, option_scoring=scoring, blind=True,
                                judge_backend=judge, progress=progress, image_size=image_size)
            evaluate((models or {}).get(preset, preset), list(tasks), config)
        runs[scoring] = [load_metrics(out / scoring / preset) for preset, _ in ROWS]
        diffs[scoring] = differences(out / scoring, runs[scoring], tasks, reference=ROWS[0][0],
                                     ci_metrics=CI_METRICS)
    result = {"runs": runs, "differences": diffs, "table2_scoring": scorings[-1]}
    result["paths"] = write_tables(result, out)
    return result


# ------------------------------------------------------------------------------------------------------ writing


def _value(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def table1(runs: Sequence[dict], diffs: dict, scoring: str) -> str:
    """Accuracy per row and task (blind in parentheses), then the differences from the base and the real − blind
    gaps, each with its 95 % paired interval."""
    head = ["row", *(runs[0]["tasks"][t].get("group", t) for t in TABLE1)]
    chance = ["chance", *(_value(runs[0]["tasks"][t].get("chance"), 0) for t in TABLE1)]
    acc, gaps, diff = [chance], [], []
    for (preset, name), run in zip(ROWS, runs):
        tasks = run["tasks"]
        acc.append([name, *(f"{_value(tasks[t]['metrics']['accuracy'])} "
                            f"(blind {_value(tasks[t].get('blind', {}).get('accuracy'))})" for t in TABLE1)])
        gaps.append([name, *(signed_interval(tasks[t].get("gap", {}).get("accuracy"),
                                             tasks[t].get("gap_ci", {}).get("accuracy"), 1) for t in TABLE1)])
        if preset in diffs:
            diff.append([name, *(signed_interval(diffs[preset][t]["accuracy"]["difference"],
                                                 diffs[preset][t]["accuracy"]["ci"], 1) for t in TABLE1)])
    unmatched = ""
    if scoring == "generate":
        unmatched = "\nAnswers naming no option (counted wrong), real / blind: " + "; ".join(
            f"{name}: " + ", ".join(f"{t} {run['tasks'][t].get('unmatched', 0)}/{run['tasks'][t].get('blind_unmatched', 0)}"
                                    for t in TABLE1) for (_, name), run in zip(ROWS, runs)) + ".\n"
    n = runs[0]["tasks"][TABLE1[0]]["n"]

    def md(rows):
        return "\n".join(markdown_table(head, rows)) + "\n"

    return (f"#### Accuracy, %, n = {n} samples per task (blind control in parentheses)\n\n" + md(acc)
            + unmatched + f"\n#### Difference from {ROWS[0][1]}, points [95 % paired bootstrap interval]\n\n"
            + md(diff) + "\n#### What the images add: real − blind, points [95 % paired bootstrap interval]\n\n"
            + md(gaps))


def table2(runs: Sequence[dict], diffs: dict) -> str:
    """CaD-QA: the judge's mean rating and the exact fact precision / recall, with blind, gap and differences."""
    metrics = ("rating", "fact precision", "fact recall")
    head = ["row", *(c for m in metrics for c in (m, "blind", "real − blind")), "Δ rating from base",
            "Δ fact precision from base"]
    rows = []
    for (preset, name), run in zip(ROWS, runs):
        entry = run["tasks"][TABLE2[0]]
        digits = {"rating": 2}
        cells = [name]
        for m in metrics:
            d = digits.get(m, 1)
            cells += [_value(entry["metrics"].get(m), d), _value(entry.get("blind", {}).get(m), d),
                      signed_interval(entry.get("gap", {}).get(m), entry.get("gap_ci", {}).get(m), d)]
        for m in ("rating", "fact precision"):
            d = diffs.get(preset, {}).get(TABLE2[0], {}).get(m)
            cells.append(signed_interval(d["difference"], d["ci"], digits.get(m, 1)) if d else "—")
        rows.append(cells)
    lines = "\n".join(markdown_table(head, rows)) + "\n"
    judge = runs[0]["tasks"][TABLE2[0]].get("judge", {})
    disc = judge.get("discrimination") or {}
    if disc.get("measured"):
        verdict = (f"AUC {disc['auc']:.3f} (worst cell {disc.get('auc_worst') or float('nan'):.3f}; bar "
                   f"{disc.get('min_auc')})" + (" — **FLAGGED: below the bar; its ratings are not a quality measure**"
                                                if disc.get("flagged") else ""))
    else:
        verdict = "**never measured** (`mmlink judge-check`): its ratings are unvalidated"
    n = runs[0]["tasks"][TABLE2[0]]["n"]
    return (f"n = {n} questions. Judge `{judge.get('backend')}` (prompt {judge.get('prompt_version')}): {verdict}. "
            "Fact precision / recall: every fact an answer states checked against the two scene graphs "
            "(`mmlink.eval.facts`), exact.\n\n" + lines)


def write_tables(result: dict, out: Path) -> dict[str, Path]:
    from mmlink.eval.plots import difference_chart

    runs, diffs = result["runs"], result["differences"]
    last = result["table2_scoring"]
    text = "# CaD-VI Tables 1 and 2 on the embedded world\n\n"
    for scoring in runs:
        text += f"### Table 1 — {SCORING_TITLES[scoring]}\n\n" + table1(runs[scoring], diffs[scoring], scoring) + "\n"
    text += "### Table 2 — CaD-QA\n\n" + table2(runs[last], diffs[last])
    dtype = (runs[last][0].get("dtype") or {}).get("name")
    text += f"\nRows: {', '.join(f'`{p}`' for p, _ in ROWS)}; dtype {dtype}; `mmlink cadvi tables`.\n"
    paths = {"md": out / "tables.md", "json": out / "tables.json", "png": out / "tables.png"}
    paths["md"].write_text(text, encoding="utf-8")
    keep = {s: {"differences": diffs[s], "rows": [{"preset": r["model"], "label": r.get("label"),
                                                    "tasks": {t: {k: e.get(k) for k in ("n", "metrics", "blind", "gap",
                                                                                        "gap_ci", "ci", "judge")}
                                                              for t, e in r["tasks"].items()}} for r in runs[s]]}
            for s in runs}
    paths["json"].write_text(json.dumps(keep, indent=2) + "\n", encoding="utf-8")
    bars = {name: {f"{task} ({scoring})/{m}" if m == "accuracy" else f"{task}/{m}": per[m]
                   for scoring in runs for task, per in diffs[scoring].get(preset, {}).items()
                   for m in ("accuracy", "fact precision") if m in per}
            for preset, name in ROWS[1:]}
    difference_chart(bars, paths["png"], title=f"Difference from {ROWS[0][1]} (95% paired bootstrap)")
    return paths


# ---------------------------------------------------------------------------------------------------------- CLI


@dataclass
class CadviTablesSettings(WorldTableSettings):
    n: int = setting(200, min=1, help="samples per task")
    judge: str = setting("template", help="the CaD-QA judge, a text-LLM spec: template, local, local:PATH, "
                         "openai:MODEL@URL")
    scorings: tuple[str, ...] = setting(SCORINGS, help="Table 1's scorings, comma-separated")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "tables", help="CaD-VI Tables 1 and 2 on the world: base vs Phase 1 vs Phase 1 + 2",
                    description=__doc__)
    add_flags(p, CadviTablesSettings, custom={"scorings": {"flag": "--scoring", "metavar": "LIST"},
                                              "progress": NO_PROGRESS})
    p.set_defaults(func=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
    result = run_tables(**asdict(from_args(CadviTablesSettings, args)))
    print(result["paths"]["md"].read_text())
    print("cadvi tables: " + ", ".join(str(p) for p in result["paths"].values()))
    return 0


__all__ = ["CI_METRICS", "CadviTablesSettings", "ROWS", "SCORINGS", "TABLE1", "TABLE2", "add_parser", "run_tables", "table1", "table2",
           "write_tables"]
