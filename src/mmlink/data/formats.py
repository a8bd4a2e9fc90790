"""LLaVA-format multi-image datasets: read, validate, write, and hand over to 🤗 ``datasets``.

A record (one line of a ``.jsonl`` file, one element of a ``.json`` list, or one row of a data set written by
``datasets``' ``save_to_disk``)::

    {"id": "cad-train-s0-000012",
     "image": ["images/cad-train-s0-000012_0.png", "images/cad-train-s0-000012_1.png"],
     "conversations": [{"from": "human", "value": "Image 1: <image>\\nImage 2: <image>\\nWhat differs?"},
                       {"from": "gpt", "value": "..."}],
     "meta": {...},          # optional: structured labels
     "task": "cad"}          # optional

Where the data is (`resolve_data_path`): a ``.json``/``.jsonl`` file; a directory holding ``data.jsonl`` (what
``mmlink synth --out DIR`` writes), else ``data.json``, else exactly one ``.jsonl`` or JSON-list ``.json`` file; or a
``datasets.save_to_disk`` directory (a ``Dataset``, or a ``DatasetDict`` with one split). The rows of a saved data
set are records as above; their images may be paths (relative to ``image_root``, default the data set's
directory) or ``datasets.Image`` values: embedded images are written once, under the hash of their bytes, into
``DIR/.mmlink-images/`` (the cache the eval readers use too), or ``$MMLINK_CACHE/hf-images/`` when ``DIR`` is not
writable; ``images`` is accepted for ``image`` and a ``meta`` JSON string (what `to_hf_dataset` writes) is parsed.

Rules (checked by `read_dataset`, in this order, first failure wins):

- ``id`` is a non-empty string, unique in the file;
- ``image`` is a list of non-empty path strings (a single string is accepted and becomes a list); a record without
  ``image`` (or with ``null`` or ``[]``) is text-only, as in LLaVA's instruction mixes;
  relative paths are resolved against ``image_root`` (default: the data file's directory);
- ``conversations`` is a list of ``{"from": "human"|"gpt", "value": non-empty str}`` turns that alternate,
  starting with ``human`` and ending with ``gpt``; ShareGPT/OpenAI turns are read too — ``"from"`` or ``"role"``,
  ``"value"`` or ``"content"``, roles ``user``/``assistant`` — and normalised to ``from``/``value``,
  ``human``/``gpt`` (other roles, e.g. ``system``, are errors);
- the ``<image>`` placeholders across the human turns number exactly ``len(image)``, and gpt turns have none;
- ``meta`` (if present) is an object, ``task`` (if present) a string;
- every image file exists (and decodes, with ``verify_images=True``).

A data set with no records, or (``skip_bad``) none left after skipping, is an error too.

Errors name the file, the record index (0-based: ``records[12]`` of a ``.json`` list, the 13th non-blank line of a
``.jsonl`` file, row 12 of a saved data set), the id when there is one, and the field, e.g.
``data.json: record 12 (id 'x'): field 'image'[1]: file not found: imgs/a.png``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from mmlink.fileio import atomic_write, cache_dir, store_by_content

IMAGE_TOKEN = "<image>"
ROLES = ("human", "gpt")
# ShareGPT / OpenAI chat names of the two roles; records are normalised to LLaVA's.
ROLE_ALIASES = {"human": "human", "user": "human", "gpt": "gpt", "assistant": "gpt"}
# In a directory given as the data: the file `mmlink synth` writes first, then its JSON-list twin.
DATA_FILE_NAMES = ("data.jsonl", "data.json")
IMAGE_CACHE_DIR = ".mmlink-images"  # beside a saved 🤗 data set; the eval readers' cache has the same name

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
    """Check a record's structure (not its files); return a shallow copy with ``image`` as a list (empty for a
    text-only record) and every turn as ``{"from": "human"|"gpt", "value": ...}`` (raises `_Bad`)."""
    if not isinstance(record, dict):
        raise _Bad(None, f"expected a JSON object, got {_type_name(record)}", R_TYPE)
    rec = dict(record)
    for key in ("id", "conversations"):
        if key not in rec:
            raise _Bad(repr(key), "missing", R_MISSING)
    if not isinstance(rec["id"], str):
        raise _Bad("'id'", f"expected a string, got {_type_name(rec['id'])}", R_TYPE)
    if not rec["id"]:
        raise _Bad("'id'", "empty string", R_EMPTY)

    images = rec.get("image")
    if images is None:
        images = []
    elif isinstance(images, str):
        images = [images]
    if not isinstance(images, list):
        raise _Bad("'image'", f"expected a list of paths (or one path), got {_type_name(images)}", R_TYPE)
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
    normalized = []
    for t, turn in enumerate(turns):
        where = f"'conversations'[{t}]"
        if not isinstance(turn, dict):
            raise _Bad(where, f"expected an object, got {_type_name(turn)}", R_TYPE)
        # Errors name the keys the record itself uses (LLaVA's from/value unless it has only role/content).
        role_key = "role" if "role" in turn and "from" not in turn else "from"
        text_key = "content" if "content" in turn and "value" not in turn else "value"
        for key in (role_key, text_key):
            if key not in turn:
                raise _Bad(f"{where}[{key!r}]", "missing", R_MISSING)
            if not isinstance(turn[key], str):
                raise _Bad(f"{where}[{key!r}]", f"expected a string, got {_type_name(turn[key])}", R_TYPE)
        role, value = ROLE_ALIASES.get(turn[role_key]), turn[text_key]
        expected = ROLES[t % 2]
        if role is None:
            raise _Bad(f"{where}[{role_key!r}]", f"must be 'human' or 'gpt' (or 'user' / 'assistant'), got "
                       f"{turn[role_key]!r}", R_CONVERSATION)
        if role != expected:
            raise _Bad(f"{where}[{role_key!r}]", f"turns must alternate starting with 'human': expected "
                       f"{expected!r}, got {turn[role_key]!r}", R_CONVERSATION)
        if not value.strip():
            raise _Bad(f"{where}[{text_key!r}]", "empty text", R_EMPTY)
        count = value.count(IMAGE_TOKEN)
        if role == "gpt" and count:
            raise _Bad(f"{where}[{text_key!r}]", f"a gpt turn holds {count} {IMAGE_TOKEN} placeholder(s)",
                       R_PLACEHOLDERS)
        n_placeholders += count
        extra = {k: v for k, v in turn.items() if k not in ("from", "value", "role", "content")}
        normalized.append({"from": role, "value": value, **extra})
    if normalized[-1]["from"] != "gpt":
        raise _Bad(f"'conversations'[{len(turns) - 1}]", "the last turn must be a gpt answer", R_CONVERSATION)
    if n_placeholders != len(images):
        raise _Bad("'image'", f"{len(images)} image(s) but {n_placeholders} {IMAGE_TOKEN} placeholder(s) in the "
                   "human turns", R_PLACEHOLDERS)
    rec["conversations"] = normalized

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
            from mmlink.images import load_image

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


def _json_error(source: str, index: int, message: str) -> RecordError:
    return RecordError(f"{source}: record {index} ({message})", reason=R_INVALID_JSON, index=index)


def _iter_raw(path: Path) -> Iterable[tuple[int, Any, RecordError | None]]:
    """(index, parsed record or None, error or None) for every record of a .json or .jsonl file."""
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
            yield index, None, _json_error(str(path), index, f"line {lineno}: invalid JSON: {err.msg} "
                                                             f"(column {err.colno})")
        index += 1


# --------------------------------------------------------------------------------------------- where the data is


def is_saved_hf_dataset(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a directory written by ``datasets``' ``save_to_disk`` (a Dataset or a DatasetDict)."""
    path = Path(path)
    return (path / "dataset_dict.json").is_file() or (
        (path / "state.json").is_file() and (path / "dataset_info.json").is_file()
    )


