"""``mmlink bench``: inference time and peak memory per model variant, as in Table 4 of the SAM paper.

The paper compares InstructBLIP and SAM generating a 20-token answer: 4.9 s vs 5.1 s (+4.1 %) and 17.12 GB vs
17.13 GB (+0.06 %) of GPU memory. This module measures the same for one model (preset or checkpoint directory)
loaded once per variant (``base`` = ``sam_mode="none"``, ``sam`` = ``"bsg_adaptive"``, or any raw ``sam_mode``):
the variants share all weights, only the SAM stream differs. The first variant is the reference of the ratios.

What is measured, and how:

* **Time** — ``model.generate`` (prefill + greedy decoding, KV cache) on one sample holding N images, prompt
  ``"Image 1: <image>\\n...Describe the images."``, with deterministic noise images. The inputs are encoded once
  outside the timer: preprocessing is identical for every variant and would only add noise. Generation is forced
  to exactly ``new_tokens`` tokens (``min_new_tokens = max_new_tokens``), since an early end-of-sequence token
  would let one variant look faster by decoding less; the number of generated tokens is recorded per call and
  checked. After ``warmup`` untimed calls per variant the timed calls are *interleaved* (A B, B A, A B, ...): slow
  drifts of a shared machine (other processes, CPU clocks) then fall on every variant alike, and alternating
  who goes first cancels any advantage of running right after another variant. Mean and median are reported.
* **Peak memory** — one *fresh subprocess* per (variant, image count) loads the variant and generates once, so
  that neither the other variants nor earlier runs (allocator caches, freed-but-kept pages) can count. On CPU it
  is the whole process's peak resident set size during ``generate`` (weights included, comparable to the
  paper's GPU-memory figure): the kernel's high-water mark ``VmHWM`` is reset after loading so that the load
  peak cannot mask the inference peak; where the reset is not allowed a 1 ms sampling thread is the fallback.
  On CUDA it is ``torch.cuda.max_memory_allocated`` after resetting the peak stats.

CPU timings are noisy: other processes compete for the cores, so compare the ratios of one run rather than
absolute times across runs. The share of CPU used by other processes during each timing block is recorded.

dtype: ``auto`` (default) is bfloat16 only where the hardware computes it natively, else float32
(`mmlink.runtime.choose_dtype`); the choice, its reason and the CPU capability are in the result and the report.

Light to import: torch, transformers and the models are imported inside the functions.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable, Literal, Optional, Sequence

from mmlink.models import SAM_MODES
from mmlink.runtime import DEVICE_HELP, DTYPE_HELP, DTYPE_NAMES, choose_dtype, resolve_device
from mmlink.settings import add_command, add_flags, check_fields, from_args, setting

# Variant aliases of the command line; the raw sam_mode names are accepted as well.
ALIASES = {"base": "none", "sam": "bsg_adaptive"}
PAPER_TABLE4 = {
    "model": "InstructBLIP-Vicuna-7B vs SAM, GPU, 20-token answer",
    "time_s": {"InstructBLIP": 4.9, "SAM": 5.1},
    "gpu_memory_gb": {"InstructBLIP": 17.12, "SAM": 17.13},
}
PROMPT_END = "Describe the images."
CHILD_MARKER = "MMLINK_BENCH_MEMORY "  # prefixes the memory child's JSON line among whatever libraries print
BUSY_PCT = 10.0  # flag timings taken while other processes used more than this share of the CPUs

DESCRIPTION = """\
Measure inference time and peak memory per model variant (the SAM paper's Table 4: InstructBLIP vs SAM for a
20-token answer). Each variant is the same model with another sam_mode (base = none, sam = bsg_adaptive, or a raw
sam_mode: none, linear, bsg_mean, bsg_adaptive); the first variant is the reference of the ratios.

time:   greedy generation of exactly --new-tokens tokens (min_new_tokens = max_new_tokens, so an early
        end-of-sequence cannot make a variant look faster) on one sample with N deterministic images, after
        --warmup untimed calls, with --repeats interleaved calls per variant (A B, B A, ...); mean and median.
