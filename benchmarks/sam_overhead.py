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
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the presets are offline; never let a benchmark touch the network
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

import torch  # noqa: E402  (after the environment above, which transformers reads on import)
from PIL import Image  # noqa: E402

VARIANTS = {"base": "none", "SAM": "bsg_adaptive"}  # label -> sam_mode
STAGES = ("img features", "prefill", "generate")
BUSY_PCT = 10.0  # flag a timing row when other processes used more than this share of the CPUs
# Table 4 of the SAM paper: InstructBLIP-Vicuna-7B vs SAM, 20-token answer, on GPU; the image count is not stated.
PAPER = {
    "time_s": {"base": 4.9, "SAM": 5.1, "overhead_pct": 4.1},
    "memory_gb": {"base": 17.12, "SAM": 17.13, "overhead_pct": 0.06},
}
CHILD_MARKER = "SAM_OVERHEAD_RESULT "  # prefixes the memory child's JSON line on stdout


# --------------------------------------------------------------------------- inputs and models


def make_images(n: int, size: int = 224, seed: int = 0) -> list[Image.Image]:
    """``n`` deterministic random-noise RGB images (the same for every variant and every process)."""
    gen = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (n, size, size, 3), generator=gen, dtype=torch.uint8)
    return [Image.fromarray(p.numpy(), "RGB") for p in pixels]


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


