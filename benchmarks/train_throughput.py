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

Usage: python benchmarks/train_throughput.py [--models tiny,mini] [--batch-size 4] [--images 2] [--out r.json]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
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
torch.matmul peak (MFU).
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

    def step(self) -> torch.Tensor:
        with self.autocast():
            loss = self.model(**self.batch).loss
        loss.backward()
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
    if args_like["dtype"] == "bf16":
        device_type = torch.device(device).type

        def autocast():
            return torch.autocast(device_type, dtype=torch.bfloat16)

    else:
        autocast = contextlib.nullcontext
    return Trainer(model, optimizer, batch, trainable, total, autocast)


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
                f"{100 * achieved / bf16.flops_s:.2f}%",
                f"{100 * achieved / fp32.flops_s:.2f}%",
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
        "parameter); MFU = FLOPs per step / median step time / bf16 matmul peak",
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


# --------------------------------------------------------------------------- CLI


def parse_args(argv=None) -> argparse.Namespace:
    parser = benchlib.arg_parser(DESCRIPTION)
    parser.add_argument("--batch-size", type=int, default=4, help="samples per training step")
    parser.add_argument("--images", type=int, default=2, help="images per sample")
    parser.add_argument("--target-words", type=int, default=20, help="words in each sample's answer (the labels)")
    parser.add_argument("--steps", type=int, default=7, help="timed interleaved training steps per variant")
    parser.add_argument("--warmup", type=int, default=1, help="untimed training steps per variant first")
    parser.add_argument(
        "--dtype", choices=("bf16", "fp32"), default="bf16",
        help="bf16: torch.autocast(bfloat16) around the forward (fp32 weights); fp32: no autocast",
    )
    parser.add_argument(
        "--peak-sizes", type=benchlib.int_list, default="1024,2048,3072", help="square matmul sizes for the peak FLOP/s"
    )
    parser.add_argument("--peak-repeats", type=int, default=5, help="timed matmuls per size (the best counts)")
    benchlib.add_run_args(parser)
    parser.add_argument("--memory-steps", type=int, default=2, help="training steps in each memory subprocess")
    benchlib.add_memory_args(parser, "per variant")
    args = parser.parse_args(argv)
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
