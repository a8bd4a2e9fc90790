"""Reports over the evaluation harness's ``metrics.json`` files: one run as markdown, several runs as a comparison.

Every evaluation run directory holds one ``metrics.json`` (``"format": "mmlink-eval-v1"``) with per-task scores
(already x 100 for BLEU/ROUGE/CIDEr/accuracy; judge ratings are 0-5). This module turns it into:

* `run_markdown` -- the per-run ``report.md``: a header (model, settings, commit, seed, config, dtype), then one table
  per task kind in the papers' layout: generation tasks as SAM Table 1 (a column group ROUGE-L | CIDEr | BLEU-4 per
  task, plus an Average group; with fact precision | fact recall added to each group when the items carried scene
  graphs, `mmlink.eval.facts`), closed-ended tasks (``rank``, ``pair_match``) as CaD-VI Table 1 (accuracy with the
  chance level beside it, plus how candidates were scored), judge tasks (mean rating, judge backend, the judge's
  measured AUC from `mmlink judge-check`, a warning when the judge is weak, unmeasured or below the AUC bar). A run
  with a blind control (``--blind``) gets a ``blind`` and a ``gap (real − blind)`` row in
  each table (judge tables: columns); every task's 95 % bootstrap intervals (``ci``, ``gap_ci``) follow its table.
* `compare` / `write_comparison` -- one table over several runs (markdown with the best value per column in bold,
  CSV, and a grouped bar chart from `mmlink.eval.plots`).

Only ``format``, ``model`` and ``tasks`` are guaranteed in a metrics file; every other field is optional and is
reported as "not recorded" (header) or "—" (table cell) when absent.

Importing this module is cheap: no torch, and matplotlib only when a chart is written.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

FORMAT = "mmlink-eval-v1"
METRICS_FILE = "metrics.json"
# SAM Table 1 column group, in the paper's order.
GENERATION_METRICS = ("ROUGE-L", "CIDEr", "BLEU-4")
# World-fact scoring (mmlink.eval.facts), shown beside SAM's group when the items carried scene graphs.
FACT_METRICS = ("fact precision", "fact recall")
# Column order of the comparison table; metrics not listed here follow, in first-seen order.
METRIC_ORDER = ("ROUGE-L", "CIDEr", "BLEU-4", *FACT_METRICS, "accuracy", "rating")
GENERATION_KINDS = ("generate",)
CLOSED_KINDS = ("rank", "pair_match")
JUDGE_KINDS = ("judge",)
AVERAGE = "Average"
MISSING = "—"
SCORING_TEXT = {
    "sum": "summed log-likelihood of each candidate's tokens + EOS",
    "mean": "log-likelihood divided by the candidate's token count (length-normalised)",
    "generate": "a short greedy answer matched to the options (exact text, option letter, or the one option it "
                "contains); unmatched answers count as wrong",
}
BLIND = "blind"
GAP = "gap (real − blind)"
WEAK_JUDGE_TEXT = "the judge is a small local model; ratings are indicative only"
UNMEASURED_JUDGE_TEXT = ("the judge's discrimination was never measured (`mmlink judge-check`), so its ratings are "
                         "unvalidated")


# --------------------------------------------------------------------------------------------------------- loading


def _validate(data: Any, where: str) -> dict:
    """Check the guaranteed part of the schema; ``where`` names the source in error messages."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(data).__name__}")
    if "format" not in data:
        raise ValueError(f"{where}: missing 'format' (expected {FORMAT!r}); is this an mmlink metrics.json?")
    if data["format"] != FORMAT:
        raise ValueError(f"{where}: unsupported format {data['format']!r} (expected {FORMAT!r})")
    if "model" not in data:
        raise ValueError(f"{where}: missing 'model'")
    if "tasks" not in data:
        raise ValueError(f"{where}: missing 'tasks'")
    tasks = data["tasks"]
    if not isinstance(tasks, dict):
        raise ValueError(f"{where}: 'tasks' must be an object mapping task name to results, got {type(tasks).__name__}")
    for name, task in tasks.items():
        if not isinstance(task, dict):
            raise ValueError(f"{where}: task {name!r} must be an object, got {type(task).__name__}")
        if "metrics" in task and not isinstance(task["metrics"], dict):
            raise ValueError(f"{where}: task {name!r}: 'metrics' must be an object")
    return data


