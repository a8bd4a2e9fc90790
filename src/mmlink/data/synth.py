"""The writer behind ``mmlink synth``: a task of the embedded world → a LLaVA-format multi-image dataset on disk.

Output layout (``out_dir``)::

    synth.json     the run's parameters (task, split, seed, n, image_size); a later run must match them (n may grow)
    data.jsonl     one record per line, appended (and fsynced) only after the record's images exist
    images/        <id>_<k>.png, the k-th image of record <id>, each written to a temp file then os.replace'd
    data.json      the same records as one JSON list, written atomically at the end
    report.json    task statistics (`mmlink.data.tasks.stats.task_report`), when that module exists
    preview.png    with ``preview=True``: a contact sheet of the first samples, their instruction and answer

Sample ``i`` is ``TASKS.get(task)(rng_for(split, seed, i, stream=task), split)``, its id
``f"{task}-{split}-s{seed}-{i:06d}"``. Every sample depends on its index only, so the output is the same whatever
the number of workers, and a run that was interrupted (Ctrl-C, SIGKILL, power loss) resumes where it stopped when
started again with the same arguments: complete records are kept, a torn last line is dropped, missing images of
kept records are re-rendered, and the result is byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import multiprocessing
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from mmlink.data.formats import (
    _json_default,
    dumps_record,
    fsync_dir,
    json_list_bytes,
    validate_record,
)
from mmlink.data.preview import make_preview
from mmlink.fileio import atomic_write

PARAMS_FILE = "synth.json"
DATA_JSONL = "data.jsonl"
DATA_JSON = "data.json"
REPORT_FILE = "report.json"
PREVIEW_FILE = "preview.png"
IMAGES_DIR = "images"
FORMAT_VERSION = 1
# Parameters a resumed run must share with the run that made the directory (n may differ).
FIXED_PARAMS = ("task", "split", "seed", "image_size")


def sample_id(task: str, split: str, seed: int, index: int) -> str:
    """The id of sample ``index`` (also the stem of its image files)."""
    return f"{task}-{split}-s{seed}-{index:06d}"


def _resolve_render() -> Callable[..., Any]:
    """The scene renderer (imported late: it is only needed for samples that do not carry their own pixels)."""
    from mmlink.data.world.render import render

    return render


def _to_pil(image: Any):
    from PIL import Image

    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    import numpy as np

    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise TypeError(f"sample image arrays must be uint8 (H, W, 3), got {array.dtype} {array.shape}")
    return Image.fromarray(array).convert("RGB")


def _png_bytes(image: Any) -> bytes:
    buf = io.BytesIO()
    _to_pil(image).save(buf, format="PNG", compress_level=6)  # no timestamps: same pixels → same bytes
    return buf.getvalue()


class _Producer:
    """Sample ``index`` → (index, record line, image paths, PNG bytes, sample without pixels). Picklable."""

    def __init__(self, task: str, fn: Callable, split: str, seed: int, image_size: int, render: Callable | None,
                 render_error: str = ""):
        self.task, self.fn, self.split, self.seed, self.image_size = task, fn, split, seed, image_size
        self.render, self.render_error = render, render_error

    def sample(self, index: int):
        from mmlink.data.world.scene import rng_for

        return self.fn(rng_for(self.split, self.seed, index, stream=self.task), self.split)

    def __call__(self, index: int) -> tuple[int, str, list[str], list[bytes], Any]:
        from mmlink.data.tasks import WorldSample
        from mmlink.data.world.scene import scene_to_dict

        sample = self.sample(index)
        if not isinstance(sample, WorldSample):
            raise TypeError(f"task {self.task!r} returned {type(sample).__name__}, expected a WorldSample")
        sid = sample_id(self.task, self.split, self.seed, index)
        meta = dict(sample.meta or {})
        if sample.images is not None:
            images = list(sample.images)
        else:
            if self.render is None:
                raise RuntimeError(f"task {self.task!r} sample {index} needs rendering, but {self.render_error}")
            images = [self.render(scene, self.image_size) for scene in sample.scenes]
            # The graphs the pixels were drawn from travel with the record, so an answer can be checked fact by fact
            # (mmlink.eval.facts). Samples that bring their own pixels keep theirs out: their graphs are approximate.
            if "scenes" in meta:
                raise ValueError(f"task {self.task!r} sample {index}: field 'meta.scenes' is reserved for the scene "
                                 "graphs the writer adds (a generator bug)")
            meta["scenes"] = [scene_to_dict(scene) for scene in sample.scenes]
        paths = [f"{IMAGES_DIR}/{sid}_{k}.png" for k in range(len(images))]
        record = {
            "id": sid,
            "task": self.task,
            "image": paths,
            "conversations": [dict(turn) for turn in sample.conversations],
            "meta": meta,
        }
        validate_record(record, index, source=f"task {self.task!r} (a generator bug)")
        line = dumps_record(record)
        pngs = [_png_bytes(im) for im in images]
        return index, line, paths, pngs, (replace(sample, images=None) if sample.images is not None else sample)


_WORKER: _Producer | None = None


def _init_worker(producer: _Producer) -> None:
    global _WORKER
    import signal

    import mmlink.data.tasks  # noqa: F401  (registers the built-in tasks in a spawned process)

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent stops the pool

    _WORKER = producer


def _work(index: int):
    assert _WORKER is not None
    return _WORKER(index)


def _produce(producer: _Producer, indices: range, workers: int) -> Iterator[tuple]:
    """Results in index order, from this process or a spawn-started pool (``imap`` keeps the order)."""
    if workers <= 1 or len(indices) <= 1:
        for index in indices:
            yield producer(index)
        return
    ctx = multiprocessing.get_context("spawn")  # fork after torch/tqdm threads exist can deadlock
    chunksize = max(1, min(8, len(indices) // (workers * 8)))
    with ctx.Pool(min(workers, len(indices)), initializer=_init_worker, initargs=(producer,)) as pool:
        yield from pool.imap(_work, indices, chunksize=chunksize)


# --------------------------------------------------------------------------------------------- on-disk state


@contextlib.contextmanager
def _dir_lock(out: Path) -> Iterator[None]:
    """An exclusive lock on the output directory for the whole run (released by the OS if the process dies)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no locking
        yield
        return
    fd = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"{out}: another mmlink synth is writing to this directory") from None
        yield
    finally:
        os.close(fd)


