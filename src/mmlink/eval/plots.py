"""Charts for evaluation reports: grouped bars over runs, SAM's interaction-layer heatmap (Fig. 6) and data-volume
curve (Fig. 5).

Figures are drawn on matplotlib's Agg canvas directly (``Figure`` + ``FigureCanvasAgg``), never through pyplot, so
plotting works headless and leaves the caller's pyplot backend and figure list untouched. matplotlib is imported
inside the functions: importing this module stays cheap (and never imports torch).

Every function validates its input (empty or non-numeric data is a ValueError naming the problem), creates the
output's parent directories and returns the path of the PNG it wrote.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from mmlink.eval.report import as_score

DPI = 120
METRIC_ORDER = ("ROUGE-L", "CIDEr", "BLEU-4", "accuracy", "rating")
MAX_ANNOTATED_RUNS = 6


def _new_figure(figsize: tuple[float, float]):
    """A Figure bound to an Agg canvas (no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, format="png", bbox_inches="tight")
    return out


def _split(column: str | tuple[str, str]) -> tuple[str, str]:
    if isinstance(column, tuple):
        return column
    task, sep, metric = str(column).rpartition("/")
    if not sep:
        raise ValueError(f"bar_chart: column {column!r} is not 'task/metric'")
    return task, metric


def bar_chart(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str | tuple[str, str]],
    path: str | os.PathLike,
    title: str | None = None,
    errors: Mapping[str, Mapping[str, Sequence[float] | None]] | None = None,
) -> Path:
    """Grouped bar chart of a comparison: one subplot per metric, x = tasks (and ``Average``), one bar per run.

    Args:
        rows: one dict per run, as `mmlink.eval.report.compare` returns them: ``"run"`` (the legend label) and
            ``"task/metric"`` keys with float or None (None: no bar).
        columns: the ``"task/metric"`` keys (or (task, metric) pairs) to plot, in x order.
        path: the PNG to write.
        title: figure title.
        errors: optional error bars: ``{run: {"task/metric": (lo, hi)}}``, the interval's bounds (not offsets),
            e.g. a bootstrap confidence interval; a bar without an entry gets none. Values may be negative
            (differences): the axis then extends below 0, with a line at 0.
    Returns:
        ``path`` as a Path. Values are written on the bars when there are at most 6 runs.
    """
    if not rows:
        raise ValueError("bar_chart: no rows (runs) to plot")
    if not columns:
        raise ValueError("bar_chart: no columns to plot")
    pairs = [_split(c) for c in columns]
    keys = [c if isinstance(c, str) else f"{c[0]}/{c[1]}" for c in columns]
    if all(as_score(r.get(k)) is None for r in rows for k in keys):
        raise ValueError("bar_chart: every value is missing; nothing to plot")
    metrics = [m for m in METRIC_ORDER if any(pm == m for _, pm in pairs)]
    metrics += list(dict.fromkeys(m for _, m in pairs if m not in METRIC_ORDER))
    n_runs = len(rows)
    max_tasks = max(sum(1 for _, pm in pairs if pm == m) for m in metrics)
    width_in = min(24.0, max(6.0, 1.5 + max_tasks * (0.45 * n_runs + 0.6)))
    fig = _new_figure((width_in, 3.0 * len(metrics) + 0.6))
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    bar_w = 0.8 / n_runs
    annotate = n_runs <= MAX_ANNOTATED_RUNS
    for ax, metric in zip(axes, metrics):
        idx = [i for i, (_, pm) in enumerate(pairs) if pm == metric]
        tasks = [pairs[i][0] for i in idx]
        top, bottom = 0.0, 0.0
        for r, row in enumerate(rows):
            xs, hs, err_x, err_lo, err_hi = [], [], [], [], []
            bounds = (errors or {}).get(str(row.get("run"))) or {}
            for x, i in enumerate(idx):
                v = as_score(row.get(keys[i]))
                if v is not None:
                    xs.append(x - 0.4 + bar_w * (r + 0.5))
                    hs.append(v)
                    top, bottom = max(top, v), min(bottom, v)
                    ci = bounds.get(keys[i])
                    lo, hi = (as_score(ci[0]), as_score(ci[1])) if ci is not None and len(ci) == 2 else (None, None)
                    if lo is not None and hi is not None:
                        err_x.append(xs[-1])
                        err_lo.append(max(0.0, v - lo))
                        err_hi.append(max(0.0, hi - v))
                        top, bottom = max(top, hi), min(bottom, lo)
            # Label every run on the first subplot even if it has no bar there, so the legend lists all runs.
            bars = ax.bar(xs, hs, width=bar_w, color=f"C{r % 10}", label=str(row.get("run", f"run {r}")))
            if err_x:
                ax.errorbar(err_x, [hs[xs.index(x)] for x in err_x], yerr=[err_lo, err_hi], fmt="none",
                            ecolor="black", elinewidth=0.8, capsize=2)
            if annotate and hs:
                labels = [f"{h:.2f}" if abs(h) < 10 else f"{h:.1f}" for h in hs]  # small scores need 2 decimals
                ax.bar_label(bars, labels=labels, fontsize=7, padding=1)
        ax.set_xticks(range(len(tasks)), labels=tasks, rotation=20 if len(tasks) > 4 else 0)
        ax.set_ylabel(metric)
        if top == 0 and bottom == 0:  # an empty-looking panel is a result, not a drawing fault: say so
            ax.text(0.5, 0.5, f"every {metric} is 0.00", transform=ax.transAxes, ha="center", va="center",
                    fontsize=9, color="0.35")
        # Ratings live on a fixed 0-5 scale; other metrics get headroom for the value labels.
        if bottom < 0:  # differences: both directions, and where 0 is
            span = max(1.0, top - bottom)
            ax.set_ylim(bottom - 0.1 * span, top + 0.1 * span)
            ax.axhline(0, color="black", linewidth=0.8)
        else:
            ax.set_ylim(0, 5.4 if metric == "rating" else max(1.0, top * 1.15))
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="run")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def difference_chart(differences: Mapping[str, Mapping[str, Mapping[str, Any]]], path: str | os.PathLike,
                     title: str, columns: Sequence[str] | None = None) -> Path:
    """`bar_chart` of each run's differences from a reference row, their 95 % intervals as error bars.

    ``differences``: ``{run: {"task/metric": {"difference": d, "ci": [lo, hi] | None}}}`` (a missing key: no bar);
    ``columns``: the x order (default: the keys in the order they first appear)."""
    if columns is None:
        columns = list(dict.fromkeys(key for per_run in differences.values() for key in per_run))
    rows = [{"run": run, **{key: d["difference"] for key, d in per_run.items()}} for run, per_run in differences.items()]
    errors = {run: {key: d["ci"] for key, d in per_run.items()} for run, per_run in differences.items()}
    return bar_chart(rows, columns, path, title=title, errors=errors)