memory: a fresh subprocess per variant and image count loads the model and generates once; CPU: peak resident
        set size during generation (whole process, weights included; kernel VmHWM reset after loading);
        CUDA: torch.cuda.max_memory_allocated. --no-memory skips it.
dtype:  --dtype auto (default) = bfloat16 only where the hardware computes it natively (CUDA with bf16, CPU
        with AVX512-BF16 or AMX), else float32; the choice, its reason and the CPU capability are reported.

CPU timings are noisy on a busy machine: compare ratios within one run."""

EPILOG = """\
examples:
  mmlink bench --model tiny --variants base,sam --images 2,4 --no-memory
  mmlink bench --model mini --variants base,bsg_mean,sam --images 2,4,8 --repeats 5 --out bench.json
  mmlink bench --model ./ckpt --dtype bfloat16 --device cuda"""


# --------------------------------------------------------------------------- argument parsing


def parse_variants(spec: str | Sequence[str]) -> list[tuple[str, str]]:
    """``"base,sam"`` or ``["base", "linear"]`` → ``[(label, sam_mode), ...]``; ValueError on unknown names."""
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s).strip() for s in spec]
    names = [n for n in names if n]
    valid = [*ALIASES, *SAM_MODES]
    if not names:
        raise ValueError(f"--variants is empty; valid names: {', '.join(valid)}")
    out = []
    for name in names:
        if name not in valid:
            raise ValueError(f"--variants: unknown variant {name!r}; valid names: {', '.join(valid)}")
        if name in (label for label, _ in out):
            raise ValueError(f"--variants: {name!r} is given twice")
        out.append((name, ALIASES.get(name, name)))
    return out


def parse_images(spec: str | int | Sequence[int | str]) -> list[int]:
    """``"2,4"`` or ``[2, 4]`` → sorted distinct image counts; ValueError naming ``--images`` on bad values."""
    if isinstance(spec, int):
        spec = [spec]
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s).strip() for s in spec]
    counts = []
    for item in items:
        if not re.fullmatch(r"\d+", item) or int(item) < 1:
            raise ValueError(f"--images needs positive integers separated by commas, got {item!r}")
        counts.append(int(item))
    if not counts:
        raise ValueError("--images is empty; give image counts such as 2,4")
    return sorted(set(counts))


# --------------------------------------------------------------------------- inputs


def make_images(n: int, size: int = 224, seed: int = 0) -> list:
    """``n`` deterministic random-noise RGB images (the same in every variant and every process)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB") for _ in range(n)]


def make_prompt(n: int) -> str:
    return "".join(f"Image {i + 1}: <image>\n" for i in range(n)) + PROMPT_END


def make_batch(processor, n_images: int, device: str, dtype) -> dict:
    """One encoded sample with ``n_images`` images, on ``device``; pixel values in the model's dtype."""
    if n_images > processor.max_images:
        raise ValueError(f"--images: {n_images} images exceed the model's max_images={processor.max_images}")
    batch = processor(make_prompt(n_images), make_images(n_images), padding_side="left")
    batch = batch.to(device, dtype=dtype)  # BatchFeature casts the floating tensors only (pixel values)
    return batch


def load_variant(model: str, sam_mode: str, dtype_name: str, device: str):
    """``(model, processor)`` of one variant, in eval mode, cast to ``dtype_name`` (one of `DTYPE_NAMES`;
    ``auto`` is resolved for ``device``) and moved to ``device``."""
    from mmlink.models import family, load

    choice = choose_dtype(dtype_name, device)
    if family(model) == "qformer":
        m, processor = load(model, sam_mode=sam_mode)
    elif sam_mode == "none":  # a model without SAM: `base` is the model as it is
        m, processor = load(model)
    else:
        raise ValueError(f"--variants: {model} is a LLaVA-family model (no SAM layers); its only variant is base")
    return m.eval().to(device=device, dtype=choice.dtype), processor


def generate_fn(model, batch: dict, new_tokens: int, pad_token_id: int, counts: list[int]) -> Callable[[], None]:
    """Argument-free call of forced-length greedy generation; appends each call's generated-token count."""
    import torch

    def call() -> None:
        with torch.inference_mode():
            # min_new_tokens = max_new_tokens: an early EOS must not make one variant decode fewer tokens.
            ids = model.generate(
                **batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, num_beams=1,
                pad_token_id=pad_token_id,
            )
        counts.append(int(ids.shape[-1]))  # generate returns only the new tokens

    return call