def load_metrics(path: str | os.PathLike) -> dict:
    """Read one run's ``metrics.json``.

    Args:
        path: the file, or a run directory containing ``metrics.json``.
    Returns:
        the parsed dict, with ``_path`` (the run directory, a str) added so that `compare` can tell runs with the
        same label apart.
    Raises:
        FileNotFoundError: no such file (or no ``metrics.json`` in the directory).
        ValueError: invalid JSON, missing or wrong ``format``, missing ``model`` or ``tasks``; the message names
            the file.
    """
    p = Path(path)
    file = p / METRICS_FILE if p.is_dir() else p
    if not file.is_file():
        if p.is_dir():
            raise FileNotFoundError(f"no {METRICS_FILE} in run directory {p}")
        raise FileNotFoundError(f"metrics file not found: {file}")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{file}: invalid JSON ({e})") from e
    except UnicodeDecodeError as e:
        raise ValueError(f"{file}: not UTF-8 text ({e})") from e
    _validate(data, str(file))
    data["_path"] = str(file.parent)
    return data


# ------------------------------------------------------------------------------------------------------ formatting


def as_score(value: Any) -> float | None:
    """A finite number as float, else None (bools and NaN are not scores)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _fmt(value: Any, digits: int = 2) -> str:
    v = as_score(value)
    return MISSING if v is None else f"{v:.{digits}f}"


def _fmt_chance(value: Any) -> str:
    v = as_score(value)
    if v is None:
        return ""
    return str(int(v)) if v == int(v) else f"{v:.2f}"


def _cell(text: Any) -> str:
    """Escape what would break a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _plain(value: Any) -> str:
    """A config/settings value as written in JSON (``false``, not ``False``), strings bare."""
    return value if isinstance(value, str) else json.dumps(value)


