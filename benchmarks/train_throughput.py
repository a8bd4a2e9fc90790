"""Training throughput of SAM vs the base Q-Former model, and the share of this machine's peak FLOP/s it reaches.

SAM's recipe (paper §4.4) trains only its new linears and the language projection; the vision tower, the Q-Former
and the LLM stay frozen. This script measures one full TRAINING STEP of that recipe for mmlink's presets, base
(``sam_mode="none"``: only ``language_projection`` trains) vs full SAM (``sam_mode="bsg_adaptive"``: the SAM
linears and the projection train), side by side in one run:

* the step: forward with ``labels`` (loss) + backward + ``AdamW.step`` on the trainable parameters (+ zeroing the
  gradients), under ``torch.autocast(dtype=bfloat16)`` by default (``--dtype fp32``: no autocast). Weights stay in
  fp32, as in mixed-precision training. Every variant gets the same deterministic batch: ``--batch-size`` samples
  with ``--images`` random-noise images each and a ``--target-words`` answer (the labels);
* time: interleaved repeats (base, SAM, SAM, base, ...) after ``--warmup`` untimed steps; medians → samples/s and
  SAM/base ratios, with the quartiles of the per-repeat ratio as the noise band;
* memory: a fresh subprocess per (model, variant) loads the model, builds the batch and the optimizer, resets the
  kernel's RSS high-water mark (``VmHWM``) and runs ``--memory-steps`` training steps (the first one allocates
  AdamW's state); reported are the RSS after loading and the peak RSS during training (whole process, weights
  included). On CUDA: ``torch.cuda.memory_allocated`` / ``max_memory_allocated``;
* FLOPs: one extra step per variant under ``torch.utils.flop_counter.FlopCounterMode`` counts the matmul,
  convolution and attention FLOPs that the forward and backward passes actually execute (a frozen layer's backward
  computes only the gradient of its input, and only where a trainable parameter sits upstream). Divided by the
  median step time this gives the achieved FLOP/s; its fraction of this machine's measured matmul peak is the MFU.
  The peak is the best of several timed ``torch.matmul`` calls on square bf16 and fp32 matrices of a few sizes.

The presets' SAM linears are zero-initialised; their gradients and compute are those of any SAM, which is all that
matters here. Timing rows measured while other processes used more than 10 % of the CPUs are flagged with ``*``.

``--recipes stage1`` compares instead the ``mini`` Stage-1 recipe before and after its change (32 → 16 query tokens,
per-patch colour histograms ``vision_config.color_bins`` 0 → 4), side by side in one run:

* after: the Stage-1 config's model (``--stage1-config``, default ``configs/train/mini_stage1.yaml``: ``mini`` in
  ``--models`` means its ``mini-untrained``) as loaded; before: the same weights rebuilt with
  ``num_query_tokens=32`` and ``color_bins=0`` — only the query tokens and the cross-attention's key/value (whose
  input width shrinks by the 64 histogram bins) start fresh, as Stage 1 trains them from scratch anyway. ``tiny`` has
  no colour bins: only its query count varies (8 before, 4 after);
* the step: what ``mmlink train`` does for that config — its ``trainable:`` prefixes, frozen modules in eval mode,
  AdamW (its lr, betas, weight decay on matrices only), gradient clipping at its ``max_grad_norm``, autocast as its
  ``mixed_precision`` picks on this machine (``--dtype`` overrides), ``--batch-size`` default its ``batch_size``;
* the batch: real world records, the tasks in ``make train-mini``'s Stage-1 proportions (synthesized into a temporary
  directory), collated by ``ConversationCollator`` with each variant's own processor;
* reported: samples/s before and after with the per-repeat ratio band, the FLOPs per step, and the share of the step
  spent in the frozen vision tower (one ``patch_features`` call on the batch's images per repeat, interleaved with
  the steps): what caching the vision features could save at most. No memory or matmul peak in this mode.

Usage: python benchmarks/train_throughput.py [--models tiny,mini] [--batch-size 4] [--images 2] [--out r.json]
       python benchmarks/train_throughput.py --recipes stage1 [--models tiny,mini] [--out r.json]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

# benchlib sits next to this script (on sys.path when it runs); it sets the environment before torch is imported.
import benchlib
import torch
from benchlib import (
    VARIANTS,
    OtherCpuLoad,
    fmt_mem,
    fmt_time,
    is_busy,
    make_images,
    synchronize,
    time_interleaved,
)

TRAINABLE = ("sam.", "language_projection.")  # SAM's recipe: the new linears + the projection
CHILD_MARKER = "TRAIN_THROUGHPUT_RESULT "  # prefixes the memory child's JSON line on stdout
# The --help text (argparse re-flows it).
DESCRIPTION = """\
Measure the training throughput of SAM's recipe on this machine: one full training step (forward with labels +
backward + AdamW step; only SAM's linears and the language projection train, the vision tower, Q-Former and LLM are
frozen) for the base model (sam_mode=none: only the projection trains) vs full SAM (sam_mode=bsg_adaptive), side by
side in one run with interleaved repeats on identical deterministic batches. Reports median step time, samples/s and
the SAM/base ratio; the peak memory of training from a fresh subprocess per variant (CPU: whole-process RSS
high-water mark, reset after loading; CUDA: max_memory_allocated) and its ratio; and the FLOPs of a step
(FlopCounterMode, forward + backward), the achieved FLOP/s and its fraction of this machine's measured bf16 and fp32
torch.matmul peak (MFU). With --recipes stage1: the Stage-1 recipe of --stage1-config before (32 query tokens, no
colour histograms) vs after (the model as configured) on a batch of real world records, samples/s and the vision
tower's share of the step.
"""
WORDS = (
    "the red cube sits left of a small blue sphere while two green cylinders stand behind them near the "
    "wall and a yellow cone lies on its side under the wooden table in the corner of the bright room"
).split()


# --------------------------------------------------------------------------- inputs and models


def make_batch(processor, batch_size: int, n_images: int, target_words: int, device: str) -> dict[str, torch.Tensor]:
    """A training batch: ``batch_size`` samples of ``n_images`` images each, every answer ``target_words`` words
    (labels on the answer only; right padding)."""
    images = make_images(batch_size * n_images)
    prompts, per_sample, targets = [], [], []
    for s in range(batch_size):
        prompt = "".join(f"Image {i + 1}: <image>\n" for i in range(n_images))
        prompts.append(prompt + "Describe what these images show together.")
        per_sample.append(images[s * n_images : (s + 1) * n_images])
        targets.append(" ".join(WORDS[(s + j) % len(WORDS)] for j in range(target_words)))
    batch = processor(prompts, per_sample, targets=targets)
    return {k: v.to(device) for k, v in batch.items()}


@dataclass
class Trainer:
    """One variant, ready to train: model (train mode), AdamW over the trainable parameters, the batch."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    batch: dict[str, torch.Tensor]
    trainable: int
    total: int
    autocast: Callable[[], contextlib.AbstractContextManager]
    max_grad_norm: float = 0.0  # > 0: clip the gradients' global norm before the update, as `mmlink train` does

    def step(self) -> torch.Tensor:
        with self.autocast():
            loss = self.model(**self.batch).loss
        loss.backward()
        if self.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(
                [p for group in self.optimizer.param_groups for p in group["params"]], self.max_grad_norm
            )
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()