# --------------------------------------------------------------------------- timing


def synchronize(device: str) -> None:
    # CUDA calls return before the kernels finish; without this the timer would only see the launch.
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


class OtherCpuLoad:
    """Share (%) of the machine's CPU capacity used by *other* processes during a ``with`` block (Linux; else None).

    A busy machine makes torch's threads wait for cores, so a timing is only as good as the machine was quiet.
    """

    pct: float | None = None

    def __enter__(self) -> OtherCpuLoad:
        self._start = self._snapshot()
        return self

    def __exit__(self, *exc) -> bool:
        end = self._snapshot()
        if self._start is not None and end is not None:
            wall, busy, own = (e - s for e, s in zip(end, self._start))
            if wall > 0:
                self.pct = max(0.0, 100.0 * (busy - own) / (wall * (os.cpu_count() or 1)))
        return False

    @staticmethod
    def _snapshot() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat") as f:
                ticks = [int(x) for x in f.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
        times = os.times()
        busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
        return time.perf_counter(), busy, times.user + times.system


def time_interleaved(fns: dict[str, Callable[[], None]], warmup: int, repeats: int, device: str) -> dict[str, list]:
    """Seconds per call of each function: ``warmup`` untimed calls each, then ``repeats`` rounds in alternating
    order (A B, B A, ...), so that drifts of the machine and the position in a round hit every variant alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    synchronize(device)
    gc.collect()  # garbage of the warm-up must not be collected inside a timed call
    times: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    for _ in range(repeats):
        for name in order:
            synchronize(device)
            start = time.perf_counter()
            fns[name]()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
        order.reverse()
    return times


# --------------------------------------------------------------------------- memory (in a fresh subprocess)


def current_rss() -> int:
    """Resident set size of this process in bytes (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _vm_hwm() -> int:
    with open("/proc/self/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) * 1024


class PeakRSS:
    """Peak resident set size of this process inside a ``with`` block.

    Preferred: reset the kernel's high-water mark (``5`` into ``/proc/self/clear_refs``) on entry and read
    ``VmHWM`` on exit, which misses no spike. Fallback: a thread sampling ``/proc/self/statm`` every millisecond.
    """

    def __init__(self, interval_s: float = 0.001):
        self.interval_s = interval_s
        self.peak = 0
        self.method = ""

    def __enter__(self) -> PeakRSS:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            if _vm_hwm() > current_rss() + (64 << 20):  # the write was accepted but the mark was not reset
                raise OSError("VmHWM was not reset")
            self.method = "peak RSS: kernel VmHWM, reset after loading"
            return self
        except OSError:
            pass
        self.method = f"peak RSS: sampling thread every {self.interval_s * 1000:g} ms"
        self._stop = threading.Event()
        self.peak = current_rss()

        def sample() -> None:
            while not self._stop.is_set():
                self.peak = max(self.peak, current_rss())
                time.sleep(self.interval_s)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> bool:
        if self.method.startswith("peak RSS: kernel"):
            self.peak = _vm_hwm()
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, current_rss())
        return False


def measure_peak(device: str, work: Callable[[], object]) -> dict:
    """Memory now (after loading) and the peak while ``work()`` runs; call it in a fresh process.

    CPU: whole-process RSS (weights included); CUDA: ``torch.cuda`` allocated memory.
    """
    gc.collect()  # garbage from loading must not count as "after load"
    if device.startswith("cuda"):
        import torch

        synchronize(device)
        after_load, method = torch.cuda.memory_allocated(), "torch.cuda.max_memory_allocated"
        torch.cuda.reset_peak_memory_stats()
        work()
        synchronize(device)
        peak = torch.cuda.max_memory_allocated()
    else:
        after_load = current_rss()
        with PeakRSS() as meter:
            work()
        peak, method = meter.peak, meter.method
    return {"after_load_bytes": after_load, "peak_bytes": peak, "method": method}


def memory_child(spec: dict) -> dict:
    """Body of the memory subprocess: load one variant, generate once → bytes after loading and peak, method."""
    import torch

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    device = spec["device"]
    model, processor = load_variant(spec["model"], spec["sam_mode"], spec["dtype"], device)
    batch = make_batch(processor, spec["images"], device, next(model.parameters()).dtype)
    counts: list[int] = []
    work = generate_fn(model, batch, spec["new_tokens"], processor.pad_token_id, counts)
    return {**measure_peak(device, work), "generated_tokens": counts[0]}


def measure_memory(
    model: str, sam_mode: str, images: int, new_tokens: int, dtype: str = "auto", device: str = "cpu",
    threads: int | None = None,
) -> dict:
    """Run `memory_child` in a fresh interpreter (``python -m mmlink.eval.bench --memory-child SPEC``), so that
    nothing left behind by earlier runs in this process can count; returns its result dict."""
    spec = dict(model=model, sam_mode=sam_mode, images=images, new_tokens=new_tokens, dtype=dtype, device=device,
                threads=threads)
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
           "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mmlink.eval.bench", "--memory-child", json.dumps(spec)],
        capture_output=True, text=True, env=env,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(CHILD_MARKER)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"memory subprocess failed (exit {proc.returncode}, {spec}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len(CHILD_MARKER):])


# --------------------------------------------------------------------------- the benchmark


@dataclass
class Row:
    """One (variant, image count) result."""

    variant: str
    sam_mode: str
    images: int
    mean_s: float
    median_s: float
    time_ratio: float  # mean vs the reference variant's mean at the same image count
    times_s: list[float]
    generated_tokens: list[int]  # per timed call; all equal to new_tokens
    others_cpu_pct: float | None = None  # CPU share of other processes while this image count was timed
    after_load_mib: float | None = None
    peak_mib: float | None = None
    memory_ratio: float | None = None  # peak vs the reference variant's peak


def bench(
    model: str,
    variants: str | Sequence[str] = "base,sam",
    images: str | int | Sequence[int] = (2, 4),
    new_tokens: int = 20,
    repeats: int = 5,
    warmup: int = 1,
    dtype: str = "auto",
    memory: bool = True,
    *,
    device: str | None = None,
    threads: int | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Time forced-length greedy generation per variant and image count (interleaved repeats), and measure peak
    memory in fresh subprocesses unless ``memory`` is false → a JSON-ready dict (see ``rows``)."""
    parsed = parse_variants(variants)
    counts = parse_images(images)
    for name, value, minimum in (("--new-tokens", new_tokens, 1), ("--repeats", repeats, 1), ("--warmup", warmup, 0)):
        if not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if dtype not in DTYPE_NAMES:
        raise ValueError(f"--dtype: unknown dtype {dtype!r}; valid: {', '.join(DTYPE_NAMES)}")
    log = log or (lambda message: None)

    import torch

    device = resolve_device(device)
    choice = choose_dtype(dtype, device)
    dtype = choice.name  # the variants and the memory subprocesses all use the resolved dtype
    log(f"dtype {choice.name}: {choice.reason}")
    if threads:
        torch.set_num_threads(threads)
    ref_label = parsed[0][0]

    log(f"loading {model}: {', '.join(f'{label} (sam_mode={mode})' for label, mode in parsed)}")
    loaded = {label: load_variant(model, mode, dtype, device) for label, mode in parsed}
    processor = loaded[ref_label][1]  # the processors of all variants are identical: one set of inputs for all
    torch_dtype = next(loaded[ref_label][0].parameters()).dtype

    rows: list[Row] = []
    for n in counts:
        batch = make_batch(processor, n, device, torch_dtype)
        token_counts: dict[str, list[int]] = {label: [] for label in loaded}
        fns = {
            label: generate_fn(m, batch, new_tokens, processor.pad_token_id, token_counts[label])
            for label, (m, _) in loaded.items()
        }
        log(f"timing {n} image(s): {warmup} warm-up + {repeats} interleaved call(s) per variant")
        with OtherCpuLoad() as others:
            times = time_interleaved(fns, warmup, repeats, device)
        for label, seen in token_counts.items():
            if any(c != new_tokens for c in seen):
                raise RuntimeError(
                    f"variant {label} generated {seen} tokens per call, not {new_tokens}: the model ignored "
                    "min_new_tokens, so the timings would not be comparable"
                )
        ref_mean = statistics.fmean(times[ref_label])
        for label, mode in parsed:
            mean = statistics.fmean(times[label])
            rows.append(Row(
                variant=label, sam_mode=mode, images=n, mean_s=mean, median_s=statistics.median(times[label]),
                time_ratio=mean / ref_mean, times_s=times[label], generated_tokens=token_counts[label][warmup:],
                others_cpu_pct=others.pct,
            ))
    del loaded, fns, batch
    gc.collect()

    memory_method = None
    if memory:
        for n in counts:
            peaks = {}
            for row in (r for r in rows if r.images == n):
                log(f"memory {n} image(s), {row.variant}: fresh subprocess")
                measured = measure_memory(model, row.sam_mode, n, new_tokens, dtype, device, torch.get_num_threads())
                row.after_load_mib = measured["after_load_bytes"] / 2**20
                row.peak_mib = peaks[row.variant] = measured["peak_bytes"] / 2**20
                memory_method = measured["method"]
            for row in (r for r in rows if r.images == n):
                row.memory_ratio = row.peak_mib / peaks[ref_label]

    info = {
        "model": str(model),
        "variants": [{"name": label, "sam_mode": mode} for label, mode in parsed],
        "reference": ref_label,
        "images": counts,
        "new_tokens": new_tokens,
        "repeats": repeats,
        "warmup": warmup,
        "dtype": dtype,
        "dtype_choice": choice.to_dict(),
        "cpu_capability": choice.capabilities.cpu_capability,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "memory_method": memory_method,
        "paper_table4": PAPER_TABLE4,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
    info["rows"] = [asdict(r) for r in rows]
    return info


# --------------------------------------------------------------------------- report


def _fmt_ratio(ratio: float | None) -> str:
    return "" if ratio is None else f"{ratio:.3f} ({100 * (ratio - 1):+.1f}%)"


def report_lines(result: dict) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, table cells and notes of the report (shared by the rich and the plain output)."""
    header = ["variant", "images", "mean time (s)", "median (s)", "time ratio", "peak memory (MiB)", "memory ratio"]
    cells = []
    for r in result["rows"]:
        busy = r["others_cpu_pct"] is not None and r["others_cpu_pct"] > BUSY_PCT
        cells.append([
            r["variant"] if r["variant"] == r["sam_mode"] else f"{r['variant']} ({r['sam_mode']})",
            str(r["images"]),
            f"{r['mean_s']:.4f}" + (" *" if busy else ""),
            f"{r['median_s']:.4f}",
            _fmt_ratio(r["time_ratio"]),
            "" if r["peak_mib"] is None else f"{r['peak_mib']:.1f}",
            _fmt_ratio(r["memory_ratio"]),
        ])
    gpu = f", GPU {result['gpu']}" if "gpu" in result else ""
    notes = [
        f"model {result['model']}, dtype {result['dtype']}, device {result['device']}{gpu}, "
        f"{result['torch_threads']} torch thread(s) on {result['cpu_count']} logical CPU(s)"
        + (f", CPU capability {result['cpu_capability']}" if result.get("cpu_capability") else ""),
        *([f"dtype: {result['dtype_choice']['reason']}"] if result.get("dtype_choice") else []),
        f"time: {result['new_tokens']} generated tokens per answer (forced), {result['warmup']} warm-up + "
        f"{result['repeats']} interleaved call(s) per variant; ratios vs {result['reference']}",
    ]
    if result["memory_method"]:
        notes.append(f"memory: fresh subprocess per row, {result['memory_method']} (whole process, weights included)")
    busy = [r["others_cpu_pct"] for r in result["rows"] if r["others_cpu_pct"] is not None
            and r["others_cpu_pct"] > BUSY_PCT]
    if busy:
        notes.append(f"* other processes used up to {max(busy):.0f}% of the CPUs while timing: those times are noisy")
    if not result["device"].startswith("cuda"):
        notes.append("note: CPU timings are noisy (other processes, clocks); compare ratios within one run")
    t, m = PAPER_TABLE4["time_s"], PAPER_TABLE4["gpu_memory_gb"]
    notes.append(
        f"paper Table 4 ({PAPER_TABLE4['model']}): time {t['InstructBLIP']} s vs {t['SAM']} s (+4.1%), "
        f"memory {m['InstructBLIP']} GB vs {m['SAM']} GB (+0.06%)"
    )
    return header, cells, notes


def print_report(result: dict, file=None) -> None:
    """The table (rich when available, else plain text) and the notes."""
    file = file or sys.stdout
    header, cells, notes = report_lines(result)
    title = f"Inference time and peak memory per variant, {result['new_tokens']}-token answer"
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
        print(title, file=file)
        for line in (header, *cells):
            print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))), file=file)
    else:
        table = Table(title=title)
        for i, name in enumerate(header):
            table.add_column(name, justify="left" if i == 0 else "right")
        previous = None
        for r, line in zip(result["rows"], cells):
            if previous is not None and r["images"] != previous:
                table.add_section()
            previous = r["images"]
            table.add_row(*line)
        console = Console(file=file, width=None if file.isatty() else 120)
        console.print(table)
    print("\n".join(notes), file=file)


