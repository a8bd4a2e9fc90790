"""`mmlink ablation`: SAM's ablation (Table 2) on the embedded world with the trained `mini` variants.

Every row is a preset trained by ``make train-mini`` (docs/mini_card.md): the base after Stage 1, the base
fine-tuned on the Stage-2 pairs (+DATA), +LIN, +BSG, and full SAM (+BSG +AA). All rows answer the same held-out
test sets (group captioning, storytelling, change captioning, generated once from the world's test split) and are
scored with pycocoevalcap. The command prints the table, two answers of the base and of SAM side by side for the
same images, and writes the table as markdown, CSV and a PNG bar chart. The dtype (``--dtype auto`` by default:
bfloat16 only where the CPU/GPU computes it natively, else float32) is printed with its reason and recorded in every
row's metrics.json and in comparison.md.

With 30 test samples a task, a difference of a few points between two rows can be resampling noise. So every row
is also compared with the table's first row (``mini-stage1``, the base of Table 2): per task and metric (ROUGE-L,
CIDEr, BLEU-4, and fact precision where the runs have it) the difference and its 95 % **paired** bootstrap
interval over the same test items (`mmlink.eval.bootstrap`; CIDEr keeps the whole set's IDF, BLEU-4 is resampled
as a corpus metric). An interval that contains 0 means the row is not distinguishable from the base on that
metric. Written to ablation.md / ablation.csv and drawn with error bars in ablation.png.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

from mmlink.eval.intervals import FACT_PRECISION
from mmlink.eval.report import AVERAGE, GENERATION_METRICS, load_metrics, markdown_table, write_comparison
from mmlink.recipes import WorldTableSettings
from mmlink.runtime import DEVICE_HELP
from mmlink.settings import NO_PROGRESS, add_command, add_flags, from_args, setting

TASKS = ("group_caption", "storytelling", "change_caption")
# (preset, +DATA, +BSG, +AA, +LIN) — the columns of SAM Table 2
ROWS = (
    ("mini-stage1", False, False, False, False),
    ("mini-base", True, False, False, False),
    ("mini-linear", True, False, False, True),
    ("mini-bsg-mean", True, True, False, False),
    ("mini", True, True, True, False),
)
BASE, SAM = "mini-base", "mini"  # the two rows whose answers are shown side by side
REFERENCE = ROWS[0][0]  # the row every other row's difference (with its paired interval) is measured from
CI_METRICS = (*GENERATION_METRICS, FACT_PRECISION)


def run_ablation(out: str | Path, limit: int = 30, seed: int = 0, batch_size: int = 8, dtype: str = "auto",
                 tasks: Sequence[str] = TASKS, progress: bool = True, models: dict | None = None,
                 image_size: int = 224, max_new_tokens: int | None = None, device: str | None = None) -> dict:
    """Evaluate every row on ``tasks`` into ``out/<preset>``; returns ``{"runs", "paths", "examples", "dtype",
    "differences"}`` (`differences`: each row against `REFERENCE`, with paired bootstrap intervals).

    ``models`` maps a row's preset to another model to load in its place (tests run every row on ``tiny``).
    ``dtype``: see `mmlink.runtime.choose_dtype`; the result's ``dtype`` is the resolved choice
    (`DtypeChoice.to_dict`, as recorded in each row's metrics.json).
    """
    from mmlink.eval.harness import EvalConfig, evaluate

    out = Path(out)
    runs = []
    for preset, *_ in ROWS:
        config = EvalConfig(out=str(out / preset), data_dir=str(out / "data"), limit=limit, seed=seed,
                            batch_size=batch_size, dtype=dtype, label=preset, progress=progress,
                            image_size=image_size, max_new_tokens=max_new_tokens, device=device)
        if progress:
            print(f"== {preset}", flush=True)
        evaluate((models or {}).get(preset, preset), list(tasks), config)
        runs.append(load_metrics(out / preset))
    paths = write_comparison(runs, out)
    diffs = differences(out, runs, tasks)
    paths.update(write_differences(runs, diffs, out, tasks))
    return {"runs": runs, "paths": paths, "examples": examples(out, tasks), "dtype": runs[0].get("dtype"),
            "differences": diffs}


def differences(out: Path, runs: Sequence[dict], tasks: Sequence[str] = TASKS, reference: str = REFERENCE,
                ci_metrics: Sequence[str] = CI_METRICS) -> dict:
    """``{row: {task: {metric: {"value", "reference", "difference", "ci": [lo, hi] | None}}}}`` for every row but
    ``reference``, over the metrics of ``ci_metrics`` both runs report; ``ci`` is the 95 % paired bootstrap interval
    of ``row − reference`` on the same test items. Each row's run directory is ``out/<its label>``."""
    from mmlink.eval.harness import PredictionStore, task_items
    from mmlink.eval.intervals import paired_intervals, read_judgements, task_statistics
    from mmlink.eval.tasks import EVAL_TASKS

    by_label = {r.get("label") or r["model"]: r for r in runs}
    if reference not in by_label:
        raise ValueError(f"the reference row {reference!r} was not evaluated")
    stats: dict[str, dict] = {}
    for label, run in by_label.items():
        store = PredictionStore(Path(out) / label / "predictions.jsonl")
        config = run.get("config") or {}
        stats[label] = {}
        for task in tasks:
            entry = run["tasks"][task]
            items = task_items(EVAL_TASKS.get(task), Path(entry["data"]), config.get("limit"))
            rows = {r["id"]: r for r in store.rows(task)}
            judgements = read_judgements(Path(out) / label / "judgements.jsonl", task)
            stats[label][task] = task_statistics(entry["kind"], items, rows, config.get("tokenize", "simple"),
                                                 judgements=judgements)
    ref = by_label[reference]
    out_diffs: dict[str, dict] = {}
    for label, run in by_label.items():
        if label == reference:
            continue
        out_diffs[label] = {}
        for task in tasks:
            mine, base = run["tasks"][task]["metrics"], ref["tasks"][task]["metrics"]
            # fact precision is null where no answer stated a fact: no difference to take
            metrics = [m for m in ci_metrics if mine.get(m) is not None and base.get(m) is not None]
            cis = paired_intervals(stats[label][task], stats[reference][task], metrics)
            out_diffs[label][task] = {m: {"value": mine[m], "reference": base[m], "difference": mine[m] - base[m],
                                          "ci": cis.get(m)} for m in metrics}
    return out_diffs


def signed_interval(value: float | None, ci=None, digits: int = 2) -> str:
    """``+1.23 [-0.50, +2.90]``: a signed value (a difference or a gap) and its interval when there is one; ``—``
    for no value."""
    if value is None:
        return "—"
    text = f"{value:+.{digits}f}"
    return text + ("" if not ci else f" [{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}]")


def difference_table(diffs: dict, tasks: Sequence[str] = TASKS) -> str:
    """Markdown: one row per ablation row, per task and metric its difference from `REFERENCE` with the interval."""
    metrics = [m for m in CI_METRICS if any(m in diffs[r][t] for r in diffs for t in tasks)]
    head = ["row", *(f"{t} {m}" for t in tasks for m in metrics)]
    rows = [[preset, *(signed_interval(diffs[preset][t][m]["difference"], diffs[preset][t][m].get("ci"))
                       if m in diffs[preset][t] else "—" for t in tasks for m in metrics)]
            for preset, *_ in ROWS if preset in diffs]
    return "\n".join(markdown_table(head, rows))


def write_differences(runs: Sequence[dict], diffs: dict, out: Path, tasks: Sequence[str] = TASKS) -> dict:
    """ablation.md (Table 2, then the differences from `REFERENCE`), ablation.csv (one line per row, task and
    metric) and ablation.png (the differences as bars with their 95 % intervals as error bars)."""
    import csv

    from mmlink.eval.plots import difference_chart

    out = Path(out)
    paths = {"ablation_md": out / "ablation.md", "ablation_csv": out / "ablation.csv",
             "ablation_png": out / "ablation.png"}
    paths["ablation_md"].write_text(
        "# SAM Table 2 on the embedded world\n\n" + table(runs, tasks) + "\n\n"
        f"## Difference from `{REFERENCE}` (row − {REFERENCE}, 95% paired bootstrap interval)\n\n"
        + difference_table(diffs, tasks) + "\n\nAn interval containing 0: not distinguishable from the reference "
        "row on these test items.\n", encoding="utf-8")
    with paths["ablation_csv"].open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["row", "task", "metric", "value", "reference", "difference", "ci_low", "ci_high"])
        for preset in diffs:
            for task in tasks:
                for m, d in diffs[preset][task].items():
                    lo, hi = d["ci"] if d["ci"] is not None else ("", "")
                    writer.writerow([preset, task, m, d["value"], d["reference"], d["difference"], lo, hi])
    bars = {preset: {f"{task}/{m}": d for task in tasks for m, d in diffs[preset][task].items()} for preset in diffs}
    difference_chart(bars, paths["ablation_png"], title=f"Difference from {REFERENCE} (95% paired bootstrap)")
    return paths