def build_trainer(model_name: str, variant: str, args_like: dict) -> Trainer:
    from mmlink.models import load

    device = args_like["device"]
    model, processor = load(model_name, sam_mode=VARIANTS[variant])
    model = model.to(device).train()
    trainable, total = model.set_trainable(TRAINABLE)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    batch = make_batch(
        processor, args_like["batch_size"], args_like["images"], args_like["target_words"], device
    )
    return Trainer(model, optimizer, batch, trainable, total, autocast_for(args_like["dtype"], device))


def autocast_for(dtype: str, device: str) -> Callable[[], contextlib.AbstractContextManager]:
    """``bf16``: ``torch.autocast(bfloat16)`` around the forward; ``fp32``: nothing."""
    if dtype != "bf16":
        return contextlib.nullcontext
    device_type = torch.device(device).type

    def autocast():
        return torch.autocast(device_type, dtype=torch.bfloat16)

    return autocast


def _settings(args) -> dict:
    return dict(
        device=args.device,
        batch_size=args.batch_size,
        images=args.images,
        target_words=args.target_words,
        dtype=args.dtype,
    )


# --------------------------------------------------------------------------- timing


def _cpu_flash_sdpa_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query, key, value)


def _cpu_flash_sdpa_backward_flops(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_backward_flop_count

    return sdpa_backward_flop_count(grad_out, query, key, value)


def count_step_flops(trainer: Trainer) -> int:
    """FLOPs of one training step (forward + backward) as executed, from ``FlopCounterMode``.

    torch's table has no entry for the CPU flash-attention kernels that SDPA uses on CPU; they get the same
    formula as the CUDA SDPA kernels, so attention is counted on every device. The optimizer's elementwise
    update is not counted (negligible: a few FLOPs per trainable parameter).
    """
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    custom = {}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        custom[aten._scaled_dot_product_flash_attention_for_cpu] = _cpu_flash_sdpa_flops
        custom[aten._scaled_dot_product_flash_attention_for_cpu_backward] = _cpu_flash_sdpa_backward_flops
    with FlopCounterMode(display=False, custom_mapping=custom) as counter:
        trainer.step()
    return counter.get_total_flops()


@dataclass
class StepResult:
    model: str
    base_s: float  # median step time
    sam_s: float
    samples_s: dict[str, list[float]] = field(repr=False)
    flops: dict[str, int]  # variant -> FLOPs per step (forward + backward)
    params: dict[str, tuple[int, int]]  # variant -> (trainable, total)
    loss: dict[str, float]
    others_cpu_pct: float | None = None

    def median(self, variant: str) -> float:
        return self.base_s if variant == "base" else self.sam_s

    def paired_ratio_iqr(self) -> tuple[float, float]:
        """Quartiles of the per-repeat throughput ratio SAM/base (each SAM step vs the base step next to it)."""
        return benchlib.quartiles([b / s for b, s in zip(self.samples_s["base"], self.samples_s["SAM"])])


def run_steps(args, log) -> list[StepResult]:
    results = []
    for model_name in args.models:
        log(f"timing {model_name}: loading both variants")
        trainers = {variant: build_trainer(model_name, variant, _settings(args)) for variant in VARIANTS}
        log(f"timing {model_name}: {args.warmup} warm-up + {args.steps} interleaved training steps per variant")
        with OtherCpuLoad() as others:
            times = time_interleaved({v: t.step for v, t in trainers.items()}, args.warmup, args.steps, args.device)
        log(f"timing {model_name}: counting FLOPs of one step per variant")
        flops = {v: count_step_flops(t) for v, t in trainers.items()}
        loss = {v: float(t.step()) for v, t in trainers.items()}
        results.append(
            StepResult(
                model_name,
                statistics.median(times["base"]),
                statistics.median(times["SAM"]),
                times,
                flops,
                {v: (t.trainable, t.total) for v, t in trainers.items()},
                loss,
                others.pct,
            )
        )
        del trainers
        gc.collect()
    return results


# --------------------------------------------------------------------------- matmul peak


@dataclass
class Peak:
    dtype: str
    flops_s: float  # best over sizes and repeats
    size: int  # the size that reached it
    by_size: dict[int, float]
    others_cpu_pct: float | None = None


def measure_peak(dtype: torch.dtype, sizes: list[int], repeats: int, device: str) -> Peak:
    """Best FLOP/s of ``torch.matmul`` on square ``(n, n) @ (n, n)`` matrices (2 n³ FLOPs a call)."""
    gen = torch.Generator().manual_seed(0)
    by_size = {}
    with OtherCpuLoad() as others:
        for n in sizes:
            a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
            b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
            torch.matmul(a, b)  # warm-up (thread pool, packing buffers)
            best = float("inf")
            for _ in range(repeats):
                synchronize(device)
                start = time.perf_counter()
                torch.matmul(a, b)
                synchronize(device)
                best = min(best, time.perf_counter() - start)
            by_size[n] = 2.0 * n**3 / best
            del a, b
    size = max(by_size, key=by_size.get)
    name = {torch.bfloat16: "bf16", torch.float32: "fp32"}[dtype]
    return Peak(name, by_size[size], size, by_size, others.pct)


# --------------------------------------------------------------------------- memory (runs in a fresh subprocess)


def memory_child(spec: dict) -> None:
    """Body of the memory subprocess: load one variant, train ``steps`` steps, print RSS after load and peak."""
    torch.set_num_threads(spec["threads"])
    device = spec["device"]
    trainer = build_trainer(spec["model"], spec["variant"], spec)

    def work():
        for _ in range(spec["steps"]):
            trainer.step()

    benchlib.print_child_result(CHILD_MARKER, spec, benchlib.measure_peak(device, work))


@dataclass
class MemoryResult(benchlib.MemoryStats):
    """Bytes per fresh process, one list entry per ``--memory-repeats``; the report uses medians."""

    model: str
    after_load: dict[str, list[int]]
    peak: dict[str, list[int]]
    method: str


def run_memory(args, log) -> list[MemoryResult]:
    results = []
    for model_name in args.models:
        result = MemoryResult(model_name, {v: [] for v in VARIANTS}, {v: [] for v in VARIANTS}, "")
        for repeat in range(args.memory_repeats):
            for variant in VARIANTS:
                log(f"memory {model_name}, {variant} (fresh process {repeat + 1}, {args.memory_steps} steps)")
                spec = dict(model=model_name, variant=variant, threads=torch.get_num_threads(), steps=args.memory_steps)
                measured = benchlib.memory_subprocess(__file__, CHILD_MARKER, {**spec, **_settings(args)})
                result.after_load[variant].append(measured["after_load_bytes"])
                result.peak[variant].append(measured["peak_bytes"])
                result.method = measured["method"]
        results.append(result)
    return results


# --------------------------------------------------------------------------- report


def fmt_params(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.1f} k"


def fmt_gflop(flops: float) -> str:
    g = flops / 1e9
    return f"{g:.2f}" if g >= 0.1 else f"{g:.4f}"


def _mfu(achieved: float, peak: float) -> str:
    """Achieved / peak; above 100 % the peak was under-measured (a busy CPU during the few timed matmuls, or
    kernels the square matmuls do not reach), so no share is claimed."""
    share = 100 * achieved / peak
    return f"{share:.2f}%" if share <= 100 else f"n/a (peak under-measured: {share:.0f}%)"


def print_report(args, machine, steps: list[StepResult], memory: list[MemoryResult], peaks: dict[str, Peak]):
    from rich.table import Table

    console = benchlib.console(width=130)
    mem = "GPU mem" if machine["device"].startswith("cuda") else "RSS"
    precision = "bf16 autocast" if args.dtype == "bf16" else "fp32"
    table = Table(
        title=(
            f"Training step (fwd + bwd + AdamW), SAM (bsg_adaptive) vs base (sam_mode=none): batch {args.batch_size} × "
            f"{args.images} images, {args.target_words}-word answers, {precision}"
        )
    )
    for name in ("model", "metric", "base", "SAM", "SAM/base", "noise"):
        table.add_column(name, justify="left" if name in ("model", "metric") else "right")
    by_model = {m.model: m for m in memory}
    for r in steps:
        q1, q3 = r.paired_ratio_iqr()
        flag = " *" if is_busy(r.others_cpu_pct) else ""
        (bt, btot), (st, stot) = r.params["base"], r.params["SAM"]
        table.add_row(r.model, "trainable params", fmt_params(bt), fmt_params(st), f"{st / bt:.2f}×", "")
        table.add_row(r.model, "total params", fmt_params(btot), fmt_params(stot), f"{stot / btot:.4f}×", "")
        table.add_row(
            r.model, "step time (median)", fmt_time(r.base_s), fmt_time(r.sam_s), f"{r.sam_s / r.base_s:.3f}×", ""
        )
        table.add_row(
            r.model,
            "samples/s",
            f"{args.batch_size / r.base_s:.2f}",
            f"{args.batch_size / r.sam_s:.2f}",
            f"{r.base_s / r.sam_s:.3f}×{flag}",
            f"{q1:.2f}..{q3:.2f}×",
        )
        m = by_model.get(r.model)
        if m is not None:
            for which, label in (("after_load", f"{mem} after load"), ("peak", f"peak {mem} (training)")):
                base, sam = m.median(which, "base"), m.median(which, "SAM")
                spread = f"±{m.peak_spread() / 2**21:.1f} MiB" if which == "peak" and args.memory_repeats > 1 else ""
                table.add_row(r.model, label, fmt_mem(base), fmt_mem(sam), f"{sam / base:.4f}×", spread)
        table.add_section()
    console.print(table)

    bf16, fp32 = peaks["bf16"], peaks["fp32"]
    util = Table(
        title=(
            f"Achieved FLOP/s of a training step vs this machine's matmul peak "
            f"(bf16 {bf16.flops_s / 1e9:.1f} GFLOP/s at n={bf16.size}, fp32 {fp32.flops_s / 1e9:.1f} GFLOP/s at "
            f"n={fp32.size})"
        )
    )
    for name in (
        "model", "variant", "GFLOP/step", "GFLOP/sample", "step time", "achieved GFLOP/s",
        "MFU (bf16 peak)", "of fp32 peak",
    ):
        util.add_column(name, justify="left" if name in ("model", "variant") else "right")
    for r in steps:
        flag = " *" if is_busy(r.others_cpu_pct) else ""
        for variant in VARIANTS:
            flops, t = r.flops[variant], r.median(variant)
            achieved = flops / t
            util.add_row(
                r.model,
                variant,
                fmt_gflop(flops),
                fmt_gflop(flops / args.batch_size),
                fmt_time(t),
                f"{achieved / 1e9:.2f}{flag}",
                _mfu(achieved, bf16.flops_s),
                _mfu(achieved, fp32.flops_s),
            )
        util.add_row(
            r.model,
            "SAM/base",
            f"{r.flops['SAM'] / r.flops['base']:.3f}×",
            "",
            f"{r.sam_s / r.base_s:.3f}×",
            f"{(r.flops['SAM'] / r.sam_s) / (r.flops['base'] / r.base_s):.3f}×",
            "",
            "",
            style="dim",
        )
        util.add_section()
    console.print(util)

    peak_rows = "; ".join(
        f"{p.dtype}: " + ", ".join(f"n={n} {v / 1e9:.1f}" for n, v in p.by_size.items()) + " GFLOP/s"
        + (" *" if is_busy(p.others_cpu_pct) else "")
        for p in (bf16, fp32)
    )
    notes = [
        benchlib.machine_note(machine),
        f"timing: medians of {args.steps} interleaved training steps per variant after {args.warmup} warm-up "
        "step(s); noise: quartiles of the per-repeat samples/s ratio (each SAM step vs the base step next to it)",
        f"peak: best of {args.peak_repeats} torch.matmul calls per size ({peak_rows})",
        "FLOPs: torch.utils.flop_counter.FlopCounterMode over one step (matmul, conv, attention; forward + the "
        "backward actually run: frozen layers only propagate input gradients, and only downstream of a trainable "
        "parameter); MFU = FLOPs per step / median step time / bf16 matmul peak; 'n/a (peak under-measured)' where "
        "that exceeds 100 %: the matmuls that set the peak ran slower than the step's own (another process on the "
        "CPU, or too few --peak-repeats); rerun on an idle machine",
    ]
    if memory:
        notes.append(
            f"memory: {memory[0].method}, whole process incl. weights; median of {args.memory_repeats} fresh "
            f"process(es) per variant, {args.memory_steps} training steps each (the first allocates AdamW's state)"
        )
    losses = ", ".join(f"{r.model} {r.loss['base']:.3f}/{r.loss['SAM']:.3f}" for r in steps)
    notes.append(f"last loss base/SAM (sanity): {losses}")
    console.print("\n".join(notes), highlight=False)
    busy = [r.others_cpu_pct for r in steps if is_busy(r.others_cpu_pct)]
    busy += [p.others_cpu_pct for p in peaks.values() if is_busy(p.others_cpu_pct)]
    benchlib.print_busy_warning(console, busy, "measurement(s)")


# --------------------------------------------------------------------------- Stage 1: the recipe before vs after

REPO = Path(__file__).resolve().parents[1]
STAGE1_CONFIG = REPO / "configs" / "train" / "mini_stage1.yaml"
STAGE1_VARIANTS = ("before", "after")
# Records per task of `make train-mini`'s Stage-1 mix (Makefile). A batch holds the tasks in these proportions
# (largest remainders; ties in this order), so its images per sample and answer lengths are those of the real mix.
STAGE1_MIX = {
    "caption": 1400, "vqa_options": 400, "group_caption": 300, "change_caption": 300, "mmlink_pair": 300,
    "bison": 300, "svo": 300, "nlvr2": 300,
}
SYNTH_IMAGE_SIZE = 224  # what `make train-mini` renders
OLD_QUERY_TOKENS = 32  # `mini` before the change (InstructBLIP's count); its EfficientNet tower had no colour bins


def stage1_model_name(name: str, config) -> str:
    """``mini`` in ``--models`` means the Stage-1 config's starting point (``mini-untrained``); others as given."""
    return config.model if name == "mini" else name


def apportion(weights: dict[str, int], total: int) -> dict[str, int]:
    """``total`` slots split in proportion to ``weights`` (largest remainders; ties in ``weights``' order)."""
    exact = {k: total * w / sum(weights.values()) for k, w in weights.items()}
    counts = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: counts[k] - exact[k])[: total - sum(counts.values())]:
        counts[k] += 1
    return {k: n for k, n in counts.items() if n}