def _read_params(out: Path, params: dict[str, Any]) -> None:
    path = out / PARAMS_FILE
    if not path.exists():
        if (out / DATA_JSONL).exists():
            raise ValueError(f"{out}: holds {DATA_JSONL} but no {PARAMS_FILE}, so it was not made by mmlink synth; "
                             "use a new --out directory")
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(old, dict):
            raise ValueError("not an object")
    except ValueError as err:
        raise ValueError(f"{path}: unreadable ({err}); use a new --out directory") from None
    diffs = [k for k in FIXED_PARAMS if old.get(k) != params[k]]
    if diffs:
        made = ", ".join(f"{k}={old.get(k)!r}" for k in diffs)
        asked = ", ".join(f"{k}={params[k]!r}" for k in diffs)
        raise ValueError(f"{out} was made by mmlink synth with {made}, this run asks {asked}; resume or grow it with "
                         "the same task, split, seed and image size, or use a new --out directory")


def _write_params(out: Path, params: dict[str, Any], n: int) -> None:
    data = {"format": FORMAT_VERSION, **params, "n": n}
    text = (json.dumps(data, indent=2) + "\n").encode()
    path = out / PARAMS_FILE
    if not path.exists() or path.read_bytes() != text:
        atomic_write(path, text)


def _clean_temp(out: Path) -> None:
    """Remove temp files a killed run left behind (we hold the directory lock, so none is in use)."""
    for path in [*out.glob(".*.tmp"), *(out / IMAGES_DIR).glob("*.tmp")]:
        with contextlib.suppress(OSError):
            path.unlink()


def _recover(out: Path, task: str, split: str, seed: int) -> tuple[list[str], bool]:
    """The complete records of ``data.jsonl`` (as lines) and whether a torn tail was dropped (file rewritten)."""
    path = out / DATA_JSONL
    if not path.exists():
        return [], False
    data = path.read_bytes()
    segments = data.split(b"\n")
    complete, tail = segments[:-1], segments[-1]  # tail: bytes after the last newline (a torn write)
    lines: list[str] = []
    for k, seg in enumerate(complete):
        expected = sample_id(task, split, seed, k)
        try:
            line = seg.decode("utf-8")
            rec = json.loads(line)
            ok = isinstance(rec, dict) and rec.get("id") == expected and isinstance(rec.get("image"), list)
        except ValueError:
            ok, rec = False, None
        if ok:
            lines.append(line)
            continue
        if all(not s.strip(b"\x00 \t\r") for s in segments[k + 1 :]):
            break  # a torn write at the very end: drop it
        found = repr(rec.get("id")) if isinstance(rec, dict) else "no valid record"
        raise ValueError(f"{path}: line {k + 1} holds {found}, expected id {expected!r}; this file was not written "
                         "by this run of mmlink synth (or was edited); use a new --out directory")
    dropped = len(lines) != len(complete) or tail != b""
    if dropped:
        atomic_write(path, "".join(line + "\n" for line in lines).encode("utf-8"))
    return lines, dropped


