"""`mmlink vislinginstruct`: VisLingInstruct's Table 2 layout on the embedded world — base, + CMAA, + AIO,
+ CMAA + AIO.

The rows are the Q-Former-family presets `make train-mini` ships: `mini-base` (the base: `mini`'s Stage 1 with its
projection fine-tuned on the Stage-2 pairs, no CMAA) and `mini-cmaa` (the same data, steps and trainable layers with
CMAA on; docs/mini_cmaa_card.md), each answering plainly and with AIO (`mmlink.aio`: every instruction rewritten,
scored by IAS and optimized in context before it is answered). Every row answers the same world test items
(generated once into ``out/data``) beside its **blind control** (the same items with flat gray images; AIO runs on
the gray images too), so each score can be read against what the language model gets alone.

Tasks: ``vqa_options`` and the closed-ended pair tasks BISON, SVO and NLVR2 (candidate ranking by summed
log-likelihood, ``--option-scoring``), and single-image captioning, where the world checks every fact a caption
states (fact precision) beside CIDEr. Each row's difference from the base comes with its 95 % **paired** bootstrap
interval over the same items (`mmlink.recipes.ablation.differences`), each real − blind gap likewise. AIO's cost is
measured per item (seconds answering alone vs. optimizing first).

Written to ``out/table.md``, ``out/table.json`` and ``out/table.png`` (the differences from the base with their
intervals); the runs in ``out/<row>/`` (resumable: a re-run answers only what is missing).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from mmlink.eval.options import OptionScoring
from mmlink.recipes import WorldTableSettings
from mmlink.settings import NO_PROGRESS, add_command, add_flags, from_args, setting

# (run directory, preset, AIO on, row name)
ROWS = (("base", "mini-base", False, "base (`mini-base`)"), ("cmaa", "mini-cmaa", False, "+ CMAA (`mini-cmaa`)"),
        ("aio", "mini-base", True, "+ AIO"), ("cmaa_aio", "mini-cmaa", True, "+ CMAA + AIO"))
TASKS = ("vqa_options", "caption", "bison", "nlvr2", "svo")
# the metric each task is read by in the table; CIs are taken for all of them
MAIN_METRIC = {"vqa_options": "accuracy", "bison": "accuracy", "svo": "accuracy", "nlvr2": "accuracy",
               "caption": "fact precision"}
CI_METRICS = ("accuracy", "fact precision", "CIDEr")


def run_table(out: str | Path, n: int = 200, seed: int = 0, batch_size: int = 8, dtype: str = "auto",
              option_scoring: str = "sum", tasks: Sequence[str] = TASKS, progress: bool = True,
              models: dict | None = None, image_size: int = 224) -> dict[str, Any]:
    """Evaluate every row (``models`` maps a preset to another model to load in its place: tests use ``tiny``) and
    write the table; returns ``{"runs": [metrics], "differences": ..., "paths": ...}``."""
    from mmlink.recipes.ablation import differences
    from mmlink.eval.harness import EvalConfig, evaluate
    from mmlink.eval.report import load_metrics

    unknown = [t for t in tasks if t not in MAIN_METRIC]
    if not tasks or unknown:
        raise ValueError(f"tasks must be some of {', '.join(TASKS)}; got {list(tasks)}")
    out = Path(out)
    for task in tasks:  # task by task, every row: an interrupted run leaves whole columns to tabulate (--tasks)
        for label, preset, aio, _ in ROWS:
            if progress:
                print(f"== {task}: {label} ({preset}{' with AIO' if aio else ''})", flush=True)
            config = EvalConfig(out=str(out / label), data_dir=str(out / "data"), limit=n, seed=seed,
                                batch_size=batch_size, dtype=dtype, label=label, option_scoring=option_scoring,
                                blind=True, aio=aio, progress=progress, image_size=image_size)
            evaluate((models or {}).get(preset, preset), [task], config)
    runs = [load_metrics(out / label) for label, *_ in ROWS]
    diffs = differences(out, runs, tasks, reference=ROWS[0][0], ci_metrics=CI_METRICS)
    result = {"runs": runs, "differences": diffs, "tasks": list(tasks)}
    result["paths"] = write_table(result, out)
    return result


# ------------------------------------------------------------------------------------------------------ writing


def _value(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def table_markdown(runs: Sequence[dict], diffs: dict, tasks: Sequence[str]) -> str:
    """Per row and task: the score (blind), its difference from the base and the real − blind gap, each with its
    95 % paired interval; then AIO's cost per task."""
    from mmlink.recipes.ablation import signed_interval
    from mmlink.eval.report import markdown_table

    columns = [(t, MAIN_METRIC[t]) for t in tasks] + [("caption", "CIDEr")] * ("caption" in tasks)
    header = ["row", *(f"{runs[0]['tasks'][t].get('group', t)} {m}" for t, m in columns)]
    chance = ["chance", *(_value(runs[0]["tasks"][t].get("chance"), 0) if m == "accuracy" else "—"
                          for t, m in columns)]
    score, diff, gaps = [chance], [], []
    for (label, _, _, name), run in zip(ROWS, runs):
        entries = run["tasks"]
        score.append([name, *(f"{_value(entries[t]['metrics'].get(m))} "
                              f"(blind {_value(entries[t].get('blind', {}).get(m))})" for t, m in columns)])
        gaps.append([name, *(signed_interval(entries[t].get("gap", {}).get(m), entries[t].get("gap_ci", {}).get(m),
                                             digits=1) for t, m in columns)])
        if label in diffs:
            diff.append([name, *(signed_interval(diffs[label][t][m]["difference"], diffs[label][t][m]["ci"], digits=1)
                                 if m in diffs[label][t] else "—" for t, m in columns)])
    cost = []
    for (label, _, aio, name), run in zip(ROWS, runs):
        for t in tasks:
            a = run["tasks"][t].get("aio") if aio else None
            if a:
                cost.append([name, t, _value(a["answer_s_per_item"], 3), _value(a["aio_s_per_item"], 3),
                             f"{a['cost_x']:.1f}×" if a.get("cost_x") else "—", f"{100 * a['changed']:.0f} %",
                             str(a["fallbacks"]), str(a.get("rewrites_reused", 0))])
    n = runs[0]["tasks"][tasks[0]]["n"]
    parts = [f"#### Score, n = {n} per task (accuracy %, fact precision %, CIDEr ×100; blind control in "
             "parentheses)", "", *markdown_table(header, score), "",
             "#### Difference from the base, points [95 % paired bootstrap interval]", "",
             *markdown_table(header, diff), "",
             "#### What the images add: real − blind, points [95 % paired bootstrap interval]", "",
             *markdown_table(header, gaps), ""]
    if cost:
        parts += ["#### AIO's cost (seconds per item; the blind pass not counted)", "",
                  *markdown_table(["row", "task", "answer s/item", "AIO s/item", "cost (× time per item)",
                                   "instruction changed", "fallbacks", "rewrites reused"], cost,
                                  text_cols=(0, 1)), ""]
    return "\n".join(parts)


