"""`mmlink sweep`: train and evaluate a grid of settings, then draw SAM's Fig. 5 / Fig. 6.

A sweep file (YAML) names a training config, a grid over one or two settings, the evaluation tasks, and the plot:

    out: runs/sweep/layers
    train: configs/train/mini_stage2_bsg_adaptive.yaml
    train_overrides: {max_steps: 60}          # optional, applied to every point
    grid:                                     # TrainConfig fields, or model config fields (-> model_overrides)
      sam_guide_layer: [2, 4, 6]
      sam_context_layer: [2, 4, 6]
    tasks: [group_caption, storytelling]
    eval: {limit: 40, dtype: auto}            # EvalConfig fields (dtype auto: bf16 only where native)
    plot: layers                              # layers (Fig. 6 heatmap over l <= k) | volume (Fig. 5 curve) | none

``plot: layers`` skips points with ``sam_context_layer < sam_guide_layer`` (the paper sweeps ``k >= l`` only).
``plot: volume`` expects one grid key (e.g. ``train_limit``: the number of training records) for the x axis.
Each point trains into ``out/<point>/train`` and evaluates into ``out/<point>/eval``; both resume, so a re-run only
does what is missing. The score of a point is the average over tasks of its metrics (ROUGE-L, CIDEr and BLEU-4
for generation tasks, accuracy for closed-ended ones, rating for judged ones).
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mmlink.settings import add_command, check_fields, field_names, from_mapping, read_config_file, setting


@dataclass
class SweepConfig:
    """A parsed sweep file (see the module docstring)."""

    out: str = setting(help="sweep directory: one run per grid point, results.json, the figure")
    train: str = setting(help="the mmlink train config every point starts from")
    grid: dict = setting(help="one or two setting names, each a list of values")
    tasks: list[str] = setting(help="eval tasks every point is scored on")
    train_overrides: dict = setting(factory=dict, help="TrainConfig fields set for every point")
    eval: dict = setting(factory=dict, help="EvalConfig fields of the points' evaluations")
    plot: Literal["layers", "volume", "none"] = setting("none", help="the figure: layers (SAM Fig. 6), volume "
                                                       "(Fig. 5) or none")

    def __post_init__(self) -> None:
        check_fields(self)
        if not 1 <= len(self.grid) <= 2:
            raise ValueError("grid must map one or two setting names to lists of values")
        for key, values in self.grid.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"grid.{key} must be a non-empty list of values")
        if not self.tasks:
            raise ValueError("tasks must be a non-empty list of task names")
        if self.plot == "layers" and set(self.grid) != {"sam_guide_layer", "sam_context_layer"}:
            raise ValueError("plot: layers needs grid keys sam_guide_layer and sam_context_layer")
        if self.plot == "volume" and len(self.grid) != 1:
            raise ValueError("plot: volume needs exactly one grid key (the data volume, e.g. train_limit)")

    @classmethod
    def from_file(cls, path: str | Path) -> "SweepConfig":
        return from_mapping(cls, read_config_file(path), str(path))

    def points(self) -> list[dict[str, Any]]:
        keys = list(self.grid)
        points = [dict(zip(keys, combo)) for combo in itertools.product(*(self.grid[k] for k in keys))]
        if self.plot == "layers":
            points = [p for p in points if p["sam_context_layer"] >= p["sam_guide_layer"]]
        return points


def point_name(point: dict[str, Any]) -> str:
    return "-".join(f"{k}={v}" for k, v in point.items())


def average_score(metrics: dict) -> float:
    """Mean over tasks of each task's mean metric (the y value of Fig. 5 / the cells of Fig. 6).

    World-fact precision/recall (`mmlink.eval.facts`) are left out: the figures average the papers' metrics."""
    scored = [{k: v for k, v in t["metrics"].items() if not k.startswith("fact ")}
              for t in metrics["tasks"].values() if t.get("metrics")]
    per_task = [sum(m.values()) / len(m) for m in scored if m and None not in m.values()]
    if not per_task:
        raise ValueError("no scored task in the metrics")
    return sum(per_task) / len(per_task)


def point_config(config: SweepConfig, point: dict[str, Any], progress: bool = True):
    """The `TrainConfig` of one grid point (validated: a bad grid value fails here, before anything trains)."""
    from mmlink.train.config import TrainConfig, resolve_paths

    where = Path(config.out) / point_name(point)
    train = resolve_paths(read_config_file(config.train), Path(config.train).parent)  # as mmlink train reads it
    data = {**train, **config.train_overrides, "out_dir": str(where / "train")}
    model_fields = {k: v for k, v in point.items() if k not in field_names(TrainConfig)}
    data.update({k: v for k, v in point.items() if k in field_names(TrainConfig)})
    data["model_overrides"] = {**data.get("model_overrides", {}), **model_fields}
    data.setdefault("progress", progress)
    try:
        return from_mapping(TrainConfig, data)
    except ValueError as err:
        raise ValueError(f"sweep point {point_name(point)}: {err}") from None


