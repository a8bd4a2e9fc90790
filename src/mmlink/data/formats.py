"""LLaVA-format multi-image datasets: read, validate, write, and hand over to 🤗 ``datasets``.

A record (one line of a ``.jsonl`` file, or one element of a ``.json`` list)::

    {"id": "cad-train-s0-000012",
     "image": ["images/cad-train-s0-000012_0.png", "images/cad-train-s0-000012_1.png"],
     "conversations": [{"from": "human", "value": "Image 1: <image>\\nImage 2: <image>\\nWhat differs?"},
                       {"from": "gpt", "value": "..."}],
     "meta": {...},          # optional: structured labels
     "task": "cad"}          # optional

Rules (checked by `read_dataset`, in this order, first failure wins):

- ``id`` is a non-empty string, unique in the file;
- ``image`` is a non-empty list of non-empty path strings (a single string is accepted and becomes a list);
  relative paths are resolved against ``image_root`` (default: the data file's directory);
- ``conversations`` is a list of ``{"from": "human"|"gpt", "value": non-empty str}`` turns that alternate,
  starting with ``human`` and ending with ``gpt``;
- the ``<image>`` placeholders across the human turns number exactly ``len(image)``, and gpt turns have none;
- ``meta`` (if present) is an object, ``task`` (if present) a string;
- every image file exists (and decodes, with ``verify_images=True``).

Errors name the file, the record index (0-based: ``records[12]`` of a ``.json`` list, the 13th non-blank line of a
``.jsonl`` file), the id when there is one, and the field, e.g.
``data.json: record 12 (id 'x'): field 'image'[1]: file not found: imgs/a.png``.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

IMAGE_TOKEN = "<image>"
ROLES = ("human", "gpt")

# Reasons counted in a read report (``report["reasons"]``).
R_INVALID_JSON = "invalid json"
R_MISSING = "missing field"
R_TYPE = "wrong type"
R_EMPTY = "empty value"
R_CONVERSATION = "bad conversation"
R_PLACEHOLDERS = "placeholder mismatch"
R_NOT_FOUND = "image not found"
R_UNREADABLE = "image unreadable"
R_DUPLICATE = "duplicate id"


class RecordError(ValueError):
    """One invalid record. ``str(err)`` is the full one-line message; ``reason`` is its category."""

    def __init__(self, message: str, *, reason: str, field: str | None = None, index: int | None = None):
        super().__init__(message)
        self.reason = reason
        self.field = field
        self.index = index


class _Bad(Exception):
    """Internal: a field-level problem, turned into a RecordError with the file and index added."""

    def __init__(self, field: str | None, message: str, reason: str):
        super().__init__(message)
        self.field, self.message, self.reason = field, message, reason


def _type_name(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _normalize(record: Any) -> dict[str, Any]:
    """Check a record's structure (not its files); return a shallow copy with ``image`` as a list (raises `_Bad`)."""
    if not isinstance(record, dict):
        raise _Bad(None, f"expected a JSON object, got {_type_name(record)}", R_TYPE)
    rec = dict(record)
    for key in ("id", "image", "conversations"):
        if key not in rec:
            raise _Bad(repr(key), "missing", R_MISSING)
    if not isinstance(rec["id"], str):
        raise _Bad("'id'", f"expected a string, got {_type_name(rec['id'])}", R_TYPE)
    if not rec["id"]:
        raise _Bad("'id'", "empty string", R_EMPTY)

    images = rec["image"]
    if isinstance(images, str):
        images = [images]
    if not isinstance(images, list):
        raise _Bad("'image'", f"expected a list of paths (or one path), got {_type_name(images)}", R_TYPE)
    if not images:
        raise _Bad("'image'", "empty list", R_EMPTY)
    for k, path in enumerate(images):
        if not isinstance(path, str):
            raise _Bad(f"'image'[{k}]", f"expected a string path, got {_type_name(path)}", R_TYPE)
        if not path:
            raise _Bad(f"'image'[{k}]", "empty path", R_EMPTY)
    rec["image"] = list(images)

    turns = rec["conversations"]
    if not isinstance(turns, list):
        raise _Bad("'conversations'", f"expected a list of turns, got {_type_name(turns)}", R_TYPE)
    if len(turns) < 2:
        raise _Bad("'conversations'", f"needs at least one human and one gpt turn, got {len(turns)} turn(s)",
                   R_CONVERSATION)
    n_placeholders = 0
    for t, turn in enumerate(turns):
        where = f"'conversations'[{t}]"
        if not isinstance(turn, dict):
            raise _Bad(where, f"expected an object, got {_type_name(turn)}", R_TYPE)
        for key in ("from", "value"):
            if key not in turn:
                raise _Bad(f"{where}[{key!r}]", "missing", R_MISSING)
            if not isinstance(turn[key], str):
                raise _Bad(f"{where}[{key!r}]", f"expected a string, got {_type_name(turn[key])}", R_TYPE)
        expected = ROLES[t % 2]
        if turn["from"] not in ROLES:
            raise _Bad(f"{where}['from']", f"must be 'human' or 'gpt', got {turn['from']!r}", R_CONVERSATION)
        if turn["from"] != expected:
            raise _Bad(f"{where}['from']", f"turns must alternate starting with 'human': expected {expected!r}, "
                       f"got {turn['from']!r}", R_CONVERSATION)
        if not turn["value"].strip():
            raise _Bad(f"{where}['value']", "empty text", R_EMPTY)
        count = turn["value"].count(IMAGE_TOKEN)
        if turn["from"] == "gpt" and count:
            raise _Bad(f"{where}['value']", f"a gpt turn holds {count} {IMAGE_TOKEN} placeholder(s)", R_PLACEHOLDERS)
        n_placeholders += count
    if turns[-1]["from"] != "gpt":
        raise _Bad(f"'conversations'[{len(turns) - 1}]", "the last turn must be a gpt answer", R_CONVERSATION)
    if n_placeholders != len(images):
        raise _Bad("'image'", f"{len(images)} image(s) but {n_placeholders} {IMAGE_TOKEN} placeholder(s) in the "
                   "human turns", R_PLACEHOLDERS)

    if "meta" in rec and not isinstance(rec["meta"], dict):
        raise _Bad("'meta'", f"expected an object, got {_type_name(rec['meta'])}", R_TYPE)
    if "task" in rec and not isinstance(rec["task"], str):
        raise _Bad("'task'", f"expected a string, got {_type_name(rec['task'])}", R_TYPE)
    return rec