def _kv(mapping: Any) -> str:
    if not isinstance(mapping, dict) or not mapping:
        return "not recorded"
    return ", ".join(f"{k}={_plain(v)}" for k, v in mapping.items())


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]],
                   text_cols: Sequence[int] = (0,)) -> list[str]:
    """Markdown table lines; ``text_cols`` left-aligned (labels), the others right-aligned (numbers)."""
    align = [":---" if i in text_cols else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _grouped_header(first: str, groups: Sequence[tuple[str, Sequence[str]]]) -> tuple[list[str], list[str]]:
    """SAM-style column groups: the header names each group over its first column, the first body row the metrics.

    Markdown has a single header row, so the metric names go in the first body row, as in the papers' tables.
    """
    header, sub = [first], [""]
    for name, metrics in groups:
        for i, m in enumerate(metrics):
            header.append(name if i == 0 else "")
            sub.append(m)
    return header, sub


def _display(metrics: Mapping) -> str:
    return str(metrics.get("label") or metrics.get("model"))


def _task_metric(task: Mapping, metric: str) -> float | None:
    m = task.get("metrics")
    return as_score(m.get(metric)) if isinstance(m, dict) else None


def _mean(values: Sequence[float | None]) -> float | None:
    """Mean of the values, or None if any is missing (an average over fewer tasks would not be comparable)."""
    if not values or any(v is None for v in values):
        return None
    return sum(values) / len(values)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------------- one run


def _header_lines(metrics: Mapping) -> list[str]:
    lines = [f"# Evaluation report: {_display(metrics)}", ""]
    lines.append(f"- Model: `{metrics.get('model')}`")
    lines.append(f"- Label: {metrics.get('label') or metrics.get('model')}")
    lines.append(f"- Model settings: {_kv(metrics.get('model_settings'))}")
    commit = metrics.get("commit")
    lines.append(f"- Commit: `{commit}`" if commit else "- Commit: not recorded")
    seed = metrics.get("seed")
    lines.append(f"- Seed: {seed}" if seed is not None else "- Seed: not recorded")
    if metrics.get("created"):
        lines.append(f"- Created: {metrics['created']}")
    lines.append(f"- Config: {_kv(metrics.get('config'))}")
    dtype = metrics.get("dtype")
    if isinstance(dtype, Mapping) and dtype.get("name"):
        lines.append(f"- Dtype: {dtype['name']} ({dtype.get('reason', 'no reason recorded')})")
    return lines


def _n(task: Mapping) -> str:
    n = task.get("n")
    return str(n) if n is not None else "not recorded"


def _generation_lines(label: str, tasks: dict[str, dict]) -> list[str]:
    names = list(tasks)
    # every group gets the fact columns when any task has them (a task without reads MISSING), so groups line up
    columns = GENERATION_METRICS + tuple(m for m in FACT_METRICS if any(m in (tasks[n].get("metrics") or {})
                                                                        for n in names))
    groups: list[tuple[str, Sequence[str]]] = [(name, columns) for name in names]
    row = [label]
    for name in names:
        row += [_fmt(_task_metric(tasks[name], m)) for m in columns]
    if len(names) >= 2:
        groups.append((AVERAGE, columns))
        row += [_fmt(_mean([_task_metric(tasks[n], m) for n in names])) for m in columns]
    header, sub = _grouped_header("Model", groups)
    lines = ["## Generation tasks (SAM Table 1 layout)", ""]
    lines += markdown_table(header, [sub, row, *_blind_rows(tasks, names, columns, len(names) >= 2)])
    lines.append("")
    for name in names:
        t = tasks[name]
        extra = f" ({t['group']})" if t.get("group") else ""
        data = f", data `{t['data']}`" if t.get("data") else ""
        split = f", split {t['split']}" if t.get("split") else ""
        lines.append(f"- `{name}`{extra}: n={_n(t)}{data}{split}")
        if t.get("cider_unreliable"):
            lines.append(f"  - CIDEr not reported: {t['cider_unreliable']}")
        others = {k: v for k, v in (t.get("metrics") or {}).items() if k not in columns}
        if others:
            lines.append("  - other metrics: " + ", ".join(f"{k} {_fmt(v)}" for k, v in others.items()))
        lines += _fact_type_lines(t)
        lines += _interval_lines(t)
        if isinstance(t.get("by_category"), dict):
            lines += [f"  - `{c}` (n={m.get('n')}): " + ", ".join(f"{k} {_fmt(v)}" for k, v in m.items() if k != "n")
                      for c, m in t["by_category"].items()]
    if len(names) >= 2:
        lines.append(f"- {AVERAGE}: mean over the {len(names)} generation tasks ({MISSING} if a task lacks the metric)")
    lines.append("")
    return lines


def _fact_type_lines(task: Mapping) -> list[str]:
    """World facts per type, precision / recall ("color 92.00 / 80.00"), in the order metrics.json lists them."""
    facts = task.get("facts")
    if not isinstance(facts, dict) or not facts:
        return []
    types = list(dict.fromkeys(k.split("/", 1)[1] for k in facts if "/" in k))
    cells = [f"{t} {_fmt(facts.get(f'precision/{t}'))} / {_fmt(facts.get(f'recall/{t}'))}" for t in types]
    return ["  - world facts per type (precision / recall): " + ", ".join(cells)] if cells else []


def _blind_rows(tasks: Mapping[str, Mapping], names: Sequence[str], metrics: Sequence[str],
                average: bool) -> list[list[str]]:
    """The blind control's row and the gap's row (signed), when any task has them."""
    if not any(isinstance(tasks[n].get(BLIND), dict) for n in names):
        return []
    rows = []
    for key, label, fmt in ((BLIND, BLIND, _fmt), ("gap", GAP, _signed)):
        row = [label]
        for name in names:
            row += [fmt(_part_metric(tasks[name], key, m)) for m in metrics]
        if average:
            row += [fmt(_mean([_part_metric(tasks[n], key, m) for n in names])) for m in metrics]
        rows.append(row)
    return rows


def _part_metric(task: Mapping, part: str, metric: str) -> float | None:
    m = task.get(part)
    return as_score(m.get(metric)) if isinstance(m, dict) else None


def _signed(value: Any) -> str:
    v = as_score(value)
    return MISSING if v is None else f"{v:+.2f}"


def _bounds(ci: Any, fmt=_fmt) -> str:
    if not (isinstance(ci, (list, tuple)) and len(ci) == 2):
        return MISSING
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]"