def stage1_records(data_dir: Path, batch_size: int) -> list[dict]:
    """One batch of real world records, the Stage-1 mix: each task synthesized (train split, seed 0, as
    ``make train-mini``) into ``data_dir/<task>`` and read back as the trainer reads it."""
    from mmlink.data.synth import synthesize
    from mmlink.train.data import ConversationDataset

    records = []
    for task, n in apportion(STAGE1_MIX, batch_size).items():
        synthesize(task, data_dir / task, n=n, split="train", seed=0, image_size=SYNTH_IMAGE_SIZE, progress=False)
        records += ConversationDataset(data_dir / task / "data.jsonl").records[:n]
    return records


def old_recipe_config(config):
    """The config before the change: 32 query tokens and no colour histograms. A tower without colour bins
    (``tiny``'s ViT) varies only the query count: twice the current one, as 32 is to 16."""
    from mmlink.models.qformer import MmlinkQFormerConfig

    raw = config.to_dict()
    if "color_bins" in raw["vision_config"]:
        raw["vision_config"]["color_bins"] = 0  # hidden_size (1280 + bins³) and the cross-attention width follow
        raw["num_query_tokens"] = OLD_QUERY_TOKENS
    else:
        raw["num_query_tokens"] = 2 * config.num_query_tokens
    return MmlinkQFormerConfig.from_dict(raw)