def resolve_image(path: str, image_root: str | os.PathLike[str]) -> str:
    """The absolute path of a record's image: absolute paths as they are, relative ones under ``image_root``."""
    return os.path.abspath(path if os.path.isabs(path) else os.path.join(image_root, path))


def _check_files(rec: dict[str, Any], image_root: str | os.PathLike[str], verify: bool) -> None:
    for k, path in enumerate(rec["image"]):
        full = resolve_image(path, image_root)
        if not os.path.isfile(full):
            raise _Bad(f"'image'[{k}]", f"file not found: {path} (looked in {os.path.dirname(full)})", R_NOT_FOUND)
        if verify:
            from mmlink.data.images import load_image

            try:
                load_image(full)
            except Exception as err:  # any decode failure makes the record unusable
                raise _Bad(f"'image'[{k}]", f"unreadable: {err}", R_UNREADABLE) from None


def _where(source: str, index: int, record: Any) -> str:
    rid = record.get("id") if isinstance(record, dict) else None
    return f"{source}: record {index}" + (f" (id {rid!r})" if isinstance(rid, str) and rid else "")


def validate_record(
    record: Any,
    index: int = 0,
    *,
    source: str = "<records>",
    image_root: str | os.PathLike[str] | None = None,
    verify_images: bool = False,
) -> dict[str, Any]:
    """Validate one record; return it normalised (``image`` as a list). Image files are checked only when
    ``image_root`` is given. Raises `RecordError` (a ``ValueError``) naming source, index, id and field."""
    try:
        rec = _normalize(record)
        if image_root is not None:
            _check_files(rec, image_root, verify_images)
        return rec
    except _Bad as bad:
        field = f": field {bad.field}" if bad.field else ""
        raise RecordError(f"{_where(source, index, record)}{field}: {bad.message}", reason=bad.reason,
                          field=bad.field, index=index) from None


def _iter_raw(path: Path) -> Iterable[tuple[int, Any, str | None]]:
    """(index, parsed record or None, json error or None) for every record of a .json or .jsonl file."""
    text = path.read_text(encoding="utf-8-sig")
    suffix = path.suffix.lower()
    as_list = suffix == ".json" or (suffix != ".jsonl" and text.lstrip().startswith("["))
    if as_list:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of records, got {_type_name(data)}"
                             + (" (a JSON Lines file? name it .jsonl)" if isinstance(data, dict) else ""))
        for i, rec in enumerate(data):
            yield i, rec, None
        return
    index = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield index, json.loads(line), None
        except json.JSONDecodeError as err:
            yield index, None, f"line {lineno}: invalid JSON: {err.msg} (column {err.colno})"
        index += 1