def _interval_lines(task: Mapping) -> list[str]:
    """The task's 95 % bootstrap intervals (its own, and the blind gap's) as bullet lines."""
    lines = []
    ci = task.get("ci")
    if isinstance(ci, dict) and ci:
        lines.append("  - 95% CI (bootstrap): " + ", ".join(f"{m} {_bounds(b)}" for m, b in ci.items()))
    gap_ci = task.get("gap_ci")
    if isinstance(gap_ci, dict) and gap_ci:
        lines.append("  - gap real − blind, 95% CI (paired bootstrap): "
                     + ", ".join(f"{m} {_bounds(b, _signed)}" for m, b in gap_ci.items()))
    return lines


def _scoring_text(scoring: Any) -> str:
    if scoring is None:
        return "not recorded"
    return SCORING_TEXT.get(str(scoring), f"{scoring!r}")


def _closed_lines(label: str, tasks: dict[str, dict]) -> list[str]:
    names = list(tasks)
    row = [label]
    for name in names:
        t = tasks[name]
        acc = _fmt(_task_metric(t, "accuracy"))
        chance = _fmt_chance(t.get("chance"))
        row.append(f"{acc} (chance {chance})" if chance else acc)
    lines = ["## Closed-ended tasks (CaD-VI Table 1 layout, accuracy %)", ""]
    lines += markdown_table(["Model", *names], [row, *_blind_rows(tasks, names, ("accuracy",), False)])
    lines.append("")
    for name in names:
        t = tasks[name]
        unmatched = f", {t['unmatched']} answer(s) matched no option" if t.get("unmatched") is not None else ""
        if unmatched and t.get("blind_unmatched") is not None:
            unmatched += f" ({t['blind_unmatched']} in the blind pass)"
        lines.append(f"- `{name}`: {t.get('kind')}, n={_n(t)}{unmatched}")
        lines += _interval_lines(t)
    lines.append("")
    # One line when every task was scored the same way (the usual case), else one line per task.
    scorings = {name: tasks[name].get("scoring") for name in names}
    if len({json.dumps(s) for s in scorings.values()}) == 1:
        lines.append(f"Candidates scored by: {_scoring_text(next(iter(scorings.values())))}.")
    else:
        for name, s in scorings.items():
            lines.append(f"Candidates scored by (`{name}`): {_scoring_text(s)}.")
    lines.append("")
    return lines


def _judge_lines(tasks: dict[str, dict]) -> list[str]:
    rows, warnings, notes = [], [], []
    blind = any(isinstance(t.get(BLIND), dict) for t in tasks.values())
    for name, t in tasks.items():
        judge = t.get("judge") if isinstance(t.get("judge"), dict) else {}
        disc = judge.get("discrimination") if isinstance(judge.get("discrimination"), dict) else None
        rows.append(
            [
                name,
                _n(t),
                _fmt(_task_metric(t, "rating")),
                str(judge["rated"]) if judge.get("rated") is not None else MISSING,
                str(judge["failures"]) if judge.get("failures") is not None else MISSING,
                _fmt(disc.get("auc")) if disc else MISSING,
                str(judge.get("backend") or MISSING),
                str(judge.get("prompt_version") or MISSING),
            ]
        )
        if blind:
            rows[-1][3:3] = [_fmt(_part_metric(t, BLIND, "rating")), _signed(_part_metric(t, "gap", "rating"))]
        if judge.get("weak") is True:
            warnings.append(f"> **Warning (`{name}`):** {WEAK_JUDGE_TEXT}.")
        if disc and not disc.get("measured"):
            warnings.append(f"> **Warning (`{name}`):** {UNMEASURED_JUDGE_TEXT}.")
        elif disc and disc.get("flagged"):
            warnings.append(f"> **Warning (`{name}`):** the judge tells right from certainly-wrong answers with AUC "
                            f"{_fmt(disc.get('auc'))} (worst case {_fmt(disc.get('auc_worst'))}), below the bar of "
                            f"{_fmt(disc.get('min_auc'), 1)} (`mmlink judge-check`): its ratings are not to be "
                            "trusted.")
        interval_lines = _interval_lines(t)
        if interval_lines:
            notes += [f"- `{name}`:", *interval_lines]
    lines = ["## Judged open-ended tasks (LLM judge, rating 0-5)", ""]
    header = ["Task", "n", "Mean rating (0-5)", *(["Blind", "Gap"] if blind else []), "Rated", "Failures",
              "Judge AUC", "Judge", "Prompt version"]
    lines += markdown_table(header, rows, text_cols=(0, len(header) - 2, len(header) - 1))
    lines.append("")
    if notes:
        lines += notes + [""]
    if warnings:
        lines += warnings + [""]
    return lines