def build_old_recipe(model, processor):
    """``model`` rebuilt with `old_recipe_config`: every weight whose shape still fits is copied; the query tokens
    and (when the vision width changed) the cross-attention's key/value start fresh (seed 0), as Stage 1 trains them
    from scratch anyway. Returns the model, its processor (its own number of image tokens) and the fresh names."""
    from mmlink.models.qformer import MmlinkQFormerForConditionalGeneration
    from mmlink.models.qformer.processing import MmlinkQFormerProcessor

    config = old_recipe_config(model.config)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        old = MmlinkQFormerForConditionalGeneration(config)
    own, state = old.state_dict(), model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    old.load_state_dict(fitting, strict=False)
    fresh = sorted(k for k in own if k not in fitting)
    unexpected = [k for k in fresh if k != "query_tokens" and ".crossattention.attention.key." not in k
                  and ".crossattention.attention.value." not in k]
    if unexpected:
        raise RuntimeError(f"old recipe: weights that should have been copied did not fit: {unexpected[:5]}")
    old_processor = MmlinkQFormerProcessor.from_config(
        config, processor.tokenizer, processor.qformer_tokenizer, processor.image_processor
    )
    return old.eval(), old_processor, fresh


def stage1_trainer(model, processor, cfg, records: list[dict], dtype: str, device: str) -> Trainer:
    """What `mmlink train` sets up for ``cfg``: fp32 weights, ``cfg.trainable`` prefixes, frozen modules in eval
    mode, AdamW with weight decay on matrices only, gradient clipping; the batch from `ConversationCollator`."""
    from mmlink.train.data import ConversationCollator
    from mmlink.train.loop import set_train_mode

    model = model.to(device).float()
    trainable, total = model.set_trainable(cfg.trainable_prefixes)
    set_train_mode(model, cfg.frozen_eval)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for _, p in named if p.ndim >= 2], "weight_decay": cfg.weight_decay},
            {"params": [p for _, p in named if p.ndim < 2], "weight_decay": 0.0},
        ],
        lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
    )
    batch = {k: v.to(device) for k, v in ConversationCollator(processor)(records).items()}
    return Trainer(model, optimizer, batch, trainable, total, autocast_for(dtype, device), cfg.max_grad_norm)