def _write_image(path: Path, data: bytes) -> None:
    atomic_write(path, data)


def _repair(out: Path, lines: list[str], producer: _Producer) -> int:
    """Re-render the images of kept records whose files are missing; return how many records needed it."""
    repaired = 0
    for index, line in enumerate(lines):
        rec = json.loads(line)
        if all((out / p).is_file() for p in rec["image"]):
            continue
        _, new_line, paths, pngs, _ = producer(index)
        if new_line != line:
            raise ValueError(f"{out / DATA_JSONL}: record {index} (id {rec['id']!r}) lost image files, and this "
                             "version of the task generator makes a different record for it; use a new --out directory")
        for rel, png in zip(paths, pngs):
            _write_image(out / rel, png)
        repaired += 1
    if repaired:
        fsync_dir(out / IMAGES_DIR)
    return repaired


def _remove_orphans(out: Path, task: str, split: str, seed: int, n: int) -> None:
    """Images of indices >= n (written by a run that was killed before their record) do not belong to the set."""
    prefix = sample_id(task, split, seed, 0)[:-6]
    for path in (out / IMAGES_DIR).glob(f"{prefix}*.png"):
        stem = path.name[len(prefix) : -len(".png")]
        number = stem.rsplit("_", 1)[0]
        if number.isdigit() and int(number) >= n:
            with contextlib.suppress(OSError):
                path.unlink()


def _stats_available() -> bool:
    try:
        return importlib.util.find_spec("mmlink.data.tasks.stats") is not None
    except ImportError:  # pragma: no cover
        return False


# --------------------------------------------------------------------------------------------- synthesize