class OtherCpuLoad:
    """Share of the machine's CPU capacity used by *other* processes (and the hypervisor) during a block.

    Timings on a shared machine are only as good as the machine is quiet; with all cores busy, torch's threads
    wait for each other and a call can take several times longer. Linux only (``/proc/stat``); None elsewhere.
    """

    def __enter__(self):
        self.pct = None
        self._start = self._snapshot()
        return self

    def __exit__(self, *exc):
        end = self._snapshot()
        if self._start is not None and end is not None:
            wall = end[0] - self._start[0]
            busy = end[1] - self._start[1]  # all processes + steal, in seconds
            own = end[2] - self._start[2]
            self.pct = max(0.0, 100.0 * (busy - own) / (wall * (os.cpu_count() or 1)))
        return False

    @staticmethod
    def _snapshot():
        try:
            with open("/proc/stat") as f:
                ticks = [int(x) for x in f.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        user, nice, system, idle, iowait, irq, softirq, steal = ticks
        busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
        own = os.times()
        return time.perf_counter(), busy, own.user + own.system


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_interleaved(
    fns: dict[str, Callable[[], None]], warmup: int, repeats: int, device: str
) -> dict[str, list[float]]:
    """Seconds per call for each variant, measured in alternating order (A B, B A, A B, ...).

    Interleaving spreads slow drifts of the machine (other load, CPU clocks) evenly over both variants, and
    alternating who goes first cancels any advantage of running right after the other variant.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    gc.collect()
    for _ in range(repeats):
        for name in order:
            synchronize(device)
            start = time.perf_counter()
            fns[name]()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
        order.reverse()
    return times


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
        if len(pcts) < 2:
            return pcts[0], pcts[0]
        q1, _, q3 = statistics.quantiles(pcts, n=4)
        return q1, q3


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

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss() -> int:
    """Resident set size of this process in bytes (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def _vm_hwm() -> int:
    with open("/proc/self/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) * 1024


class PeakRSS:
    """Peak RSS of the whole process inside a ``with`` block.

    Preferred: reset the kernel's high-water mark (``echo 5 > /proc/self/clear_refs``) on entry and read
    ``VmHWM`` on exit — exact, no spike can be missed. Fallback: a thread sampling ``statm`` every millisecond.
    """

    def __init__(self, interval_s: float = 0.001):
        self.interval_s = interval_s
        self.peak = 0
        self.method = ""

    def __enter__(self):
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            if _vm_hwm() > current_rss() + (64 << 20):  # reset did not take effect
                raise OSError("VmHWM was not reset")
            self.method = "kernel VmHWM (reset after load)"
            return self
        except OSError:
            pass
        self.method = f"sampling thread ({self.interval_s * 1000:g} ms)"
        self._stop = threading.Event()
        self.peak = current_rss()

        def sample():
            while not self._stop.is_set():
                self.peak = max(self.peak, current_rss())
                time.sleep(self.interval_s)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.method.startswith("kernel"):
            self.peak = _vm_hwm()
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, current_rss())
        return False


def memory_child(spec: dict) -> None:
    """Body of the memory subprocess: load one variant, generate once, print RSS after load and peak."""
    torch.set_num_threads(spec["threads"])
    device = spec["device"]
    model, processor = load_variant(spec["model"], spec["variant"], device)
    batch = make_batch(processor, spec["images"], device)
    generate = stage_functions(model, batch, spec["new_tokens"], processor.pad_token_id)["generate"]
    gc.collect()
    if device.startswith("cuda"):
        synchronize(device)
        after_load, method = torch.cuda.memory_allocated(), "torch.cuda.max_memory_allocated"
        torch.cuda.reset_peak_memory_stats()
        with torch.inference_mode():
            generate()
        synchronize(device)
        peak = torch.cuda.max_memory_allocated()
    else:
        after_load = current_rss()
        with PeakRSS() as meter, torch.inference_mode():
            generate()
        peak, method = meter.peak, meter.method
    print(CHILD_MARKER + json.dumps({**spec, "after_load_bytes": after_load, "peak_bytes": peak, "method": method}))


@dataclass
class MemoryResult:
    """Bytes per fresh process, one list entry per ``--memory-repeats``; the report uses medians."""

    model: str
    images: int
    after_load: dict[str, list[int]]  # variant -> RSS (or CUDA memory) right after loading
    peak: dict[str, list[int]]  # variant -> peak during generate
    method: str

    def median(self, which: str, variant: str) -> float:
        return statistics.median(getattr(self, which)[variant])

    def peak_spread(self) -> float:
        """Largest max-min of the peak among identical processes (0 with one process per variant)."""
        return max(max(v) - min(v) for v in self.peak.values())


def _memory_subprocess(spec: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--memory-child", json.dumps(spec)],
        capture_output=True,
        text=True,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(CHILD_MARKER)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"memory subprocess failed ({spec}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len(CHILD_MARKER) :])


def run_memory(args, device: str, threads: int, log) -> list[MemoryResult]:
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
                        threads=threads,
                        device=device,
                    )
                    measured = _memory_subprocess(spec)
                    result.after_load[variant].append(measured["after_load_bytes"])
                    result.peak[variant].append(measured["peak_bytes"])
                    result.method = measured["method"]
            results.append(result)
    return results


# --------------------------------------------------------------------------- report


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            match = re.search(r"model name\s*:\s*(.+)", f.read())
        if match:
            return match.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str) -> dict:
    info = {
        "device": device,
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
    return info


def fmt_time(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.1f} ms"


def fmt_mem(nbytes: int) -> str:
    return f"{nbytes / 2**20:.1f} MiB"


def fmt_pct(pct: float, digits: int = 1) -> str:
    return f"{pct:+.{digits}f}%"


def print_report(args, machine, timings: list[TimeResult], memory: list[MemoryResult]) -> None:
    from rich.console import Console
    from rich.table import Table

    # Piped output (a log file, CI) would otherwise be wrapped at 80 columns.
    console = Console() if sys.stdout.isatty() else Console(width=120)
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
                    busy = t.others_cpu_pct is not None and t.others_cpu_pct > BUSY_PCT
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

    gpu = f", GPU {machine['gpu']}" if "gpu" in machine else ""
    notes = [
        f"machine: {machine['cpu']} ({machine['cpu_count']} logical CPUs){gpu}; device {machine['device']}; "
        f"torch {machine['torch']} with {machine['torch_threads']} threads; python {machine['python']}",
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
    busy_rows = [t for t in timings if t.others_cpu_pct is not None and t.others_cpu_pct > BUSY_PCT]
    if busy_rows:
        worst = max(t.others_cpu_pct for t in busy_rows)
        console.print(
            f"[bold]* {len(busy_rows)} timing row(s) ran while other processes used more than {BUSY_PCT:g}% of the "
            f"CPUs (up to {worst:.0f}%): those numbers are noisy; re-run on a quiet machine.[/bold]"
        )


# --------------------------------------------------------------------------- CLI


def _int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _str_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Measure SAM's inference overhead (the SAM paper's Table 4) on this machine: base model "
            "(sam_mode=none) vs full SAM (sam_mode=bsg_adaptive), side by side in one run. For each model preset "
            "and image count (all images in one sample, identical deterministic inputs) it times image features "
            "(vision tower + Q-Former, where SAM's W-former runs), one prefill forward pass and greedy generation "
            "of exactly --new-tokens tokens, with interleaved repeats after warm-up, and reports medians and "
            "SAM's overhead in %. Memory: for each (model, variant, image count) a fresh subprocess reports the "
            "whole process's memory after loading and its peak during generation (CPU: resident set size, "
            "weights included; CUDA: torch.cuda.max_memory_allocated)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--models", type=_str_list, default="tiny,mini", help="model presets, comma-separated")
    parser.add_argument("--images", type=_int_list, default="2,4", help="images per sample, comma-separated")
    parser.add_argument("--new-tokens", type=int, default=20, help="tokens generated per answer (paper: 20)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timing repeats for generation")
    parser.add_argument(
        "--fwd-repeats", type=int, default=11, help="interleaved timing repeats for img features and prefill"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls per variant and stage first")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device to run on"
    )
    parser.add_argument(
        "--memory-repeats",
        type=int,
        default=1,
        help="fresh processes per variant and row for memory (median; >1 also shows the peak's noise)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--out", default=None, help="also write all results (raw timings included) as JSON here")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)  # internal: one memory run
    args = parser.parse_args(argv)
    if min(args.repeats, args.fwd_repeats, args.memory_repeats, args.new_tokens) < 1 or args.warmup < 0:
        parser.error("--repeats, --fwd-repeats, --memory-repeats and --new-tokens must be >= 1, --warmup >= 0")
    if not args.images or min(args.images) < 1:
        parser.error("--images needs positive image counts")
    args.images = sorted(set(args.images))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the "Loading weights" bars would drown the report
    if args.memory_child is not None:
        memory_child(json.loads(args.memory_child))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    timings = run_timings(args, args.device, log)
    memory = [] if args.no_memory else run_memory(args, args.device, threads, log)
    machine = machine_info(args.device)
    log("done")
    print_report(args, machine, timings, memory)

    if args.out:
        report = {
            "machine": machine,
            "settings": {k: v for k, v in vars(args).items() if k not in ("memory_child", "out")},
            "paper_table4": PAPER,
            "timings": [
                {**asdict(t), "extra_s": t.extra_s, "overhead_pct": t.overhead_pct} for t in timings
            ],
            "memory": [asdict(m) for m in memory],
        }
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
        print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