def check_points(config: SweepConfig, progress: bool = True) -> list:
    """Every point's training config, its data files and its model settings checked before the first point trains:
    a typo in the grid must not surface after hours of training, nor leave a half-made run directory."""
    from mmlink.models.loading import check_overrides
    from mmlink.models.presets import PRESETS

    configs = [point_config(config, p, progress) for p in config.points()]
    for tc in configs:
        for key in ("train_data", "val_data"):
            path = getattr(tc, key)
            if path and not Path(path).exists():
                raise FileNotFoundError(f"{config.train}: {key} {path} not found (the mini recipes' data: make "
                                        "mini-data)")
        if tc.model not in PRESETS and not Path(tc.model).exists():
            raise FileNotFoundError(f"{config.train}: model {tc.model} not found (a preset: "
                                    f"{', '.join(PRESETS.names())}; or train_overrides: {{model: ...}})")
        check_overrides(tc.model_overrides)
        layers = [tc.model_overrides.get(k) for k in ("sam_guide_layer", "sam_context_layer")]
        if any(v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1) for v in layers):
            raise ValueError(f"sweep point {Path(tc.out_dir).parent.name}: SAM layers must be integers >= 1")
    return configs


def run_point(config: SweepConfig, point: dict[str, Any], progress: bool = True, train_config=None) -> dict:
    """Train (or resume, or skip when finished) and evaluate one grid point; returns its metrics.json content."""
    from mmlink.eval.harness import EvalConfig, evaluate
    from mmlink.train.loop import train

    where = Path(config.out) / point_name(point)
    tc = train_config or point_config(config, point, progress)
    if not (where / "train" / "train_summary.json").exists():
        resume = any((where / "train" / "checkpoints").glob("step-*"))
        train(tc, resume=resume)
    ec = EvalConfig(**{"out": str(where / "eval"), "progress": progress, "label": point_name(point),
                       "data_dir": str(Path(config.out) / "data"), **config.eval})
    return evaluate(str(where / "train" / "final"), config.tasks, ec)


def run_sweep(config: SweepConfig, progress: bool = True) -> dict:
    """Every point, then ``sweep.json``, ``sweep.md`` and the figure; returns ``{"points", "figure"}``."""
    from mmlink.eval import plots
    from mmlink.eval.report import markdown_table

    out = Path(config.out)
    results = []
    for point, tc in zip(config.points(), check_points(config, progress)):
        if progress:
            print(f"== sweep point {point_name(point)}", flush=True)
        metrics = run_point(config, point, progress, tc)
        results.append({"point": point, "score": average_score(metrics),
                        "tasks": {t: v["metrics"] for t, v in metrics["tasks"].items()}})
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps({"grid": config.grid, "tasks": config.tasks, "points": results},
                                               indent=2) + "\n")
    keys = list(config.grid)
    lines = markdown_table(keys + ["average score"],
                           [[str(r["point"][k]) for k in keys] + [f"{r['score']:.2f}"] for r in results], text_cols=())
    (out / "sweep.md").write_text("\n".join(lines) + "\n")
    figure = None
    if config.plot == "layers":
        scores = {(r["point"]["sam_guide_layer"], r["point"]["sam_context_layer"]): r["score"] for r in results}
        figure = plots.layer_heatmap(scores, out / "layers.png", title="Average score by SAM interaction layers")
    elif config.plot == "volume":
        (key,) = keys
        figure = plots.volume_curve({"model": [(float(r["point"][key]), r["score"]) for r in results]},
                                    out / "volume.png", xlabel=key)
    return {"points": results, "figure": figure, "table": "\n".join(lines)}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "sweep",
        help="train + evaluate a grid (SAM layers l,k or data volume) and draw SAM's Fig. 5 / Fig. 6",
        description=__doc__,
    )
    p.add_argument("--config", required=True, metavar="YAML", help="the sweep file")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = run_sweep(SweepConfig.from_file(args.config), progress=not args.no_progress)
    print(result["table"])
    if result["figure"] is not None:
        print(f"figure: {result['figure']}")
    return 0


__all__ = ["SweepConfig", "add_parser", "average_score", "check_points", "point_config", "point_name", "run",
           "run_point", "run_sweep"]
