"""``mmlink train``: its arguments (one flag per `TrainConfig` field) and what it runs."""

from __future__ import annotations

import argparse
import sys

from mmlink.settings import add_command, add_flags, flag_name, from_mapping, given_flags, parse_flags

TRAIN_EPILOG = """
recipe (defaults, SAM §5 / InstructBLIP):
  AdamW beta=(0.9, 0.999), weight decay 0.05 (matrices only), lr 2e-5 with 240 linear warm-up steps then
  cosine decay to 0 at max_steps, batch 20 per process, gradient clipping at 1.0, fp32 master weights.
  mixed_precision: auto (default) = bf16 autocast only where the hardware computes bf16 natively (a CUDA GPU
  with bf16, a CPU with AVX512-BF16 or AMX), else none (fp32); no, bf16, fp16 are used as given. The choice
  and its reason are recorded in train_summary.json.
  trainable: sam (default: SAM's new linears + language projection; vision, Q-Former and LLM frozen),
  projection, qformer (query tokens + Q-Former + SAM + projection), all, or a list of parameter-name prefixes.
  The loss is the summed token cross-entropy over the global batch divided by its number of target tokens
  (labels on every gpt turn + EOS; -100 on human turns, image tokens and padding; targets never truncated).

config:
  A YAML or JSON mapping of TrainConfig fields (see configs/train/tiny_sam.yaml); every field can be overridden
  with a flag below (--max-steps 100, --trainable sam.,language_projection., --betas 0.9,0.98). Unknown keys and
  wrong types are errors (exit 2).

files written under out_dir:
  checkpoints/step-XXXXXX/  trainable.safetensors + mmlink_delta.json (loadable with mmlink.models.load),
                            optimizer.pt, scheduler.pt, rng_rank<r>.pt, trainer_state.json (step, epoch, data
                            position, seed, config); written atomically (temp dir + rename), newest keep_last kept
  final/                    the trained model, trainable-only (mmlink generate --model OUT/final); a
                            standalone copy: mmlink export OUT/final --out DIR
  tensorboard/              loss, lr, samples/s, grad norm, val loss, generation samples
  samples.jsonl             generation samples (id, prediction, reference) every sample_every steps
  train_summary.json        steps, epochs, time_s, samples_per_s, trainable_params/total_params/trainable_fraction,
                            initial/final train loss, final val loss, ...

resume:
  --resume continues from the newest complete checkpoint (weights, optimizer, scheduler, RNG, data position) and
  reaches the same final weights as an uninterrupted run with the same seed. Ctrl-C prints the command to resume
  (exit 130). On a finished run --resume trains nothing; with a larger --max-steps it extends the run from its
  newest checkpoint (the cosine schedule then ends at the new max_steps).

paths:
  A relative train_data, val_data, image_root or model in the config file means the config file's directory when
  it exists there, else the working directory; out_dir and flag values are relative to the working directory.

multi-process (same command; see docs/training.md):
  accelerate launch --config_file configs/accelerate/ddp.yaml -m mmlink.cli train --config run.yaml
  torchrun --nproc_per_node 2 -m mmlink.cli train --config run.yaml
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    from mmlink.train.config import TrainConfig

    p = add_command(
        sub, "train",
        help="train a model of either family on LLaVA-format multi-image data (optionally with LoRA)",
        description="Train (by default SAM's new layers and the language projection) on LLaVA-format multi-image "
        "conversations, in one process or under accelerate launch / torchrun.",
        epilog=TRAIN_EPILOG,
    )
    p.add_argument("--config", metavar="FILE", help="YAML/JSON file of training settings")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in out_dir")
    add_flags(p.add_argument_group("settings (override the config file)"), TrainConfig)
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    import os
    import shlex

    from mmlink.train.config import TrainConfig
    from mmlink.train.loop import latest_checkpoint, train

    given = given_flags(args, TrainConfig)
    # A relative path in the config file may mean the file's directory; the flags' values mean the working directory.
    config = (TrainConfig.from_file(args.config, given) if args.config
              else from_mapping(TrainConfig, parse_flags(TrainConfig, given)))
    main_process = os.environ.get("RANK", "0") == "0"  # one report per run

    def command(*skip: str) -> str:  # this command line again, for the messages below
        words = ["mmlink", "train", *(["--config", args.config] if args.config else [])]
        for key, value in given.items():
            words += [] if key in skip else [flag_name(key), value]
        return " ".join(shlex.quote(str(w)) for w in words)

    launcher = " under the same launcher" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else ""
    try:
        summary = train(config, resume=args.resume)
    except KeyboardInterrupt:
        if main_process:
            latest = latest_checkpoint(config.out_dir)
            if latest is None:
                print(f"mmlink train: interrupted before the first checkpoint, nothing to resume; to start again "
                      f"run{launcher}: {command()}", file=sys.stderr)
            else:
                print(f"mmlink train: interrupted; last checkpoint {latest} (step {int(latest.name.split('-')[1])})"
                      f"; to resume run{launcher}: {command()} --resume", file=sys.stderr)
        return 130
    if not main_process:
        return 0
    if summary.get("already_finished"):
        print(f"{config.out_dir}: the run already finished ({summary['steps']} steps, model in "
              f"{summary['final_dir']}); nothing trained. To train it further raise max_steps: "
              f"{command('max_steps')} --max-steps N --resume")
        return 0
    print(
        f"trained {summary['steps']} steps in {summary['time_s']:.1f} s ({summary['samples_per_s']:.1f} samples/s); "
        f"final train loss {summary['final_train_loss']:.4f}; autocast {summary['mixed_precision']}; "
        f"model in {summary['final_dir']}"
    )
    return 0


__all__ = ["add_parser"]
