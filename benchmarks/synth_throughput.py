"""Throughput of the embedded world's renderer: scene graphs → images, per core and across cores.

The offline data of mmlink is rendered on the fly from scene graphs (`mmlink.data.world`), so the renderer must
keep up with training: the target is at least 200 images/s per core at 224 px for typical scenes (2-3 characters
plus 1-3 things). This script samples such scenes with `sample_scene` (the train split's random streams) and
reports

* how fast scene graphs are sampled (timed separately: rendering is what is measured below);
* ``render`` images/s in this process (one thread), at ``--size`` (224) and at each of ``--extra-sizes``;
* ``render_with_masks`` images/s (the same image plus per-object visibility masks);
* images/s with ``--workers`` processes (default: every core) and the scaling ratio against one process.

Every row shows two rates: images per second of wall-clock time, and images per CPU-second of the rendering
process(es). On a quiet machine they agree; on a shared one other processes take turns on the cores, which lowers
the wall-clock rate (and the scaling ratio) but hardly the per-CPU-second rate, so the per-core target is judged
on the latter. A row is marked ``*`` when other processes used more than 10 % of the CPUs while it ran (read from
/proc/stat on Linux).

Each measured run renders scenes it has not seen before, after a short warm-up on other scenes, so per-scene
caches cannot inflate the numbers (the (context, size) scenery cache and small thing-sprite cache are warm, as
they are in a long data-loading run). Worker processes are spawned, not forked, so they start with empty caches
instead of inheriting the parent's.

Usage: python benchmarks/synth_throughput.py [--n 1000] [--workers 2] [--extra-sizes 64,512]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import sys
import time
from typing import NamedTuple

# One thread per process: the target is per core, and a worker pool must not oversubscribe the cores.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import PIL  # noqa: E402

from mmlink.data.world.render import render, render_with_masks  # noqa: E402
from mmlink.data.world.scene import Scene, rng_for, sample_identity, sample_scene  # noqa: E402

TARGET_PER_CORE = 200.0  # images/s at 224 px
BUSY_SHARE = 0.10  # mark a measurement when other processes used more than this share of the CPUs


def sample_scenes(n: int, seed: int, start: int = 0, split: str = "train") -> list[Scene]:
    """``n`` typical scenes: 2-3 distinct characters of ``split`` and 1-3 context-fitting things."""
    scenes = []
    for i in range(start, start + n):
        rng = rng_for(split, seed, i)
        idents = []
        for _ in range(int(rng.integers(2, 4))):
            idents.append(sample_identity(rng, split, {ident.key for ident in idents}))
        scenes.append(sample_scene(rng, idents))
    return scenes


def _render_all(scenes: list[Scene], size: int, masks: bool = False) -> int:
    fn = render_with_masks if masks else render
    for scene in scenes:
        fn(scene, size)
    return len(scenes)


def _busy_cpu_seconds() -> float | None:
    """CPU seconds all processes have spent so far (Linux /proc/stat), or None where that cannot be read."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait
    except (OSError, ValueError, IndexError):
        return None


def _others_share(busy0: float | None, busy1: float | None, ours: float, elapsed: float) -> float | None:
    """Share of all CPUs that other processes used while we measured (they slow us down on a shared machine)."""
    if busy0 is None or busy1 is None or elapsed <= 0:
        return None
    return max(0.0, (busy1 - busy0 - ours) / (elapsed * (os.cpu_count() or 1)))


class Rate(NamedTuple):
    wall: float  # images per second of wall-clock time
    cpu: float  # images per CPU-second of the rendering processes: per core, even on a shared machine
    others: float | None  # share of all CPUs other processes used meanwhile


def time_single(scenes: list[Scene], warmup: list[Scene], size: int, masks: bool = False) -> Rate:
    """Rendering ``scenes`` in this process, after rendering ``warmup``."""
    _render_all(warmup, size, masks)
    busy0, cpu0, t0 = _busy_cpu_seconds(), time.process_time(), time.perf_counter()
    _render_all(scenes, size, masks)
    elapsed, ours = time.perf_counter() - t0, time.process_time() - cpu0
    n = len(scenes)
    return Rate(n / elapsed, n / max(ours, 1e-9), _others_share(busy0, _busy_cpu_seconds(), ours, elapsed))


def _worker_init(warmup: list[Scene], size: int) -> None:
    _render_all(warmup, size)


def _render_chunk(args: tuple[list[Scene], int]) -> tuple[int, float]:
    scenes, size = args
    cpu0 = time.process_time()
    n = _render_all(scenes, size)
    return n, time.process_time() - cpu0


