"""Inference overhead of SAM over the base Q-Former model (the paper's Table 4, on this machine).

SAM adds a second "W-former" stream that runs through the same Q-Former layers, batched over every image of the
batch. The paper reports that this costs little at inference: InstructBLIP 4.9 s / 17.12 GB vs SAM 5.1 s (+4.1 %)
/ 17.13 GB (+0.06 %) for a 20-token answer (GPU, InstructBLIP-Vicuna-7B). This script measures the same comparison
for mmlink's presets: base (``sam_mode="none"``) vs full SAM (``sam_mode="bsg_adaptive"``), side by side in one
run.

For every model preset and every image count (all images in one sample, the same deterministic inputs for both
variants) it times

* ``img features`` — ``model.get_image_features``: vision tower + Q-Former (+ W-former for SAM). The vision tower
  is identical in both variants, so the extra time here is the W-former stream: it shows where SAM's cost sits;
* ``prefill``      — one forward pass over the whole prompt (logits);
* ``generate``     — greedy decoding of exactly ``--new-tokens`` tokens (prefill included, as in the paper);

with interleaved repeats (base, SAM, SAM, base, ...) after warm-up, and reports medians, SAM's extra time and the
overhead in percent. A second table shows how SAM's extra time grows with the number of images.

Memory is measured in a fresh subprocess per (model, variant, image count), so that neither the other variant
nor earlier runs can leave allocations behind. On CPU it is the resident set size (RSS) of the whole process,
weights included (comparable to the paper's GPU-memory figure): the RSS right after loading, and the peak RSS
during ``generate`` — read from the kernel's high-water mark (``VmHWM``), which is reset after loading so that
the load peak cannot mask the inference peak (a 1 ms sampling thread is the fallback where the reset is not
allowed). On CUDA it is ``torch.cuda.memory_allocated`` / ``max_memory_allocated``.

The presets' SAM linears are zero-initialised, so SAM's outputs equal the base model's here; its compute is the
same as a trained SAM's, which is all that matters for timing.

Usage: python benchmarks/sam_overhead.py [--models tiny,mini] [--images 2,4] [--out results.json]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
from dataclasses import asdict, dataclass, field
from typing import Callable

# benchlib sits next to this script (on sys.path when it runs); it sets the environment before torch is imported.
import benchlib
import torch
from benchlib import VARIANTS, OtherCpuLoad, fmt_mem, fmt_time, make_images, time_interleaved

STAGES = ("img features", "prefill", "generate")
# Table 4 of the SAM paper: InstructBLIP-Vicuna-7B vs SAM, 20-token answer, on GPU; the image count is not stated.
PAPER = {
    "time_s": {"base": 4.9, "SAM": 5.1, "overhead_pct": 4.1},
    "memory_gb": {"base": 17.12, "SAM": 17.13, "overhead_pct": 0.06},
}
CHILD_MARKER = "SAM_OVERHEAD_RESULT "  # prefixes the memory child's JSON line on stdout
# The --help text (argparse re-flows it).
DESCRIPTION = """\
Measure SAM's inference overhead (the SAM paper's Table 4) on this machine: base model (sam_mode=none) vs full SAM
(sam_mode=bsg_adaptive), side by side in one run. For each model preset and image count (all images in one sample,
identical deterministic inputs) it times image features (vision tower + Q-Former, where SAM's W-former runs), one
prefill forward pass and greedy generation of exactly --new-tokens tokens, with interleaved repeats after warm-up,
and reports medians and SAM's overhead in %. Memory: for each (model, variant, image count) a fresh subprocess
reports the whole process's memory after loading and its peak during generation (CPU: resident set size, weights
included; CUDA: torch.cuda.max_memory_allocated).
"""


# --------------------------------------------------------------------------- inputs and models


def make_batch(processor, n_images: int, device: str) -> dict[str, torch.Tensor]:
    """One sample holding ``n_images`` images, each introduced by its own ``<image>`` placeholder."""
    prompt = "".join(f"Image {i + 1}: <image>\n" for i in range(n_images))
    prompt += "What do these images have in common? Answer in one sentence."
    batch = processor(prompt, make_images(n_images))
    return {k: v.to(device) for k, v in batch.items()}


def load_variant(model_name: str, variant: str, device: str):
    from mmlink.models import load

    model, processor = load(model_name, sam_mode=VARIANTS[variant])
    return model.eval().to(device), processor


def stage_functions(model, batch, new_tokens: int, pad_token_id: int) -> dict[str, Callable[[], None]]:
    """The three timed stages as argument-free callables (run them under ``torch.inference_mode``)."""
    n_images = batch["pixel_values"].shape[0]

    def image_features():
        image_to_sample = model.image_to_sample(batch["input_ids"], n_images)
        model.get_image_features(
            batch["pixel_values"], batch["qformer_input_ids"], batch["qformer_attention_mask"], image_to_sample
        )

    def prefill():
        model(**batch)

    def generate():
        # min_new_tokens = max_new_tokens: an early EOS must not make one variant decode fewer tokens.
        ids = model.generate(
            **batch,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=pad_token_id,
        )
        assert ids.shape[-1] == new_tokens, f"generated {ids.shape[-1]} tokens, expected {new_tokens}"

    return {"img features": image_features, "prefill": prefill, "generate": generate}


# --------------------------------------------------------------------------- timing


@dataclass
class TimeResult:
    model: str
    images: int
    stage: str
    base_s: float  # median
    sam_s: float  # median
    samples_s: dict[str, list[float]] = field(repr=False)
    others_cpu_pct: float | None = None  # CPU share of other processes while this row was measured

    @property
    def extra_s(self) -> float:
        return self.sam_s - self.base_s

    @property
    def overhead_pct(self) -> float:
        return 100.0 * self.extra_s / self.base_s

    def paired_overhead_iqr(self) -> tuple[float, float]:
        """Quartiles of the per-repeat overhead (each SAM call vs the base call next to it): the noise band."""
        pcts = [100.0 * (s / b - 1) for b, s in zip(self.samples_s["base"], self.samples_s["SAM"])]
        return benchlib.quartiles(pcts)


def run_timings(args, device: str, log) -> list[TimeResult]:
    results = []
    for model_name in args.models:
        log(f"timing {model_name}: loading both variants")
        loaded = {variant: load_variant(model_name, variant, device) for variant in VARIANTS}
        processor = loaded["base"][1]  # both processors are identical: the same inputs go to both models
        for n_images in args.images:
            batch = make_batch(processor, n_images, device)
            fns = {
                variant: stage_functions(model, batch, args.new_tokens, processor.pad_token_id)
                for variant, (model, _) in loaded.items()
            }
            for stage in STAGES:
                repeats = args.repeats if stage == "generate" else args.fwd_repeats
                log(f"timing {model_name}, {n_images} images, {stage} ({repeats} interleaved repeats)")
                with torch.inference_mode(), OtherCpuLoad() as others:
                    times = time_interleaved(
                        {variant: fns[variant][stage] for variant in VARIANTS}, args.warmup, repeats, device
                    )
                results.append(
                    TimeResult(
                        model_name,
                        n_images,
                        stage,
                        statistics.median(times["base"]),
                        statistics.median(times["SAM"]),
                        times,
                        others.pct,
                    )
                )
        del loaded, fns, batch
        gc.collect()
    return results


# --------------------------------------------------------------------------- memory (runs in a fresh subprocess)


def memory_child(spec: dict) -> None:
    """Body of the memory subprocess: load one variant, generate once, print RSS after load and peak."""
    torch.set_num_threads(spec["threads"])
    device = spec["device"]
    model, processor = load_variant(spec["model"], spec["variant"], device)
    batch = make_batch(processor, spec["images"], device)
    generate = stage_functions(model, batch, spec["new_tokens"], processor.pad_token_id)["generate"]

    def work():
        with torch.inference_mode():
            generate()

    benchlib.print_child_result(CHILD_MARKER, spec, benchlib.measure_peak(device, work))


@dataclass
class MemoryResult(benchlib.MemoryStats):
    """Bytes per fresh process, one list entry per ``--memory-repeats``; the report uses medians."""

    model: str
    images: int
    after_load: dict[str, list[int]]  # variant -> RSS (or CUDA memory) right after loading
    peak: dict[str, list[int]]  # variant -> peak during generate
    method: str


def run_memory(args, device: str, log) -> list[MemoryResult]:
    results = []
    for model_name in args.models:
        for n_images in args.images:
            result = MemoryResult(model_name, n_images, {v: [] for v in VARIANTS}, {v: [] for v in VARIANTS}, "")
            for repeat in range(args.memory_repeats):
                for variant in VARIANTS:
                    log(f"memory {model_name}, {n_images} images, {variant} (fresh process {repeat + 1})")
                    spec = dict(
                        model=model_name,
                        variant=variant,
                        images=n_images,
                        new_tokens=args.new_tokens,
                        threads=torch.get_num_threads(),
                        device=device,
                    )
                    measured = benchlib.memory_subprocess(__file__, CHILD_MARKER, spec)
                    result.after_load[variant].append(measured["after_load_bytes"])
                    result.peak[variant].append(measured["peak_bytes"])
                    result.method = measured["method"]
            results.append(result)
    return results


# --------------------------------------------------------------------------- report


def fmt_pct(pct: float, digits: int = 1) -> str:
    return f"{pct:+.{digits}f}%"


def print_report(args, machine, timings: list[TimeResult], memory: list[MemoryResult]) -> None:
    from rich.table import Table

    console = benchlib.console(width=120)
    mem = "GPU mem" if machine["device"].startswith("cuda") else "RSS"
    table = Table(title=f"SAM (bsg_adaptive) vs base (sam_mode=none), {args.new_tokens}-token answer")
    for name in ("model", "images", "stage", "base", "SAM", "SAM extra", "overhead %", "noise"):
        table.add_column(name, justify="left" if name in ("model", "stage") else "right")
    by_config = {(m.model, m.images): m for m in memory}
    for model_name in args.models:
        for n_images in args.images:
            for t in timings:
                if (t.model, t.images) == (model_name, n_images):
                    stage = f"generate {args.new_tokens} tok" if t.stage == "generate" else t.stage
                    q1, q3 = t.paired_overhead_iqr()
                    busy = benchlib.is_busy(t.others_cpu_pct)
                    table.add_row(
                        t.model,
                        str(t.images),
                        stage,
                        fmt_time(t.base_s),
                        fmt_time(t.sam_s),
                        f"{t.extra_s * 1000:+.1f} ms",
                        fmt_pct(t.overhead_pct) + (" *" if busy else ""),
                        f"{q1:+.0f}..{q3:+.0f}%",
                    )
            m = by_config.get((model_name, n_images))
            if m is not None:
                for which, stage in (("after_load", f"{mem} after load"), ("peak", f"peak {mem} (generate)")):
                    base, sam = m.median(which, "base"), m.median(which, "SAM")
                    spread = ""
                    if which == "peak" and args.memory_repeats > 1:
                        spread = f"±{m.peak_spread() / 2**21:.1f} MiB"
                    table.add_row(
                        m.model,
                        str(m.images),
                        stage,
                        fmt_mem(base),
                        fmt_mem(sam),
                        f"{(sam - base) / 2**20:+.1f} MiB",
                        fmt_pct(100.0 * (sam - base) / base, 2),
                        spread,
                    )
            table.add_section()
    paper_t, paper_m = PAPER["time_s"], PAPER["memory_gb"]
    table.add_row(
        "paper T4", "?", "generate 20 tok", f"{paper_t['base']} s", f"{paper_t['SAM']} s", "+200 ms",
        fmt_pct(paper_t["overhead_pct"]), "",
    )
    table.add_row(
        "paper T4", "?", "GPU memory", f"{paper_m['base']} GB", f"{paper_m['SAM']} GB", "+10 MB",
        fmt_pct(paper_m["overhead_pct"], 2), "",
    )
    console.print(table)

    # How SAM's extra time grows with the number of images (one column per image count).
    scaling = Table(title="SAM extra time vs number of images  (extra ms, and per image)")
    scaling.add_column("model")
    scaling.add_column("stage")
    for n_images in args.images:
        scaling.add_column(f"{n_images} images", justify="right")
    if len(args.images) > 1:
        scaling.add_column(f"slope {args.images[0]}→{args.images[-1]}", justify="right")
    for model_name in args.models:
        for stage in STAGES:
            extra = {t.images: t.extra_s * 1000 for t in timings if (t.model, t.stage) == (model_name, stage)}
            if not extra:
                continue
            cells = [f"{extra[n]:+.1f} ms ({extra[n] / n:+.2f}/img)" for n in args.images]
            if len(args.images) > 1:
                lo, hi = args.images[0], args.images[-1]
                cells.append(f"{(extra[hi] - extra[lo]) / (hi - lo):+.2f} ms/img")
            scaling.add_row(model_name, stage, *cells)
    console.print(scaling)

    notes = [
        benchlib.machine_note(machine),
        f"timing: medians of {args.repeats} (generate) / {args.fwd_repeats} (img features, prefill) interleaved "
        f"repeats after {args.warmup} warm-up call(s) per variant; noise: quartiles of the per-repeat overhead "
        "(each SAM call vs the base call next to it)",
    ]
    if memory:
        notes.append(
            f"memory: {memory[0].method}, whole process incl. weights; median of {args.memory_repeats} fresh "
            "process(es) per variant and row"
            + (" (noise: half the range among identical processes)" if args.memory_repeats > 1 else "")
        )
    notes.append(
        "paper T4: InstructBLIP-Vicuna-7B vs SAM on GPU, where the 7B LLM dominates the run time, so the same "
        "extra Q-Former work is a smaller share there; the 'img features' rows show SAM's cost itself."
    )
    console.print("\n".join(notes), highlight=False)
    busy = [t.others_cpu_pct for t in timings if benchlib.is_busy(t.others_cpu_pct)]
    benchlib.print_busy_warning(console, busy, "timing row(s)")


# --------------------------------------------------------------------------- CLI


def parse_args(argv=None) -> argparse.Namespace:
    parser = benchlib.arg_parser(DESCRIPTION)
    parser.add_argument("--images", type=benchlib.int_list, default="2,4", help="images per sample, comma-separated")
    parser.add_argument("--new-tokens", type=int, default=20, help="tokens generated per answer (paper: 20)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timing repeats for generation")
    parser.add_argument(
        "--fwd-repeats", type=int, default=11, help="interleaved timing repeats for img features and prefill"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls per variant and stage first")
    benchlib.add_run_args(parser)
    benchlib.add_memory_args(parser, "per variant and row")
    args = parser.parse_args(argv)
    if min(args.repeats, args.fwd_repeats, args.memory_repeats, args.new_tokens) < 1 or args.warmup < 0:
        parser.error("--repeats, --fwd-repeats, --memory-repeats and --new-tokens must be >= 1, --warmup >= 0")
    if not args.images or min(args.images) < 1:
        parser.error("--images needs positive image counts")
    args.images = sorted(set(args.images))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    log = benchlib.start(args, memory_child)  # a --memory-child process ends in here
    timings = run_timings(args, args.device, log)
    memory = [] if args.no_memory else run_memory(args, args.device, log)
    machine = benchlib.machine_info(args.device)
    log("done")
    print_report(args, machine, timings, memory)

    if args.out:
        results = {
            "paper_table4": PAPER,
            "timings": [
                {**asdict(t), "extra_s": t.extra_s, "overhead_pct": t.overhead_pct} for t in timings
            ],
        }
        benchlib.write_report(args, machine, results, memory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