def write_table(result: dict, out: Path) -> dict[str, Path]:
    from mmlink.eval.plots import difference_chart

    runs, diffs, tasks = result["runs"], result["differences"], result["tasks"]
    dtype = (runs[0].get("dtype") or {}).get("name")
    rows = ", ".join(f"`{label}` = {preset}" + (" + AIO" if aio else "") for label, preset, aio, _ in ROWS)
    text = ("# VisLingInstruct's Table 2 layout on the embedded world\n\n" + table_markdown(runs, diffs, tasks)
            + f"\nRows: {rows}; option scoring {runs[0]['config'].get('option_scoring')}; dtype {dtype}; "
            "`mmlink vislinginstruct`.\n")
    paths = {"md": out / "table.md", "json": out / "table.json", "png": out / "table.png"}
    paths["md"].write_text(text, encoding="utf-8")
    keep = {"differences": diffs,
            "rows": [{"row": label, "preset": preset, "aio": aio, "model": r["model"],
                      "tasks": {t: {k: e.get(k) for k in ("n", "metrics", "blind", "gap", "gap_ci", "ci", "aio")}
                                for t, e in r["tasks"].items()}} for (label, preset, aio, _), r in zip(ROWS, runs)]}
    paths["json"].write_text(json.dumps(keep, indent=2) + "\n", encoding="utf-8")
    bars = {name: {f"{t}/{MAIN_METRIC[t]}": diffs[label][t][MAIN_METRIC[t]] for t in tasks
                   if diffs[label][t].get(MAIN_METRIC[t])}
            for label, _, _, name in ROWS[1:]}
    difference_chart(bars, paths["png"], title="Difference from the base (95% paired bootstrap)",
                     columns=[f"{t}/{MAIN_METRIC[t]}" for t in tasks])
    return paths


# ---------------------------------------------------------------------------------------------------------- CLI


@dataclass
class VisLingInstructSettings(WorldTableSettings):
    n: int = setting(200, min=1, help="samples per task")
    tasks: tuple[str, ...] = setting(TASKS, help="comma-separated, some of " + ",".join(TASKS))
    option_scoring: OptionScoring = setting("sum", help="closed tasks: rank candidates by summed or mean "
                                            "log-likelihood, or generate")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "vislinginstruct", help="VisLingInstruct's Table 2 on the world: base, +CMAA, +AIO, "
                                            "+CMAA+AIO with blind controls and paired intervals",
                    description=__doc__)
    add_flags(p, VisLingInstructSettings, custom={"tasks": {"metavar": "LIST"}, "progress": NO_PROGRESS})
    p.set_defaults(func=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
    result = run_table(**asdict(from_args(VisLingInstructSettings, args)))
    print(result["paths"]["md"].read_text())
    print("vislinginstruct: " + ", ".join(str(p) for p in result["paths"].values()))
    return 0


__all__ = ["CI_METRICS", "MAIN_METRIC", "ROWS", "TASKS", "VisLingInstructSettings", "add_parser", "run_table", "table_markdown", "write_table"]