def _is_data_file(path: Path) -> bool:
    """A ``.jsonl`` file, or a ``.json`` file holding a list (``synth.json``, ``report.json`` are objects)."""
    if path.name.startswith(".") or not path.is_file():  # hidden: atomic writes' temporary files
        return False
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return True
    if suffix != ".json":
        return False
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        head = f.read(4096).lstrip()
    return head.startswith("[")


def resolve_data_path(path: str | os.PathLike[str]) -> Path:
    """The data source that ``path`` names: a file as it is; a ``datasets.save_to_disk`` directory as it is; another
    directory → its ``data.jsonl`` (what ``mmlink synth --out DIR`` writes), else its ``data.json``, else its only
    ``.jsonl`` / JSON-list ``.json`` file. ``FileNotFoundError`` when there is none, ``ValueError`` when several
    are candidates. Every reader of training/validation data goes through here, so they all accept the same."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: not a file or directory")
    if is_saved_hf_dataset(path):
        return path
    for name in DATA_FILE_NAMES:
        if (path / name).is_file():
            return path / name
    candidates = sorted(p for p in path.iterdir() if _is_data_file(p))
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise FileNotFoundError(f"{path}: a directory without data: expected data.jsonl, one .jsonl or .json (list) "
                                "file, or a datasets.save_to_disk directory")
    names = ", ".join(p.name for p in candidates)
    raise ValueError(f"{path}: several data files ({names}) and no data.jsonl; name the one to read")


def default_image_root(path: str | os.PathLike[str]) -> Path:
    """Where relative image paths of the data at ``path`` (as `resolve_data_path` returns it) start from: the data
    file's directory, or a saved data set's own directory."""
    path = Path(path)
    return path if path.is_dir() else path.parent


# --------------------------------------------------------------------------------------------- saved 🤗 data sets


def _writable_dir(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)


def hf_image_cache(dataset_dir: str | os.PathLike[str]) -> Path:
    """Where the embedded images of the saved data set ``dataset_dir`` are written: ``dataset_dir/.mmlink-images``,
    or ``$MMLINK_CACHE/hf-images`` (default ``~/.cache/mmlink``) when the data set's directory is read-only."""
    beside = Path(dataset_dir) / IMAGE_CACHE_DIR
    if _writable_dir(beside):
        return beside
    shared = cache_dir() / "hf-images"
    shared.mkdir(parents=True, exist_ok=True)
    return shared