def time_pool(scenes: list[Scene], warmup: list[Scene], size: int, workers: int, chunk: int = 25) -> Rate:
    """Rendering ``scenes`` with ``workers`` spawned processes (start-up and warm-up not timed)."""
    ctx = mp.get_context("spawn")
    chunks = [(scenes[i : i + chunk], size) for i in range(0, len(scenes), chunk)]
    with ctx.Pool(workers, initializer=_worker_init, initargs=(warmup, size)) as pool:
        # A first round of trivial tasks waits until every worker has started and warmed up.
        pool.map(_render_chunk, [([], size)] * workers, chunksize=1)
        busy0, cpu0, t0 = _busy_cpu_seconds(), time.process_time(), time.perf_counter()
        results = list(pool.imap_unordered(_render_chunk, chunks))
        elapsed = time.perf_counter() - t0
        worker_cpu = sum(cpu for _, cpu in results)
        ours = worker_cpu + time.process_time() - cpu0
        others = _others_share(busy0, _busy_cpu_seconds(), ours, elapsed)
    assert sum(n for n, _ in results) == len(scenes)
    return Rate(len(scenes) / elapsed, len(scenes) / max(worker_cpu, 1e-9), others)


def _note(others: float | None) -> str:
    if others is None:
        return ""
    flag = " *" if others > BUSY_SHARE else ""
    return f"  [others used {100 * others:.0f}% of the CPUs{flag}]"


def _parse_sizes(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Images/s of mmlink's scene renderer (single process, worker pool, several sizes).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--n", type=int, default=1000, help="scenes per measurement at --size")
    parser.add_argument("--size", type=int, default=224, help="image side in pixels for the main measurement")
    parser.add_argument("--extra-sizes", type=_parse_sizes, default="64,512",
                        help="comma-separated sizes also measured in one process ('' for none)")  # fmt: skip
    parser.add_argument("--extra-n", type=int, default=300, help="scenes per extra size (a quarter of it above 256 px)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes for the multiprocess measurement (0 skips it)")  # fmt: skip
    parser.add_argument("--warmup", type=int, default=30, help="scenes rendered before each measurement, not timed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-masks", action="store_true", help="skip the render_with_masks measurement")
    args = parser.parse_args(argv)
    if args.n < 1 or args.warmup < 0:
        parser.error("--n must be positive and --warmup non-negative")

    print(f"python {platform.python_version()}, pillow {PIL.__version__}, numpy {np.__version__}, "
          f"{os.cpu_count()} CPUs, {platform.machine()}")  # fmt: skip

    # Disjoint index ranges: every measurement renders scenes no earlier one has drawn.
    t0 = time.perf_counter()
    warmup = sample_scenes(args.warmup, args.seed, start=0)
    single = sample_scenes(args.n, args.seed, start=10_000)
    t_sample = time.perf_counter() - t0
    n_sampled = len(warmup) + len(single)
    n_obj = sum(len(s.objects) for s in single) / len(single)
    n_chr = sum(len(s.characters) for s in single) / len(single)
    print(f"sampling scene graphs: {n_sampled / t_sample:,.0f} scenes/s "
          f"({n_chr:.2f} characters, {n_obj - n_chr:.2f} things per scene on average)")  # fmt: skip

    busy_rows = []

    def report(label: str, rate: Rate, extra: str = "") -> None:
        busy_rows.append(rate.others is not None and rate.others > BUSY_SHARE)
        print(f"{label:<36}{rate.wall:10.1f}{rate.cpu:15.1f}  {extra}{_note(rate.others)}")

    print(f"{'':<36}{'images/s':>10}{'per CPU-sec':>15}")
    one = time_single(single, warmup, args.size)
    verdict = "ok" if one.cpu >= TARGET_PER_CORE else "BELOW"
    report(f"render {args.size}px, 1 process", one,
           f"{1000 / one.cpu:.2f} ms/image; target {TARGET_PER_CORE:.0f}/s per core: {verdict}")  # fmt: skip

    if not args.no_masks:
        masked = sample_scenes(args.n, args.seed, start=20_000)
        rate = time_single(masked, warmup, args.size, masks=True)
        report(f"render_with_masks {args.size}px, 1 process", rate, f"{1000 / rate.cpu:.2f} ms/image")

    if args.workers > 0:
        pooled = sample_scenes(args.n * args.workers, args.seed, start=30_000)
        many = time_pool(pooled, warmup, args.size, args.workers)
        report(f"render {args.size}px, {args.workers} processes", many,
               f"scaling x{many.wall / one.wall:.2f} of 1 process (ideal x{args.workers})")  # fmt: skip

    for k, size in enumerate(args.extra_sizes):
        n = args.extra_n if size <= 256 else max(1, args.extra_n // 4)
        scenes = sample_scenes(n, args.seed, start=40_000 + 10_000 * k)
        rate = time_single(scenes, warmup, size)
        report(f"render {size}px, 1 process", rate, f"{1000 / rate.cpu:.2f} ms/image")

    if any(busy_rows):
        print(f"* other processes used more than {100 * BUSY_SHARE:.0f}% of the CPUs during this row: its wall-clock "
              "rate (and the scaling) is lower than on a quiet machine; the per-CPU-second rate is less affected.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