def synthesize(
    task: str,
    out_dir: str | os.PathLike[str],
    n: int,
    split: str,
    seed: int,
    workers: int = 1,
    image_size: int = 224,
    preview: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``n`` samples of ``task`` to ``out_dir`` (see the module docstring for the layout); resumable.

    With ``workers > 1`` a spawn-started process pool generates and renders samples while this process writes
    them in index order (the output is identical to ``workers=1``; call it under ``if __name__ == "__main__":``
    in a script). Returns a summary: the parameters, ``records`` (total), ``generated`` (this call),
    ``resumed_from`` (records found complete), ``repaired`` (kept records whose images were re-rendered),
    ``dropped_tail`` (a torn last line was removed), ``seconds``, ``samples_per_s`` and ``files``.
    """
    from mmlink.data.world.scene import SPLITS

    if not isinstance(task, str) or not task:
        raise ValueError(f"task must be a task name, got {task!r}")
    for name, value, low in (("n", n, 1), ("seed", seed, 0), ("workers", workers, 1), ("image_size", image_size, 8)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    from mmlink.data.tasks import TASKS

    fn = TASKS.get(task)  # ValueError listing the valid names
    try:
        render, render_error = _resolve_render(), ""
    except ImportError as err:
        render, render_error = None, f"the renderer is not available ({err})"
    producer = _Producer(task, fn, split, seed, image_size, render, render_error)

    t0 = time.perf_counter()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    params = {"task": task, "split": split, "seed": seed, "image_size": image_size}
    with _dir_lock(out):
        _read_params(out, params)
        (out / IMAGES_DIR).mkdir(exist_ok=True)
        _clean_temp(out)
        lines, dropped = _recover(out, task, split, seed)
        if len(lines) > n:
            raise ValueError(f"{out} already holds {len(lines)} records; --n {n} would drop some; ask for n >= "
                             f"{len(lines)} or use a new --out directory")
        _write_params(out, params, n)
        repaired = _repair(out, lines, producer)
        start = len(lines)
        want_report = _stats_available()
        samples: dict[int, Any] = {}

        from tqdm.auto import tqdm

        t_gen = time.perf_counter()
        bar = tqdm(total=n, initial=start, unit="sample", desc=f"synth {task}", disable=not progress,
                   file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
        results = _produce(producer, range(start, n), workers)
        with open(out / DATA_JSONL, "ab") as jsonl, bar, contextlib.closing(results):
            for index, line, paths, pngs, sample in results:
                assert index == len(lines), (index, len(lines))
                for rel, png in zip(paths, pngs):
                    _write_image(out / rel, png)
                fsync_dir(out / IMAGES_DIR)  # the renames are durable before the record that points at them
                jsonl.write((line + "\n").encode("utf-8"))
                jsonl.flush()
                os.fsync(jsonl.fileno())
                lines.append(line)
                if want_report:
                    samples[index] = sample
                bar.update(1)
        gen_seconds = time.perf_counter() - t_gen
        _remove_orphans(out, task, split, seed, n)
        atomic_write(out / DATA_JSON, json_list_bytes(lines))

        files: dict[str, str | None] = {
            "params": str(out / PARAMS_FILE),
            "data_jsonl": str(out / DATA_JSONL),
            "data_json": str(out / DATA_JSON),
            "images": str(out / IMAGES_DIR),
            "report": None,
            "preview": None,
        }
        report_error = None
        if want_report:
            try:
                from mmlink.data.tasks.stats import task_report

                all_samples = [samples[i] if i in samples else producer.sample(i) for i in range(n)]
                report = task_report(task, all_samples)
                text = json.dumps(report, indent=2, ensure_ascii=False, default=_json_default) + "\n"
                atomic_write(out / REPORT_FILE, text.encode("utf-8"))
                files["report"] = str(out / REPORT_FILE)
            except Exception as err:  # the data set is written; a broken report must not lose it
                report_error = f"{type(err).__name__}: {err}"
                print(f"mmlink synth: warning: {REPORT_FILE} not written: {report_error}", file=sys.stderr)
        if preview:
            records = [json.loads(line) for line in lines[:6]]
            make_preview(records, out, out / PREVIEW_FILE)
            files["preview"] = str(out / PREVIEW_FILE)

    generated = n - start
    return {
        "task": task,
        "split": split,
        "seed": seed,
        "n": n,
        "image_size": image_size,
        "workers": workers,
        "out_dir": str(out),
        "records": len(lines),
        "images": sum(len(json.loads(line)["image"]) for line in lines),
        "generated": generated,
        "resumed_from": start,
        "repaired": repaired,
        "dropped_tail": dropped,
        "seconds": round(time.perf_counter() - t0, 3),
        "samples_per_s": round(generated / gen_seconds, 2) if generated and gen_seconds > 0 else None,
        "report_error": report_error,
        "files": files,
    }


def format_summary(result: dict[str, Any]) -> str:
    """A short human summary of a `synthesize` result (what ``mmlink synth`` prints)."""
    rate = f", {result['samples_per_s']:g} samples/s" if result.get("samples_per_s") else ""
    resumed = (f" (resumed: {result['resumed_from']} kept, {result['generated']} new"
               + (f", {result['repaired']} re-rendered" if result.get("repaired") else "") + ")"
               if result["resumed_from"] else "")
    out = result["out_dir"]
    names = [DATA_JSONL, DATA_JSON, f"{IMAGES_DIR}/ ({result['images']} PNG)", PARAMS_FILE]
    names += [Path(p).name for p in (result["files"].get("report"), result["files"].get("preview")) if p]
    return (f"synth {result['task']}: {result['records']} records ({result['split']}, seed {result['seed']}, "
            f"{result['image_size']} px) in {out}{resumed}, {result['seconds']:g} s{rate}\n  " + ", ".join(names))


def describe_tasks(names: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """(name, the first sentence of the generator's docstring) for every registered task (importing the
    built-ins); a sentence that wraps over several docstring lines is joined, never cut."""
    import re

    from mmlink.data.tasks import TASKS

    out = []
    for name in names if names is not None else TASKS.names():
        paragraph = (TASKS.get(name).__doc__ or "").strip().split("\n\n")[0]
        text = " ".join(line.strip() for line in paragraph.splitlines())
        sentence = re.match(r"(.+?[.!?])(?:\s|$)", text)
        out.append((name, (sentence.group(1) if sentence else text) or "(no description)"))
    return out


__all__ = [
    "DATA_JSON", "DATA_JSONL", "IMAGES_DIR", "PARAMS_FILE", "PREVIEW_FILE", "REPORT_FILE", "describe_tasks",
    "format_summary", "sample_id", "synthesize",
]  # fmt: skip
