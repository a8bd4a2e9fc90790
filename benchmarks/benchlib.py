"""Helpers shared by the base-vs-SAM benchmarks (``sam_overhead.py``, ``train_throughput.py``).

Both scripts compare the same two variants side by side: interleaved timing, CPU-contention flags, peak memory
from a fresh subprocess per variant, a description of the machine and the same table formatting. The scripts
live next to this module, and Python puts a script's directory on ``sys.path``, so ``import benchlib`` works
whatever the current directory (also in the ``--memory-child`` re-invocations, which run the script by path).

Import this module before ``torch``/``transformers``: it sets the environment they read on import.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from typing import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the presets are offline; never let a benchmark touch the network
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

import torch  # noqa: E402  (after the environment above, which transformers reads on import)

# Interleaved timing, the contention meter and the memory meter are the package's (`mmlink bench` uses them too).
from mmlink.eval.bench import (  # noqa: E402,F401  (re-exported to the benchmark scripts)
    BUSY_PCT,
    OtherCpuLoad,
    make_images,
    measure_peak,
    synchronize,
    time_interleaved,
)

VARIANTS = {"base": "none", "SAM": "bsg_adaptive"}  # label -> sam_mode


def is_busy(others_cpu_pct: float | None) -> bool:
    """Whether a measurement gets the ``*`` flag: other processes used more than ``BUSY_PCT`` of the CPUs."""
    return others_cpu_pct is not None and others_cpu_pct > BUSY_PCT


def quartiles(values: list[float]) -> tuple[float, float]:
    """First and third quartile (the noise band of paired per-repeat values); the value itself when only one."""
    if len(values) < 2:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4)
    return q1, q3


# --------------------------------------------------------------------------- memory (runs in a fresh subprocess)


def print_child_result(marker: str, spec: dict, measured: dict) -> None:
    """The memory child's answer: one JSON line on stdout, prefixed with ``marker`` so that the parent can
    find it among whatever else the libraries print."""
    print(marker + json.dumps({**spec, **measured}))


def memory_subprocess(script: str, marker: str, spec: dict) -> dict:
    """Run ``script --memory-child SPEC`` in a fresh interpreter (nothing left behind by earlier runs can count)
    and return the JSON it printed after ``marker``."""
    proc = subprocess.run(
        [sys.executable, os.path.abspath(script), "--memory-child", json.dumps(spec)],
        capture_output=True,
        text=True,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(marker)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"memory subprocess failed ({spec}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len(marker) :])


class MemoryStats:
    """Methods for a memory-result dataclass with ``after_load`` / ``peak``: variant -> bytes per fresh process."""

    after_load: dict[str, list[int]]
    peak: dict[str, list[int]]

    def median(self, which: str, variant: str) -> float:
        return statistics.median(getattr(self, which)[variant])

    def peak_spread(self) -> float:
        """Largest max-min of the peak among identical processes (0 with one process per variant)."""
        return max(max(v) - min(v) for v in self.peak.values())


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


def machine_note(machine: dict) -> str:
    """The report's ``machine:`` line."""
    gpu = f", GPU {machine['gpu']}" if "gpu" in machine else ""
    return (
        f"machine: {machine['cpu']} ({machine['cpu_count']} logical CPUs){gpu}; device {machine['device']}; "
        f"torch {machine['torch']} with {machine['torch_threads']} threads; python {machine['python']}"
    )


def console(width: int):
    """A rich console; piped output (a log file, CI) gets ``width`` columns instead of being wrapped at 80."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=width)


def print_busy_warning(console, busy_pcts: list[float], what: str) -> None:
    """The closing ``*`` note: ``busy_pcts`` are the other-process CPU shares of the flagged ``what``
    (e.g. "timing row(s)"); nothing when empty."""
    if busy_pcts:
        console.print(
            f"[bold]* {len(busy_pcts)} {what} ran while other processes used more than {BUSY_PCT:g}% of the CPUs "
            f"(up to {max(busy_pcts):.0f}%): those numbers are noisy; re-run on a quiet machine.[/bold]"
        )


def fmt_time(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.1f} ms"


def fmt_mem(nbytes: float) -> str:
    return f"{nbytes / 2**20:.1f} MiB"


def write_report(args: argparse.Namespace, machine: dict, results: dict, memory: list) -> None:
    """``--out``: machine, settings (without the internal and output-only flags), the script's ``results``
    sections and the memory results, as JSON."""
    settings = {k: v for k, v in vars(args).items() if k not in ("memory_child", "out")}
    report = {"machine": machine, "settings": settings, **results, "memory": [asdict(m) for m in memory]}
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"results written to {args.out}")


# --------------------------------------------------------------------------- CLI


def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def str_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def add_run_args(parser: argparse.ArgumentParser) -> None:
    """``--threads`` and ``--device``."""
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device to run on"
    )


def add_memory_args(parser: argparse.ArgumentParser, repeats_per: str) -> None:
    """``--memory-repeats`` (fresh processes ``repeats_per``, e.g. "per variant"), ``--no-memory``, ``--out`` and
    the internal ``--memory-child``."""
    parser.add_argument(
        "--memory-repeats",
        type=int,
        default=1,
        help=f"fresh processes {repeats_per} for memory (median; >1 also shows the peak's noise)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--out", default=None, help="also write all results (raw timings included) as JSON here")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)  # internal: one memory run


def arg_parser(description: str) -> argparse.ArgumentParser:
    """A parser that shows the defaults in ``--help``, with the first option, ``--models``, already added."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--models", type=str_list, default="tiny,mini", help="model presets, comma-separated")
    return parser


def start(args: argparse.Namespace, memory_child: Callable[[dict], None]) -> Callable[[str], None]:
    """Common start of a benchmark's ``main``; returns a logger that prints timestamped progress to stderr
    (stdout is the report).

    With ``--memory-child SPEC`` this process is one fresh memory measurement: it runs ``memory_child(spec)``
    and exits with status 0 instead of returning.
    """
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the "Loading weights" bars would drown the report
    if args.memory_child is not None:
        memory_child(json.loads(args.memory_child))
        sys.exit(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    return log
