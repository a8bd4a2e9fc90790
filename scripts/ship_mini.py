"""Copy the finished `make train-mini` (`train-mini-llava`, `train-mini-cadvi`) runs into the package as the presets'
weights.

    python scripts/ship_mini.py [--runs runs/mini] [--dest src/mmlink/models/weights/mini]
    python scripts/ship_mini.py --recipe mini-llava --runs runs/mini_llava --dest src/mmlink/models/weights/mini_llava
    python scripts/ship_mini.py --recipe mini-cadvi --runs runs/cadvi --dest src/mmlink/models/weights/mini_cadvi

Stage 1's ``final/`` goes to ``DEST/stage1`` with its base set to the ``mini-untrained`` preset; each Stage-2
variant's ``final/`` goes to ``DEST/<variant>`` with its base set to ``../stage1`` (resolved against the variant's
own directory), so the shipped deltas do not depend on where the runs were. ``DEST/training.json`` records every
run's summary (steps, time, losses, data sizes) for the model card. Weights are copied byte for byte (the training
configs save them in bf16). A LoRA run's PEFT adapter directory (named by its delta's ``adapter``) is copied beside
its delta; CaD-VI's Phase 2 ships with ``../phase1`` as its base.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from mmlink.models.loading import DELTA_CONFIG, DELTA_WEIGHTS

VARIANTS = ("base", "linear", "bsg_mean", "bsg_adaptive", "cmaa")  # base: no SAM; cmaa: CMAA, no SAM
KEEP = ("steps", "epochs", "samples_seen", "tokens_seen", "time_s", "samples_per_s", "global_batch_size",
        "mixed_precision", "trainable_params", "total_params", "trainable_fraction", "initial_train_loss",
        "final_train_loss", "final_val_loss", "resumed_from_step")


def ship(runs: Path, dest: Path, recipe: str = "mini") -> dict:
    if recipe == "mini-llava":  # LLaVA's Stage 1 (the projector) on the untrained assembly
        sources = {"stage1": (runs / "stage1", "mini-llava-untrained")}
    elif recipe == "mini-cadvi":  # CaD-VI Phase 1 (LoRA on mini-llava), then Phase 2 from the Phase-1 weights
        sources = {"phase1": (runs / "phase1_lora", "mini-llava"), "phase2": (runs / "phase2" / "train", "../phase1")}
    else:
        sources = {"stage1": (runs / "stage1", "mini-untrained")}
        sources.update({v: (runs / f"stage2_{v}", "../stage1") for v in VARIANTS})
    record = {}
    for name, (run, base) in sources.items():
        summary_path = run / "train_summary.json"
        if not summary_path.exists():
            raise FileNotFoundError(f"{summary_path}: run {name} has not finished (make train-mini)")
        summary = json.loads(summary_path.read_text())
        meta = json.loads((run / "final" / DELTA_CONFIG).read_text())
        meta["base"] = base
        for key in ("base_absolute", "base_fingerprint"):  # where the run's base was: not part of what ships
            meta.pop(key, None)
        out = dest / name
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run / "final" / DELTA_WEIGHTS, out / DELTA_WEIGHTS)
        if meta.get("adapter"):  # the adapter's config and weights (not peft's template README)
            shutil.rmtree(out / meta["adapter"], ignore_errors=True)
            (out / meta["adapter"]).mkdir()
            shutil.copyfile(run / "final" / meta["adapter"] / "adapter_model.safetensors",
                            out / meta["adapter"] / "adapter_model.safetensors")
            adapter = json.loads((run / "final" / meta["adapter"] / "adapter_config.json").read_text())
            adapter["base_model_name_or_path"] = base  # not the path of the run it came from
            (out / meta["adapter"] / "adapter_config.json").write_text(json.dumps(adapter, indent=2) + "\n")
        (out / DELTA_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
        cfg = summary["config"]
        record[name] = {**{k: summary.get(k) for k in KEEP},
                        "train_data": cfg["train_data"], "val_data": cfg["val_data"], "seed": cfg["seed"],
                        "lr": cfg["lr"], "warmup_steps": cfg["warmup_steps"], "warmup_ratio": cfg.get("warmup_ratio"),
                        "projector_lr": cfg.get("projector_lr"), "batch_size": cfg["batch_size"],
                        "sam_mode": meta["settings"].get("sam_mode"), "cmaa": meta["settings"].get("cmaa", "none"),
                        "lora": cfg.get("lora"),
                        "bytes": sum(f.stat().st_size for f in out.rglob("*.safetensors"))}
    (dest / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="runs/mini", type=Path, help="the make train-mini output (default runs/mini)")
    parser.add_argument("--dest", default="src/mmlink/models/weights/mini", type=Path,
                        help="package directory of the weights (default src/mmlink/models/weights/mini)")
    parser.add_argument("--recipe", choices=("mini", "mini-llava", "mini-cadvi"), default="mini",
                        help="which runs: mini (Stage 1, the four Stage-2 SAM variants and CMAA), mini-llava (Stage 1) or "
                             "mini-cadvi (Phase 1 and Phase 2)")
    args = parser.parse_args(argv)
    try:
        record = ship(args.runs, args.dest, args.recipe)
    except (FileNotFoundError, KeyError, json.JSONDecodeError) as err:
        print(f"ship_mini: error: {err}", file=sys.stderr)
        return 2
    total = sum(r["bytes"] for r in record.values())
    for name, r in record.items():
        print(f"{name:>13}: {r['trainable_params']:>10,} params, {r['bytes'] / 1e6:6.1f} MB, {r['steps']} steps, "
              f"{r['time_s'] / 60:5.1f} min, loss {r['initial_train_loss']:.3f} -> {r['final_train_loss']:.3f}, "
              f"val {r['final_val_loss']}")
    print(f"total {total / 1e6:.1f} MB in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