def layer_grid(scores: Mapping[tuple[int, int], float]):
    """The (k, l) grid behind `layer_heatmap`.

    Args:
        scores: {(l, k): score}; l is the guide layer (initial visual tokens), k the context layer (contextual
            semantics), k >= l as in SAM section 4.3.
    Returns:
        (ls, ks, grid): the sorted distinct l and k values and a numpy masked array of shape (len(ks), len(ls)),
        grid[i, j] = score at (l=ls[j], k=ks[i]); masked where k < l (not a valid configuration) and where no score
        was given.
    """
    import numpy as np

    if not scores:
        raise ValueError("layer_heatmap: no scores given (expected {(l, k): score})")
    clean: dict[tuple[int, int], float] = {}
    for key, value in scores.items():
        if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(x, int) for x in key)):
            raise ValueError(f"layer_heatmap: key {key!r} is not an (l, k) pair of ints")
        l, k = key
        if k < l:
            raise ValueError(f"layer_heatmap: (l={l}, k={k}) has k < l; the context layer cannot precede the guide")
        v = as_score(value)
        if v is None:
            raise ValueError(f"layer_heatmap: score at (l={l}, k={k}) is not a finite number: {value!r}")
        clean[(l, k)] = v
    ls = sorted({l for l, _ in clean})
    ks = sorted({k for _, k in clean})
    data = np.full((len(ks), len(ls)), np.nan)
    for (l, k), v in clean.items():
        data[ks.index(k), ls.index(l)] = v
    k_col = np.array(ks)[:, None]
    l_row = np.array(ls)[None, :]
    grid = np.ma.masked_array(data, mask=(k_col < l_row) | np.isnan(data))
    return ls, ks, grid


