"""mmlink's cache directory, and files that are never half-written: every file mmlink writes that another run, a resume or a reader may open goes
through `atomic_write` (directories — checkpoints, the `mini` cache — are renamed into place whole by their writers).
Imports nothing from the rest of mmlink, so every layer can use it."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    """mmlink's cache: ``$MMLINK_CACHE``, else ``~/.cache/mmlink`` (assembled `mini` weights, judge responses,
    images extracted from saved data sets)."""
    return Path(os.environ.get("MMLINK_CACHE", Path.home() / ".cache" / "mmlink"))


def atomic_write(path: str | os.PathLike[str], data: bytes | str, *, fsync: bool = True) -> Path:
    """Write ``data`` (text is UTF-8) to a unique temporary file beside ``path``, then ``os.replace`` it into place.

    A crash leaves the old file or the new one, never a torn one; a unique temporary name lets processes that write
    the same file at once (ranks of a multi-process run, two evaluations sharing a cache) each finish cleanly.
    ``fsync=False`` for files that are cheap to write again (cached images)."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def store_by_content(data: bytes, directory: str | os.PathLike[str], suffix: str) -> Path:
    """``data`` written once into ``directory`` under its content hash (images kept inside data files: the same
    image read twice, or by several processes, is one file); the file's absolute path."""
    target = Path(directory) / (hashlib.sha256(data).hexdigest()[:32] + suffix)
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, data, fsync=False)  # a cache: written again if lost
    return target.resolve()


__all__ = ["atomic_write", "cache_dir", "store_by_content"]