class _ImageStore:
    """Writes embedded image bytes to files named by their hash, once (created lazily: a data set of paths writes
    nothing)."""

    SUFFIXES = {"JPEG": ".jpg", "TIFF": ".tif"}

    def __init__(self, dataset_dir: Path, cache: Path | None):
        self.dataset_dir, self._dir = dataset_dir, cache

    def path_of(self, value: dict, field: str) -> str:
        """The path of an ``Image`` value ``{"bytes", "path"}``: its bytes stored, else its own path."""
        data, own = value.get("bytes"), value.get("path")
        if not data:
            if isinstance(own, str) and own:
                return own
            raise _Bad(field, "an Image value with neither bytes nor a path", R_EMPTY)
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as img:  # the header only: the format names the file's suffix
                fmt = img.format or "PNG"
        except (UnidentifiedImageError, OSError) as err:
            raise _Bad(field, f"unreadable embedded image: {err}", R_UNREADABLE) from None
        if self._dir is None:
            self._dir = hf_image_cache(self.dataset_dir)
        return str(store_by_content(data, self._dir, self.SUFFIXES.get(fmt, f".{fmt.lower()}")))


def _from_hf_row(row: dict[str, Any], store: _ImageStore) -> dict[str, Any]:
    """A saved data set's row → a record for `validate_record` (raises `_Bad` for an embedded image it cannot use).

    Arrow gives every row every column, ``None`` where a record had no value: those keys are dropped, so a missing
    ``id`` reads as missing and a row without images as text-only."""
    rec = {k: v for k, v in row.items() if v is not None}
    if "images" in rec:
        if "image" in rec:
            raise _Bad("'images'", "both 'image' and 'images' hold values; keep one column", R_TYPE)
        rec["image"] = rec.pop("images")
    images = rec.get("image")
    if isinstance(images, dict):
        images = [images]
    if isinstance(images, list):
        rec["image"] = [store.path_of(v, f"'image'[{k}]") if isinstance(v, dict) else v
                        for k, v in enumerate(images)]
    if isinstance(rec.get("meta"), str):  # to_hf_dataset stores meta as JSON text
        with contextlib.suppress(json.JSONDecodeError):
            rec["meta"] = json.loads(rec["meta"])
    if isinstance(rec.get("conversations"), list):
        rec["conversations"] = [{k: v for k, v in t.items() if v is not None} if isinstance(t, dict) else t
                                for t in rec["conversations"]]
    return rec


def arrow_rows(data) -> Iterator[dict[str, Any]]:
    """The rows of a ``datasets.Dataset`` as Arrow stores them: ``Image`` values stay ``{"bytes", "path"}`` —
    decoding to PIL only to write the bytes back would be waste, and casting the columns instead would write a new
    copy of the data set (into the user's directory)."""
    for table in data.with_format("arrow").iter(batch_size=64):
        yield from table.to_pylist()