def vision_call(trainer: Trainer) -> Callable[[], None]:
    """One ``patch_features`` call of the frozen tower on the batch's images, as the step runs it (autocast)."""
    tower, pixels = trainer.model.vision_model, trainer.batch["pixel_values"]

    def call():
        with trainer.autocast():
            tower.patch_features(pixels)

    return call


@dataclass
class Stage1Result:
    model: str  # the preset as loaded
    step_s: dict[str, list[float]]  # variant -> seconds per training step, one per repeat
    vision_s: dict[str, list[float]]  # variant -> seconds per patch_features call on the batch's images
    flops: dict[str, int]
    params: dict[str, tuple[int, int]]  # variant -> (trainable, total)
    shape: dict[str, dict[str, int]]  # variant -> query_tokens, vision_width, images, image_tokens, sequence
    fresh: list[str]  # weights of `before` not copied from the assembled model
    loss: dict[str, float]
    others_cpu_pct: float | None = None

    def median(self, variant: str) -> float:
        return statistics.median(self.step_s[variant])

    def vision_median(self, variant: str) -> float:
        return statistics.median(self.vision_s[variant])

    def vision_share(self, variant: str) -> float:
        return self.vision_median(variant) / self.median(variant)

    def speedup(self) -> float:
        """samples/s after ÷ before."""
        return self.median("before") / self.median("after")

    def speedup_iqr(self) -> tuple[float, float]:
        """Quartiles of the per-repeat samples/s ratio after/before (each step vs the other variant's next to it)."""
        return benchlib.quartiles([b / a for b, a in zip(self.step_s["before"], self.step_s["after"])])