def _other_lines(tasks: dict[str, dict]) -> list[str]:
    """VQA accuracy, retrieval (MRR, R@k) and AUC tasks: one row per task, its blind control and intervals below."""
    rows, notes = [], []
    for name, t in tasks.items():
        m = t.get("metrics") or {}
        chance = _fmt_chance(t.get("chance"))
        scoring = f"; candidates scored by {_scoring_text(t['scoring'])}" if t.get("scoring") else ""
        rows.append([name, str(t.get("kind") or MISSING), _n(t),
                     ", ".join(f"{k} {_fmt(v)}" for k, v in m.items()) + (f" (chance {chance})" if chance else "")])
        if isinstance(t.get(BLIND), dict):
            notes.append(f"- `{name}` blind: " + ", ".join(f"{k} {_fmt(v)}" for k, v in t[BLIND].items())
                         + "; gap: " + ", ".join(f"{k} {_signed(v)}" for k, v in (t.get("gap") or {}).items()))
        interval_lines = _interval_lines(t)
        if isinstance(t.get("by_category"), dict):
            interval_lines.append("  - per category: " + ", ".join(
                f"{c} {_fmt(next((v for k, v in m.items() if k != 'n'), None))} (n={m.get('n')})"
                for c, m in t["by_category"].items()))
        if interval_lines or scoring:
            notes += [f"- `{name}`{scoring}:", *interval_lines]
    lines = ["## Other tasks (VQA accuracy, retrieval, AUC)", ""]
    lines += markdown_table(["Task", "Kind", "n", "Metrics"], rows, text_cols=(0, 1, 3))
    return lines + [""] + (notes + [""] if notes else [])


def run_markdown(metrics: dict) -> str:
    """The per-run ``report.md``.

    Args:
        metrics: one run's metrics dict (as `load_metrics` returns it).
    Returns:
        markdown text: header, then one table per task kind (generation, closed-ended, judge, other).
    """
    _validate(metrics, "<metrics dict>")
    label = _display(metrics)
    by_kind: dict[str, dict[str, dict]] = {"gen": {}, "closed": {}, "judge": {}, "other": {}}
    for name, task in metrics["tasks"].items():
        kind = task.get("kind")
        key = (
            "gen"
            if kind in GENERATION_KINDS
            # closed-ended tasks scored by accuracy alone share one table; VQA accuracy, retrieval and AUC have theirs
            else "closed" if kind in CLOSED_KINDS and set(task.get("metrics") or {}) == {"accuracy"}
            else "judge" if kind in JUDGE_KINDS else "other"
        )
        by_kind[key][name] = task
    lines = _header_lines(metrics) + [""]
    if not metrics["tasks"]:
        lines += ["No tasks were evaluated.", ""]
    if by_kind["gen"]:
        lines += _generation_lines(label, by_kind["gen"])
    if by_kind["closed"]:
        lines += _closed_lines(label, by_kind["closed"])
    if by_kind["judge"]:
        lines += _judge_lines(by_kind["judge"])
    if by_kind["other"]:
        lines += _other_lines(by_kind["other"])
    lines += _aio_lines(metrics["tasks"])
    return "\n".join(lines).rstrip("\n") + "\n"


def _aio_lines(tasks: Mapping[str, Mapping]) -> list[str]:
    """What VisLingInstruct's AIO cost per task (``--aio``): seconds per item answering alone and with AIO."""
    rows = [(name, t["aio"]) for name, t in tasks.items() if t.get("aio")]
    if not rows:
        return []
    lines = ["### AIO (instruction optimization before answering)", ""]
    header = ["task", "items", "answer s/item", "AIO s/item", "cost (× time per item)", "instruction changed",
              "fallbacks", "rewrites reused"]
    lines += markdown_table(header, [[name, str(a["items"]), _fmt(a["answer_s_per_item"], 3),
                                      _fmt(a["aio_s_per_item"], 3),
                                      _fmt(a["cost_x"], 1) + "×" if a.get("cost_x") is not None else MISSING,
                                      f"{100 * a['changed']:.0f} %", str(a["fallbacks"]),
                                      str(a.get("rewrites_reused", 0))] for name, a in rows])
    return lines + [""]