def saved_rows(path: Path, split: str | None = None) -> Iterator[dict[str, Any]]:
    """The rows (`arrow_rows`) of ``datasets.load_from_disk(path)``: a ``Dataset``, or a ``DatasetDict``'s ``split``
    (default: its only split)."""
    import datasets  # imported here: it is slow to import, and most data are .jsonl files

    if (path / "dataset_dict.json").is_file():
        splits = json.loads((path / "dataset_dict.json").read_text(encoding="utf-8")).get("splits") or []
        if split is None and len(splits) != 1:
            raise ValueError(f"{path}: a saved DatasetDict with splits {', '.join(splits) or '(none)'}; name one: "
                             f"{path / (splits[0] if splits else 'SPLIT')}")
        if split is not None and split not in splits:
            raise ValueError(f"{path}: saved data set has no split {split!r}; it has {', '.join(splits)}")
        path = path / (split or splits[0])
    # datasets cannot load a saved data set of 0 rows (no data file); it has no records either way.
    if not json.loads((path / "state.json").read_text(encoding="utf-8")).get("_data_files", [None]):
        return
    yield from arrow_rows(datasets.load_from_disk(str(path)))


def _iter_saved(path: Path, image_cache: Path | None) -> Iterable[tuple[int, Any, RecordError | None]]:
    """(index, record, error or None) for every row of a ``save_to_disk`` directory."""
    store = _ImageStore(path, image_cache)
    for index, row in enumerate(saved_rows(path)):
        try:
            yield index, _from_hf_row(row, store), None
        except _Bad as bad:
            yield index, row, RecordError(f"{_where(str(path), index, row)}: field {bad.field}: {bad.message}",
                                          reason=bad.reason, field=bad.field, index=index)


# --------------------------------------------------------------------------------------------- reading


def read_dataset(
    path: str | os.PathLike[str],
    *,
    image_root: str | os.PathLike[str] | None = None,
    skip_bad: bool = False,
    verify_images: bool = False,
    image_cache: str | os.PathLike[str] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Read and validate a LLaVA-format ``.json`` (list) or ``.jsonl`` dataset, a directory holding one, or a
    ``datasets.save_to_disk`` directory (see `resolve_data_path`).

    Returns ``(records, report)``: records normalised (``image`` always a list, empty for text-only records; turns
    as ``from``/``value`` with ``human``/``gpt``; paths as written in the file, embedded images of a saved data set
    as absolute paths into ``image_cache``, default `hf_image_cache`),
    ``report = {"total": n, "kept": k, "skipped": s, "reasons": {reason: count}}``. The first bad record raises
    ``ValueError`` naming the file, the record index, its id and the field — unless ``skip_bad``, which drops bad
    records and counts them by reason. No records at all, or none kept, is a ``ValueError`` either way. Image paths
    resolve against ``image_root`` (default: `default_image_root`); ``verify_images`` also decodes every image
    with `mmlink.images.load_image` (slow).
    """
    path = resolve_data_path(path)
    root = Path(image_root) if image_root is not None else default_image_root(path)
    if image_root is not None and not root.is_dir():
        raise FileNotFoundError(f"image root {root}: no such directory")
    source = str(path)
    saved = path.is_dir()
    rows = _iter_saved(path, None if image_cache is None else Path(image_cache)) if saved else _iter_raw(path)
    records: list[dict[str, Any]] = []
    reasons: dict[str, int] = {}
    seen: set[str] = set()
    total = 0
    for index, raw, error in rows:
        total += 1
        try:
            if error is not None:
                raise error
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
    # An empty or all-bad data set would "pass" and then train on nothing: refuse it where it is read.
    if total == 0:
        raise ValueError(f"{source}: no records ({'the data set has no rows' if saved else 'the file is empty'})")
    if not records:
        counts = ", ".join(f"{r}: {n}" for r, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))
        raise ValueError(f"{source}: no valid records: all {total} skipped ({counts})")
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
    atomic_write(path, data)
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
    "IMAGE_TOKEN", "RecordError", "default_image_root", "dumps_record", "fsync_dir",
    "hf_features", "hf_image_cache", "is_saved_hf_dataset", "json_list_bytes", "read_dataset", "resolve_data_path",
    "resolve_image", "to_hf_dataset", "validate_record", "write_dataset",
]  # fmt: skip