def run_stage1(args, log) -> tuple[list[Stage1Result], dict[str, int]]:
    """Both recipes of every model on one batch of the Stage-1 mix; also returns the batch's tasks."""
    from mmlink.models import load
    from mmlink.train.config import TrainConfig

    cfg = TrainConfig.from_file(args.stage1_config)
    results = []
    with tempfile.TemporaryDirectory(prefix="train_throughput-") as tmp:
        log(f"stage 1: synthesizing a batch of {args.batch_size} world records ({SYNTH_IMAGE_SIZE} px)")
        records = stage1_records(Path(tmp), args.batch_size)
        for model_name in args.models:
            name = stage1_model_name(model_name, cfg)
            log(f"timing {name}: loading it (after) and rebuilding it with the old recipe (before)")
            after, processor = load(name, **cfg.model_kwargs())
            before, before_processor, fresh = build_old_recipe(after, processor)
            trainers = {
                "before": stage1_trainer(before, before_processor, cfg, records, args.dtype, args.device),
                "after": stage1_trainer(after, processor, cfg, records, args.dtype, args.device),
            }
            del before, after
            fns = {v: t.step for v, t in trainers.items()}
            fns.update({f"{v} vision": vision_call(t) for v, t in trainers.items()})
            log(f"timing {name}: {args.warmup} warm-up + {args.steps} interleaved Stage-1 steps per variant")
            with OtherCpuLoad() as others:
                times = time_interleaved(fns, args.warmup, args.steps, args.device)
            log(f"timing {name}: counting FLOPs of one step per variant")
            flops = {v: count_step_flops(t) for v, t in trainers.items()}
            loss = {v: float(t.step()) for v, t in trainers.items()}
            shape = {}
            for v, t in trainers.items():
                config, ids = t.model.config, t.batch["input_ids"]
                shape[v] = dict(
                    query_tokens=config.num_query_tokens,
                    vision_width=config.vision_config.hidden_size,
                    images=int(t.batch["pixel_values"].shape[0]),
                    image_tokens=int((ids == config.image_token_index).sum()),
                    sequence=int(ids.shape[1]),
                )
            results.append(
                Stage1Result(
                    name,
                    {v: times[v] for v in STAGE1_VARIANTS},
                    {v: times[f"{v} vision"] for v in STAGE1_VARIANTS},
                    flops,
                    {v: (t.trainable, t.total) for v, t in trainers.items()},
                    shape,
                    fresh,
                    loss,
                    others.pct,
                )
            )
            del trainers, fns
            gc.collect()
    return results, dict(Counter(r.get("task", "?") for r in records))


