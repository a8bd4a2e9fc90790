"""``mmlink export CKPT --out DIR``: a trainable-only save (a run's ``final/`` or a checkpoint) as a standalone model.

The delta is applied to its base and a LoRA adapter, when the save has one, merged into the weights
(`mmlink.train.lora.export_merged`, which ``lora.save_merged`` uses too); DIR is ``save_pretrained`` of model and
processor, which `mmlink.models.load` reads with neither the base nor peft.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmlink.settings import add_command

DTYPES = ("float32", "bfloat16", "float16")

EPILOG = """
examples:
  mmlink export runs/tiny_sam/final --out models/tiny_sam
  mmlink export runs/cadvi/phase1_lora/checkpoints/step-000400 --out models/cadvi_step400 --dtype bfloat16
  mmlink generate --model models/tiny_sam ...     # or mmlink.models.load("models/tiny_sam")
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``export`` subcommand on ``sub`` (``run`` is its ``func``)."""
    p = add_command(
        sub, "export",
        help="write a trainable-only save (+ LoRA adapter) as a standalone model directory",
        description="Apply a trainable-only save (mmlink_delta.json + trainable.safetensors: a run's final/ or a "
        "checkpoint) to its base, merge its LoRA adapter when it has one, and write the result with save_pretrained "
        "(model and processor): a directory that loads without the base and without peft.",
        epilog=EPILOG,
    )
    p.add_argument("checkpoint", metavar="CKPT", help="trainable-only save directory (e.g. OUT/final)")
    p.add_argument("--out", required=True, metavar="DIR", help="where to write the standalone model (new or empty)")
    p.add_argument("--dtype", choices=DTYPES, default=None,
                   help="parameter dtype of the written model (default: as loaded, i.e. the base's)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from mmlink.models.loading import DELTA_CONFIG

    source, out = Path(args.checkpoint), Path(args.out)
    if not source.is_dir():
        raise FileNotFoundError(f"checkpoint directory not found: {source}")
    if not (source / DELTA_CONFIG).exists():
        hint = (f"; did you mean {source / 'final'}?" if (source / "final" / DELTA_CONFIG).exists() else
                ": it is already standalone" if (source / "config.json").exists() else "")
        raise ValueError(f"{source} is not a trainable-only save (no {DELTA_CONFIG}){hint}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} already exists and is not an empty directory; choose another --out or remove it")

    import json

    import torch

    from mmlink.train.loop import write_atomically
    from mmlink.train.lora import export_merged

    adapter = json.loads((source / DELTA_CONFIG).read_text()).get("adapter")
    dtype = getattr(torch, args.dtype) if args.dtype else None
    write_atomically(out, lambda tmp: export_merged(source, tmp, dtype))  # never a half-written DIR
    config = json.loads((out / "config.json").read_text())
    print(f"wrote {out}: standalone {config.get('model_type')} model"
          f"{f' (LoRA adapter {source / adapter} merged)' if adapter else ''}"
          f"{'' if any(out.glob('*token*')) or (out / 'processor_config.json').exists() else ', model only'}; "
          f"load it with mmlink.models.load({str(out)!r}) or --model {out}", file=sys.stdout)
    return 0


__all__ = ["add_parser", "run"]