# --------------------------------------------------------------------------- CLI


@dataclass
class BenchSettings:
    """``mmlink bench``'s settings (each a flag)."""

    model: str = setting(help="preset name (tiny, mini, mini-untrained, ...) or checkpoint directory")
    variants: tuple[str, ...] = setting(("base", "sam"), help="comma-separated: base (sam_mode none), sam "
                                        "(bsg_adaptive), none, linear, bsg_mean, bsg_adaptive; the first is the "
                                        "reference")
    images: tuple[int, ...] = setting((2, 4), help="images per sample, comma-separated positive integers")
    new_tokens: int = setting(20, min=1, help="tokens generated per answer, forced (as in the paper)")
    repeats: int = setting(5, min=1, help="timed calls per variant and image count, interleaved")
    warmup: int = setting(1, min=0, help="untimed calls per variant first")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = setting("auto", help=DTYPE_HELP)
    device: Optional[str] = setting(None, help=DEVICE_HELP)
    threads: Optional[int] = setting(None, min=1, help="torch intra-op threads (null: torch's choice)")
    memory: bool = setting(True, help="measure peak memory in a fresh subprocess per variant and image count")
    out: Optional[str] = setting(None, help="also write all numbers as JSON here")

    def __post_init__(self) -> None:
        check_fields(self)
        parse_variants(self.variants)  # names each unknown or repeated variant with the valid ones
        parse_images(self.images)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``bench`` subcommand on ``sub`` (``run`` is its ``func``)."""
    p = add_command(
        sub, "bench",
        help="inference time and peak memory per model variant (SAM paper, Table 4)",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    add_flags(p, BenchSettings, custom={"variants": {"metavar": "LIST"}, "images": {"metavar": "LIST"},
                                        "memory": {"action": argparse.BooleanOptionalAction},
                                        "out": {"metavar": "FILE"}})
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Execute ``mmlink bench``: progress on stderr, the report on stdout, JSON with ``--out``."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the weight-loading bars would drown the progress lines
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    settings = from_args(BenchSettings, args)
    result = bench(settings.model, settings.variants, settings.images, settings.new_tokens, settings.repeats,
                   settings.warmup, settings.dtype, settings.memory, device=settings.device, threads=settings.threads,
                   log=log)
    print_report(result)
    if settings.out:
        with open(settings.out, "w") as f:
            json.dump(result, f, indent=2)
        print(f"results written to {settings.out}")
    return 0


def _memory_child_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmlink.eval.bench")
    parser.add_argument("--memory-child", required=True, metavar="SPEC", help="JSON spec of one memory run")
    spec = json.loads(parser.parse_args(argv).memory_child)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    print(CHILD_MARKER + json.dumps({**spec, **memory_child(spec)}), flush=True)
    return 0


__all__ = [
    "ALIASES", "SAM_MODES", "add_parser", "bench", "make_images", "make_prompt", "measure_memory", "parse_images",
    "parse_variants", "print_report", "run",
]

if __name__ == "__main__":
    sys.exit(_memory_child_main(sys.argv[1:]))