def layer_heatmap(
    scores: Mapping[tuple[int, int], float],
    path: str | os.PathLike,
    title: str = "Scores by interaction layers",
    metric_name: str = "average score",
) -> Path:
    """SAM Fig. 6 as a heatmap: x = guide layer l, y = context layer k; cells with k < l are blank.

    Args:
        scores: {(l, k): score}, see `layer_grid`.
        path: the PNG to write.
        title: figure title.
        metric_name: colorbar label.
    Returns:
        ``path`` as a Path. Every measured cell is annotated with its value (the best in bold); a valid but
        unmeasured cell (k >= l, no score) reads "n/a".
    """
    import matplotlib

    ls, ks, grid = layer_grid(scores)
    fig = _new_figure((1.2 + 1.0 * len(ls), 1.0 + 0.8 * len(ks)))
    ax = fig.add_subplot(1, 1, 1)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    im = ax.imshow(grid, origin="lower", cmap=cmap, aspect="auto")
    lo, hi = float(grid.min()), float(grid.max())
    for i, k in enumerate(ks):
        for j, l in enumerate(ls):
            if k < l:
                continue
            if grid.mask[i, j]:
                ax.text(j, i, "n/a", ha="center", va="center", fontsize=8, color="grey")
                continue
            v = float(grid[i, j])
            # Dark text on the bright (high) end of viridis, white on the dark end.
            frac = 0.5 if hi == lo else (v - lo) / (hi - lo)
            ax.text(
                j,
                i,
                f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="black" if frac > 0.6 else "white",
                fontweight="bold" if v == hi else "normal",
            )
    ax.set_xticks(range(len(ls)), labels=[str(l) for l in ls])
    ax.set_yticks(range(len(ks)), labels=[str(k) for k in ks])
    ax.set_xlabel("guide layer l (initial visual tokens)")
    ax.set_ylabel("context layer k (contextual semantics)")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label=metric_name)
    return _save(fig, path)


def choose_x_scale(xs: Sequence[float]) -> str:
    """``"log"`` when the positive x values span at least 10x, ``"symlog"`` for the same with a 0 among them
    (e.g. the untrained point of a data-volume sweep), else ``"linear"``; negative values always give linear."""
    if any(x < 0 for x in xs):
        return "linear"
    pos = [x for x in xs if x > 0]
    if len(pos) < 2 or max(pos) / min(pos) < 10:
        return "linear"
    return "symlog" if any(x == 0 for x in xs) else "log"


def _human(x: float) -> str:
    """Tick label for a sample count: 23000 -> 23K, 1500000 -> 1.5M."""
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:g}"


def volume_curve(
    points: Mapping[str, Sequence[tuple[float, float]]],
    path: str | os.PathLike,
    xlabel: str = "training samples",
    ylabel: str = "average score",
    title: str | None = None,
) -> Path:
    """SAM Fig. 5: score against training-data volume, one line with markers per series.

    Args:
        points: {series name: [(x, y), ...]}; points are sorted by x before drawing.
        path: the PNG to write.
        xlabel, ylabel, title: axis labels and figure title.
    Returns:
        ``path`` as a Path. The x axis is logarithmic when the x values span at least 10x (see `choose_x_scale`).
    """
    if not points:
        raise ValueError("volume_curve: no series given (expected {name: [(x, y), ...]})")
    series: dict[str, list[tuple[float, float]]] = {}
    for name, pts in points.items():
        if not pts:
            raise ValueError(f"volume_curve: series {name!r} has no points")
        clean = []
        for p in pts:
            if not (isinstance(p, (tuple, list)) and len(p) == 2):
                raise ValueError(f"volume_curve: series {name!r}: point {p!r} is not an (x, y) pair")
            x, y = as_score(p[0]), as_score(p[1])
            if x is None or y is None:
                raise ValueError(f"volume_curve: series {name!r}: point {p!r} is not a pair of finite numbers")
            clean.append((x, y))
        series[str(name)] = sorted(clean)
    all_x = sorted({x for pts in series.values() for x, _ in pts})
    scale = choose_x_scale(all_x)
    fig = _new_figure((6.4, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    for i, (name, pts) in enumerate(series.items()):
        ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", color=f"C{i % 10}", label=name)
    if scale == "symlog":
        # Linear below the smallest positive x, so the 0 point sits one decade left of it.
        ax.set_xscale("symlog", linthresh=min(x for x in all_x if x > 0))
    elif scale == "log":
        ax.set_xscale("log")
    if len(all_x) <= 12:
        # Tick exactly the measured volumes, as the paper's figure does.
        ax.set_xticks(all_x, labels=[_human(x) for x in all_x])
        ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


__all__ = ["bar_chart", "choose_x_scale", "difference_chart", "layer_grid", "layer_heatmap", "volume_curve"]