def table(runs: Sequence[dict], tasks: Sequence[str] = TASKS) -> str:
    """SAM Table 2's layout: ✓ columns, then ROUGE-L | CIDEr | BLEU-4 per task and their average."""
    by_label = {r.get("label") or r["model"]: r for r in runs}
    head = ["row", "+DATA", "+BSG", "+AA", "+LIN"]
    titles = [by_label[next(iter(by_label))]["tasks"].get(t, {}).get("group", t) for t in tasks] + [AVERAGE]
    rows = []
    for preset, *flags in ROWS:
        run = by_label.get(preset)
        if run is None:
            continue
        cells = [preset] + ["✓" if f else "" for f in flags]
        values = []
        for t in tasks:
            values += [run["tasks"][t]["metrics"][m] for m in GENERATION_METRICS]
        # CIDEr is null on sets too small for its IDF (--limit under 10): no average over a missing value
        averages = [None if any(run["tasks"][t]["metrics"][m] is None for t in tasks)
                    else sum(run["tasks"][t]["metrics"][m] for t in tasks) / len(tasks) for m in GENERATION_METRICS]
        cells += ["—" if v is None else f"{v:.2f}" for v in values + averages]
        rows.append(cells)
    header = head + [f"{g} {m}" for g in titles for m in GENERATION_METRICS]
    return "\n".join(markdown_table(header, rows, text_cols=range(len(head))))