# ------------------------------------------------------------------------------------------------------ comparison


def column_key(task: str, metric: str) -> str:
    """The key of a comparison column in `compare`'s rows and the CSV header: ``"task/metric"``."""
    return f"{task}/{metric}"


def _metric_sort(names: Iterable[str]) -> list[str]:
    seen = list(dict.fromkeys(names))
    known = [m for m in METRIC_ORDER if m in seen]
    return known + [m for m in seen if m not in METRIC_ORDER]


def comparison_columns(runs: Sequence[dict]) -> tuple[list[tuple[str, str]], list[str]]:
    """The comparison's columns and its generation tasks.

    Returns:
        (columns, generation_tasks): columns are (task, metric) pairs, tasks in first-seen order over the runs,
        metrics in `METRIC_ORDER` then first-seen; the (``Average``, metric) columns follow the last generation task
        when there are at least 2 generation tasks. A task's kind is the one of the first run that has it.
    """
    kinds: dict[str, Any] = {}
    task_metrics: dict[str, list[str]] = {}
    for run in runs:
        for name, task in run["tasks"].items():
            kinds.setdefault(name, task.get("kind"))
            task_metrics.setdefault(name, []).extend((task.get("metrics") or {}).keys())
    gen_tasks = [t for t in kinds if kinds[t] in GENERATION_KINDS]
    columns: list[tuple[str, str]] = []
    for name in kinds:
        columns += [(name, m) for m in _metric_sort(task_metrics[name])]
        if len(gen_tasks) >= 2 and name == gen_tasks[-1]:
            gen_metrics = _metric_sort(m for t in gen_tasks for m in task_metrics[t])
            columns += [(AVERAGE, m) for m in gen_metrics]
    return columns, gen_tasks


def _run_names(runs: Sequence[dict]) -> list[str]:
    """Display names: label, else model; duplicates get their run directory appended, then a counter."""
    names = [_display(r) for r in runs]
    dup = {n for n in names if names.count(n) > 1}
    out = []
    for name, run in zip(names, runs):
        if name in dup and run.get("_path"):
            name = f"{name} ({Path(run['_path']).name})"
        out.append(name)
    # Still ambiguous (same directory name, or no _path): number them in input order.
    counts: dict[str, int] = {}
    final = []
    for name in out:
        if out.count(name) > 1:
            counts[name] = counts.get(name, 0) + 1
            name = f"{name} #{counts[name]}"
        final.append(name)
    return final


def _rounded_max(values: Sequence[float | None]) -> float | None:
    """The best displayed value, or None when fewer than two runs have one (nothing to compare)."""
    present = [round(v, 2) for v in values if v is not None]
    return max(present) if len(present) >= 2 else None