def print_stage1_report(args, machine, results: list[Stage1Result], tasks: dict[str, int]) -> None:
    from rich.table import Table

    console = benchlib.console(width=130)
    precision = "bf16 autocast" if args.dtype == "bf16" else "fp32"
    mix = ", ".join(f"{n} {t}" for t, n in tasks.items())
    table = Table(
        title=(
            f"Stage-1 training step (fwd + bwd + clip + AdamW), old recipe (before) vs new (after): batch "
            f"{args.batch_size} ({mix}), {precision}"
        )
    )
    for name in ("model", "metric", "before", "after", "after/before", "noise"):
        table.add_column(name, justify="left" if name in ("model", "metric") else "right")
    for r in results:
        b, a = r.shape["before"], r.shape["after"]
        for key, label in (
            ("query_tokens", "query tokens / image"),
            ("vision_width", "vision features (Dv)"),
            ("image_tokens", f"image tokens ({a['images']} images)"),
            ("sequence", "LLM sequence (padded)"),
        ):
            table.add_row(r.model, label, str(b[key]), str(a[key]), f"{a[key] / b[key]:.3f}×", "")
        (bt, btot), (at, atot) = r.params["before"], r.params["after"]
        table.add_row(r.model, "trainable params", fmt_params(bt), fmt_params(at), f"{at / bt:.3f}×", "")
        table.add_row(r.model, "total params", fmt_params(btot), fmt_params(atot), f"{atot / btot:.4f}×", "")
        table.add_row(r.model, "GFLOP/step", fmt_gflop(r.flops["before"]), fmt_gflop(r.flops["after"]),
                      f"{r.flops['after'] / r.flops['before']:.3f}×", "")
        tb, ta = r.median("before"), r.median("after")
        table.add_row(r.model, "step time (median)", fmt_time(tb), fmt_time(ta), f"{ta / tb:.3f}×", "")
        q1, q3 = r.speedup_iqr()
        flag = " *" if is_busy(r.others_cpu_pct) else ""
        table.add_row(r.model, "samples/s", f"{args.batch_size / tb:.2f}", f"{args.batch_size / ta:.2f}",
                      f"{r.speedup():.3f}×{flag}", f"{q1:.2f}..{q3:.2f}×")
        vb, va = r.vision_median("before"), r.vision_median("after")
        table.add_row(r.model, "vision tower (median)", fmt_time(vb), fmt_time(va), f"{va / vb:.3f}×", "")
        table.add_row(r.model, "vision share of step", f"{100 * r.vision_share('before'):.1f}%",
                      f"{100 * r.vision_share('after'):.1f}%", "", "")
        table.add_section()
    console.print(table)

    lines = []
    for r in results:
        q1, q3 = r.speedup_iqr()
        flag = " *" if is_busy(r.others_cpu_pct) else ""
        lines.append(
            f"samples/s before -> after, {r.model}: {args.batch_size / r.median('before'):.2f} -> "
            f"{args.batch_size / r.median('after'):.2f} ({r.speedup():.3f}×, per-repeat {q1:.2f}..{q3:.2f}×){flag}"
        )
    for r in results:
        share = "; ".join(
            f"{v} {100 * r.vision_share(v):.1f}% ({fmt_time(r.vision_median(v))} of {fmt_time(r.median(v))})"
            for v in STAGE1_VARIANTS
        )
        lines.append(f"vision tower share of the step, {r.model} ({r.shape['after']['images']} images): {share}")
    console.print("\n".join(lines), highlight=False)

    notes = [
        benchlib.machine_note(machine),
        f"timing: medians of {args.steps} interleaved repeats per variant after {args.warmup} warm-up round(s); "
        "noise: quartiles of the per-repeat samples/s ratio after/before; vision tower: one patch_features call on "
        "the batch's images per repeat (autocast as in the step; frozen, so no backward runs through it)",
        f"recipe: {args.stage1_config} (its trainable prefixes, sam_mode, AdamW settings, max_grad_norm, "
        "frozen_eval); after = the preset as loaded, before = the same weights rebuilt with num_query_tokens=32 and "
        "vision_config.color_bins=0 (a tower without colour bins: twice the preset's query tokens)",
    ]
    for r in results:
        fresh = ", ".join(sorted({k.split(".crossattention.")[-1] if ".crossattention." in k else k for k in r.fresh}))
        notes.append(f"before, {r.model}: fresh (seed 0, not copied) {len(r.fresh)} tensors: {fresh}")
    notes.append("memory and the matmul peak are not measured in this mode (--recipes sam measures them)")
    losses = ", ".join(f"{r.model} {r.loss['before']:.3f}/{r.loss['after']:.3f}" for r in results)
    notes.append(f"last loss before/after (sanity): {losses}")
    console.print("\n".join(notes), highlight=False)
    benchlib.print_busy_warning(
        console, [r.others_cpu_pct for r in results if is_busy(r.others_cpu_pct)], "timing row(s)"
    )


def stage1_json(args, results: list[Stage1Result], tasks: dict[str, int]) -> dict:
    return {
        "stage1": {
            "config": str(args.stage1_config),
            "batch_tasks": tasks,
            "results": [
                {
                    **asdict(r),
                    "samples_per_s": {v: args.batch_size / r.median(v) for v in STAGE1_VARIANTS},
                    "throughput_ratio_after_before": r.speedup(),
                    "throughput_ratio_iqr": list(r.speedup_iqr()),
                    "vision_share": {v: r.vision_share(v) for v in STAGE1_VARIANTS},
                }
                for r in results
            ],
        }
    }