def examples(out: Path, tasks: Sequence[str] = TASKS, k: int = 2) -> list[dict]:
    """One item from each of the first ``k`` tasks: the first (by id) where both the base and SAM answered
    something, else the first — an empty answer shows nothing to compare."""
    def rows(preset):
        lines = (out / preset / "predictions.jsonl").read_text().splitlines()
        return {(r["task"], r["id"]): r for r in map(json.loads, lines)}

    base, sam = rows(BASE), rows(SAM)
    picked = []
    for task in list(tasks)[:k]:
        keys = sorted(kk for kk in base if kk[0] == task and kk in sam)
        key = next((kk for kk in keys if base[kk]["text"] and sam[kk]["text"]), keys[0])
        data = json.loads((out / BASE / "metrics.json").read_text())["tasks"][task]["data"]
        record = next(r for r in map(json.loads, Path(data).read_text().splitlines()) if r["id"] == key[1])
        picked.append({"task": task, "id": key[1],
                       "images": [str((Path(data).parent / p).resolve()) for p in record["image"]],
                       "prompt": record["conversations"][0]["value"], "reference": base[key]["refs"][0],
                       "base": base[key]["text"], "sam": sam[key]["text"]})
    return picked


def examples_sheet(picked: Sequence[dict], path: Path) -> Path:
    """The side-by-side examples as one PNG a terminal user can open: each item's images, the prompt, the base's
    and SAM's answers and the reference."""
    from mmlink.data.preview import make_preview

    records = [{"id": f"{ex['task']} · {ex['id']}", "image": ex["images"],
                "conversations": [{"from": "human", "value": ex["prompt"]},
                                  {"from": "gpt", "label": f"base ({BASE})", "value": ex["base"] or "(empty)"},
                                  {"from": "gpt", "label": f"SAM ({SAM})", "value": ex["sam"] or "(empty)"},
                                  {"from": "gpt", "label": "reference", "value": ex["reference"]}]}
               for ex in picked]
    return make_preview(records, Path(path).parent, path, max_samples=len(records))


def print_examples(picked: Sequence[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)
    for ex in picked:
        t = Table(title=f"{ex['task']} · {ex['id']}", show_lines=True, expand=True)
        t.add_column(f"base ({BASE})", ratio=1)
        t.add_column(f"SAM ({SAM})", ratio=1)
        t.add_column("reference", ratio=1)
        t.add_row(ex["base"], ex["sam"], ex["reference"])
        console.print(t)
        console.print("images: " + " ".join(ex["images"]))
        console.print("prompt: " + ex["prompt"].replace("\n", " "))


@dataclass
class AblationSettings(WorldTableSettings):
    out: str = setting("runs/demo/ablation", help="output directory (resumable)")
    limit: int = setting(30, min=1, help="test samples per task")
    device: Optional[str] = setting(None, help=DEVICE_HELP)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "ablation",
        help="SAM Table 2 on the world: the trained mini variants on group captioning, storytelling, change captioning",
        description=__doc__,
    )
    add_flags(p, AblationSettings, custom={"progress": NO_PROGRESS})
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = from_args(AblationSettings, args)
    result = run_ablation(**asdict(settings))
    print(f"\nSAM Table 2 on the embedded world ({settings.limit} test samples per task, scores x 100, "
          "pycocoevalcap, simple tokenization)\n")
    if result["dtype"]:
        print(f"dtype: {result['dtype']['name']} ({result['dtype']['reason']})\n")
    print(table(result["runs"]))
    print(f"\nDifference from {REFERENCE} (row - {REFERENCE}; 95% paired bootstrap interval over the same test items; "
          "an interval containing 0: not distinguishable):\n")
    print(difference_table(result["differences"]))
    print("\nTwo answers side by side, base vs SAM, for the same images:\n")
    print_examples(result["examples"])
    sheet = examples_sheet(result["examples"], Path(settings.out) / "examples.png")
    print(f"\nexamples with their images: {sheet}")
    print(f"\nplot:  {result['paths']['png']}")
    print(f"table: {result['paths']['md']}  {result['paths']['csv']}")
    print(f"differences: {result['paths']['ablation_md']}  {result['paths']['ablation_csv']}  "
          f"{result['paths']['ablation_png']}")
    return 0


__all__ = ["AblationSettings", "CI_METRICS", "REFERENCE", "ROWS", "TASKS", "add_parser", "difference_table", "differences", "examples",
           "examples_sheet", "run", "run_ablation", "signed_interval", "table", "write_differences"]