def compare(runs: Sequence[dict]) -> tuple[str, list[dict]]:
    """One comparison table over several runs.

    Args:
        runs: metrics dicts (as `load_metrics` returns them), one per run; at least one.
    Returns:
        (markdown, rows): one row per run, a dict with ``"run"`` (display name), ``"model"`` and one key per column
        (`column_key` ``"task/metric"``; float, or None where the run lacks the value). ``Average/metric`` is the mean
        over all generation tasks of the comparison, None when the run lacks any of them. In the markdown, missing
        values are "—" and the best value of each column is bold (every row that has it).
    """
    if not runs:
        raise ValueError("compare: no runs given")
    for i, run in enumerate(runs):
        _validate(run, str(run.get("_path") or f"run {i}") if isinstance(run, dict) else f"run {i}")
    columns, gen_tasks = comparison_columns(runs)
    names = _run_names(runs)
    rows: list[dict] = []
    for name, run in zip(names, runs):
        row: dict[str, Any] = {"run": name, "model": str(run["model"])}
        for task, metric in columns:
            if task == AVERAGE and task not in run["tasks"]:
                value = _mean([_task_metric(run["tasks"].get(t, {}), metric) for t in gen_tasks])
            else:
                value = _task_metric(run["tasks"].get(task, {}), metric)
            row[column_key(task, metric)] = value
        rows.append(row)

    best = {column_key(t, m): _rounded_max([r[column_key(t, m)] for r in rows]) for t, m in columns}
    groups: list[tuple[str, list[str]]] = []
    for task, metric in columns:
        if groups and groups[-1][0] == task:
            groups[-1][1].append(metric)
        else:
            groups.append((task, [metric]))
    header, sub = _grouped_header("Run", groups)
    body = [sub]
    for row in rows:
        cells = [row["run"]]
        for task, metric in columns:
            key = column_key(task, metric)
            v = row[key]
            text = _fmt(v)
            is_best = v is not None and best[key] is not None and round(v, 2) == best[key]
            cells.append(f"**{text}**" if is_best else text)
        body.append(cells)

    lines = [f"# Comparison of {len(runs)} run{'s' if len(runs) != 1 else ''}", ""]
    lines += markdown_table(header, body) if columns else ["No task metrics in these runs."]
    lines += [
        "",
        f"Best value per column in bold (all tied rows; columns with fewer than two values are not marked). "
        f"Missing values: {MISSING}.",
    ]
    if len(gen_tasks) >= 2:
        lines.append(
            f"{AVERAGE}: mean over the generation tasks {', '.join(gen_tasks)}; "
            f"{MISSING} for a run lacking one of them."
        )
    # Different sample counts make a column's values not strictly comparable; say so rather than hide it.
    for task in dict.fromkeys(t for t, _ in columns if t != AVERAGE):
        ns = [run["tasks"][task].get("n") for run in runs if task in run["tasks"]]
        if len({json.dumps(n) for n in ns}) > 1:
            lines.append(f"Note: `{task}` was evaluated on different sample counts ({', '.join(map(str, ns))}).")
    lines += ["", "## Runs", ""]
    for name, run in zip(names, runs):
        parts = [f"model `{run['model']}`", f"settings {_kv(run.get('model_settings'))}"]
        if run.get("commit"):
            parts.append(f"commit `{run['commit']}`")
        if run.get("seed") is not None:
            parts.append(f"seed {run['seed']}")
        if isinstance(run.get("dtype"), Mapping) and run["dtype"].get("name"):
            parts.append(f"dtype {run['dtype']['name']} ({run['dtype'].get('reason', 'no reason recorded')})")
        if run.get("_path"):
            parts.append(f"directory `{run['_path']}`")
        lines.append(f"- {name}: " + "; ".join(parts))
    return "\n".join(lines) + "\n", rows


def write_comparison(runs: Sequence[dict], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``comparison.md``, ``comparison.csv`` and ``comparison.png`` into ``out_dir`` (created if needed).

    The CSV has a header row (``run``, ``model``, then one ``task/metric`` column per `compare` column); missing
    values are empty cells and numbers are written at full precision.

    Returns:
        {"md": path, "csv": path, "png": path}.
    """
    from mmlink.eval.plots import bar_chart  # matplotlib stays unimported until a chart is drawn

    markdown, rows = compare(runs)
    columns = [column_key(t, m) for t, m in comparison_columns(runs)[0]]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / "comparison.md", "csv": out / "comparison.csv", "png": out / "comparison.png"}
    paths["md"].write_text(markdown, encoding="utf-8")
    with paths["csv"].open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["run", "model", *columns])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    # each run's bootstrap intervals as error bars (metrics.json "ci"), where it has them
    errors = {str(row["run"]): {column_key(t, m): b for t, task in run.get("tasks", {}).items()
                                for m, b in (task.get("ci") or {}).items() if b is not None}
              for row, run in zip(rows, runs)}
    title = f"Comparison of {len(rows)} run{'s' if len(rows) != 1 else ''}"
    bar_chart(rows, columns, paths["png"], title=title + (" (95% bootstrap intervals)" if any(errors.values()) else ""),
              errors=errors)
    return paths


__all__ = [
    "AVERAGE",
    "FACT_METRICS",
    "FORMAT",
    "GENERATION_METRICS",
    "METRIC_ORDER",
    "SCORING_TEXT",
    "WEAK_JUDGE_TEXT",
    "as_score",
    "column_key",
    "compare",
    "comparison_columns",
    "load_metrics",
    "markdown_table",
    "run_markdown",
    "write_comparison",
]