def read_dataset(
    path: str | os.PathLike[str],
    *,
    image_root: str | os.PathLike[str] | None = None,
    skip_bad: bool = False,
    verify_images: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Read and validate a LLaVA-format ``.json`` (list) or ``.jsonl`` dataset.

    Returns ``(records, report)``: records normalised (``image`` always a list, paths as written in the file),
    ``report = {"total": n, "kept": k, "skipped": s, "reasons": {reason: count}}``. The first bad record raises
    ``ValueError`` naming the file, the record index, its id and the field — unless ``skip_bad``, which drops bad
    records and counts them by reason. Image paths resolve against ``image_root`` (default: the file's
    directory); ``verify_images`` also decodes every image with `mmlink.data.images.load_image` (slow).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    root = Path(image_root) if image_root is not None else path.parent
    if image_root is not None and not root.is_dir():
        raise FileNotFoundError(f"image root {root}: no such directory")
    source = str(path)
    records: list[dict[str, Any]] = []
    reasons: dict[str, int] = {}
    seen: set[str] = set()
    total = 0
    for index, raw, json_error in _iter_raw(path):
        total += 1
        try:
            if json_error is not None:
                raise RecordError(f"{source}: record {index} ({json_error})", reason=R_INVALID_JSON, index=index)
            rec = validate_record(raw, index, source=source, image_root=root, verify_images=verify_images)
            if rec["id"] in seen:
                raise RecordError(f"{_where(source, index, raw)}: field 'id': duplicate of an earlier record",
                                  reason=R_DUPLICATE, field="'id'", index=index)
        except RecordError as err:
            if not skip_bad:
                raise
            reasons[err.reason] = reasons.get(err.reason, 0) + 1
            continue
        seen.add(rec["id"])
        records.append(rec)
    report = {"total": total, "kept": len(records), "skipped": total - len(records), "reasons": reasons}
    return records, report


# --------------------------------------------------------------------------------------------- writing


def _json_default(obj: Any) -> Any:
    """JSON for what generators put in ``meta``: numpy scalars/arrays, sets, paths, dataclasses."""
    import dataclasses

    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def dumps_record(record: dict[str, Any]) -> str:
    """One record as one line of JSON (no newline); stable, so the same record always gives the same bytes."""
    return json.dumps(record, ensure_ascii=False, default=_json_default, allow_nan=False)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then ``os.replace`` it into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename in ``path`` durable (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def json_list_bytes(lines: Iterable[str]) -> bytes:
    """A JSON list with one record per line (valid JSON, diff-friendly)."""
    body = ",\n".join(lines)
    return (f"[\n{body}\n]\n" if body else "[]\n").encode("utf-8")


def write_dataset(records: Iterable[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write records atomically as ``.jsonl`` (one per line) or ``.json`` (a list, one record per line)."""
    path = Path(path)
    lines = [dumps_record(r) for r in records]
    if path.suffix.lower() == ".jsonl":
        data = "".join(line + "\n" for line in lines).encode("utf-8")
    else:
        data = json_list_bytes(lines)
    atomic_write_bytes(path, data)
    return path


# --------------------------------------------------------------------------------------------- 🤗 datasets


def hf_features():
    """The ``datasets.Features`` of `to_hf_dataset`."""
    import datasets

    list_type = getattr(datasets, "List", None) or datasets.Sequence
    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "images": list_type(datasets.Value("string")),
            "conversations": list_type({"from": datasets.Value("string"), "value": datasets.Value("string")}),
            "meta": datasets.Value("string"),
        }
    )


def to_hf_dataset(records: Iterable[dict[str, Any]], image_root: str | os.PathLike[str]):
    """A ``datasets.Dataset`` with columns ``id``, ``images`` (absolute paths), ``conversations`` (from/value
    turns) and ``meta`` (a JSON string, since its keys differ between tasks). Needs ``pip install datasets``."""
    try:
        import datasets
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("to_hf_dataset needs the 'datasets' package: pip install datasets") from err
    rows: dict[str, list[Any]] = {"id": [], "images": [], "conversations": [], "meta": []}
    for index, record in enumerate(records):
        rec = validate_record(record, index)
        rows["id"].append(rec["id"])
        rows["images"].append([resolve_image(p, image_root) for p in rec["image"]])
        rows["conversations"].append([{"from": t["from"], "value": t["value"]} for t in rec["conversations"]])
        rows["meta"].append(json.dumps(rec.get("meta") or {}, ensure_ascii=False, default=_json_default))
    return datasets.Dataset.from_dict(rows, features=hf_features())


__all__ = [
    "IMAGE_TOKEN", "RecordError", "atomic_write_bytes", "dumps_record", "fsync_dir", "hf_features",
    "json_list_bytes", "read_dataset", "resolve_image", "to_hf_dataset", "validate_record",
    "write_dataset",
]  # fmt: skip