# --------------------------------------------------------------------------- CLI


def parse_args(argv=None) -> argparse.Namespace:
    parser = benchlib.arg_parser(DESCRIPTION)
    parser.add_argument(
        "--recipes", choices=("sam", "stage1"), default="sam",
        help="sam: base vs SAM (Stage 2's recipes, random-noise batch) with memory and MFU; stage1: Stage 1 of "
        "--stage1-config before vs after the recipe change (32 -> 16 query tokens, colour bins 0 -> 4) on a batch of "
        "world records; `mini` then means the config's model (mini-untrained)",
    )
    parser.add_argument(
        "--stage1-config", default=str(STAGE1_CONFIG), help="--recipes stage1: the training config whose recipe runs"
    )
    parser.add_argument(
        "--batch-size", type=int, default=None,
        help="samples per training step (default: 4; --recipes stage1: the config's batch_size)",
    )
    parser.add_argument("--images", type=int, default=2, help="images per sample")
    parser.add_argument("--target-words", type=int, default=20, help="words in each sample's answer (the labels)")
    parser.add_argument("--steps", type=int, default=7, help="timed interleaved training steps per variant")
    parser.add_argument("--warmup", type=int, default=1, help="untimed training steps per variant first")
    parser.add_argument(
        "--dtype", choices=("bf16", "fp32"), default=None,
        help="bf16: torch.autocast(bfloat16) around the forward (fp32 weights); fp32: no autocast (default: bf16; "
        "--recipes stage1: what the config's mixed_precision picks on this machine)",
    )
    parser.add_argument(
        "--peak-sizes", type=benchlib.int_list, default="1024,2048,3072", help="square matmul sizes for the peak FLOP/s"
    )
    parser.add_argument("--peak-repeats", type=int, default=5, help="timed matmuls per size (the best counts)")
    benchlib.add_run_args(parser)
    parser.add_argument("--memory-steps", type=int, default=2, help="training steps in each memory subprocess")
    benchlib.add_memory_args(parser, "per variant")
    args = parser.parse_args(argv)
    if args.recipes == "stage1":
        from mmlink.runtime import choose_mixed_precision
        from mmlink.train.config import TrainConfig

        try:
            cfg = TrainConfig.from_file(args.stage1_config)
        except (OSError, ValueError) as err:
            parser.error(f"--stage1-config: {err}")
        if args.batch_size is None:
            args.batch_size = cfg.batch_size
        if args.dtype is None:
            mixed = choose_mixed_precision(cfg.mixed_precision, args.device).mixed_precision
            if mixed not in ("bf16", "no"):
                parser.error(f"--stage1-config asks for {mixed} autocast; pass --dtype bf16 or fp32")
            args.dtype = "bf16" if mixed == "bf16" else "fp32"
    args.batch_size = 4 if args.batch_size is None else args.batch_size
    args.dtype = args.dtype or "bf16"
    if min(args.batch_size, args.images, args.target_words, args.steps, args.peak_repeats) < 1:
        parser.error("--batch-size, --images, --target-words, --steps and --peak-repeats must be >= 1")
    if min(args.memory_steps, args.memory_repeats) < 1 or args.warmup < 0:
        parser.error("--memory-steps and --memory-repeats must be >= 1, --warmup >= 0")
    if not args.peak_sizes or min(args.peak_sizes) < 1:
        parser.error("--peak-sizes needs positive sizes")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    log = benchlib.start(args, memory_child)  # a --memory-child process ends in here
    if args.recipes == "stage1":
        stage1, tasks = run_stage1(args, log)
        machine = benchlib.machine_info(args.device)
        log("done")
        print_stage1_report(args, machine, stage1, tasks)
        if args.out:
            benchlib.write_report(args, machine, stage1_json(args, stage1, tasks), [])
        return 0
    log(f"matmul peak: sizes {args.peak_sizes}, bf16 and fp32")
    peaks = {
        "bf16": measure_peak(torch.bfloat16, args.peak_sizes, args.peak_repeats, args.device),
        "fp32": measure_peak(torch.float32, args.peak_sizes, args.peak_repeats, args.device),
    }
    steps = run_steps(args, log)
    memory = [] if args.no_memory else run_memory(args, log)
    machine = benchlib.machine_info(args.device)
    log("done")
    print_report(args, machine, steps, memory, peaks)

    if args.out:
        results = {
            "peaks": {k: asdict(p) for k, p in peaks.items()},
            "steps": [
                {
                    **asdict(r),
                    "samples_per_s": {v: args.batch_size / r.median(v) for v in VARIANTS},
                    "throughput_ratio_sam_base": r.base_s / r.sam_s,
                    "achieved_flops_s": {v: r.flops[v] / r.median(v) for v in VARIANTS},
                    "mfu_bf16": {v: r.flops[v] / r.median(v) / peaks["bf16"].flops_s for v in VARIANTS},
                }
                for r in steps
            ],
        }
        benchlib.write_report(args, machine, results, memory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
