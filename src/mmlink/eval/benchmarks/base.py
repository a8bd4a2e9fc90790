"""What every released-data reader needs: find files, read JSON, check fields, locate or extract images, build
LLaVA-format records. An error names the file, the record and the field, and a missing file the layout expected.

A reader is ``read(root, split, cache) -> list[record]``: ``root`` is the data set's directory as its authors
distribute it, ``split`` one of the task's ``splits``, ``cache`` a directory it may write images into (data sets
whose images live inside parquet/arrow files). A record is what `mmlink.eval.tasks` builds items from::

    {"id": str, "image": [absolute paths], "conversations": [{"from": "human", "value": prompt},
                                                             {"from": "gpt", "value": reference}],
     "meta": {...}}   # refs / choices + answer / texts + answer / answers, by the task's kind

This module imports nothing from the rest of mmlink (the task registry imports the readers).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

from mmlink.data.formats import arrow_rows, saved_rows

IMAGE = "<image>"  # the image placeholder of LLaVA-format prompts (mmlink.eval.tasks.IMAGE_PLACEHOLDER)
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")


class DataError(ValueError):
    """A released data file that does not hold what its format says."""


def fail(path: Path | str, record: Any, field: str, message: str) -> DataError:
    """The error for a bad field: ``raise fail(path, record_id, "answers", "must be a list")``."""
    return DataError(f"{path}: record {record!r}: field {field!r} {message}")


def find_file(root: Path, candidates: Sequence[str], layout: str) -> Path:
    """The first of ``candidates`` (paths relative to ``root``, globs allowed) that exists; else an error that names
    ``root`` and the ``layout`` expected."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory (expected layout: {layout})")
    for name in candidates:
        hits = sorted(root.glob(name)) if any(c in name for c in "*?[") else [root / name]
        for hit in hits:
            if hit.is_file():
                return hit
    raise FileNotFoundError(f"{root}: none of {', '.join(candidates)} found (expected layout: {layout})")


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON: {err}") from None


def read_jsonl(path: Path) -> list[tuple[int, Any]]:
    """``[(line number, object)]`` of a JSON-lines file (blank lines skipped)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append((n, json.loads(line)))
                except json.JSONDecodeError as err:
                    raise DataError(f"{path}: line {n}: not valid JSON: {err}") from None
    return out


def get(obj: Any, key: str, path: Path | str, record: Any, kind: type | tuple[type, ...] = str,
        nonempty: bool = True) -> Any:
    """``obj[key]`` checked to exist and be of ``kind`` (and non-empty for strings and lists)."""
    if not isinstance(obj, dict):
        raise DataError(f"{path}: record {record!r} must be an object, got {type(obj).__name__}")
    if key not in obj or obj[key] is None:
        raise fail(path, record, key, "is missing")
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise fail(path, record, key, f"must be {names}, got {type(value).__name__} {_short(value)}")
    if nonempty and isinstance(value, (str, list)) and not (value.strip() if isinstance(value, str) else value):
        raise fail(path, record, key, "is empty")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def image_file(directory: Path, name: str, path: Path | str, record: Any, field: str,
               suffixes: Sequence[str] = ("",)) -> str:
    """The absolute path of image ``name`` under ``directory`` (trying each suffix in turn); missing: an error
    naming the data file, the record, the field and the path looked for."""
    for suffix in suffixes:
        candidate = Path(directory) / f"{name}{suffix}"
        if candidate.is_file():
            return str(candidate.resolve())
    looked = ", ".join(str(Path(directory) / f"{name}{s}") for s in suffixes)
    raise fail(path, record, field, f"names an image that is not there (looked for {looked})")


def store_image(value: Any, cache: Path, path: Path | str, record: Any, field: str) -> str:
    """An image kept inside a data file — a Hugging Face ``Image`` feature (``{"bytes", "path"}``), a PIL image or
    raw bytes — written once into ``cache`` under its content hash; returns the file's absolute path."""
    data: Optional[bytes] = None
    if isinstance(value, dict) and value.get("bytes"):
        data = value["bytes"]
    elif isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    elif hasattr(value, "save") and hasattr(value, "size"):  # a PIL image (datasets decodes Image features)
        buf = io.BytesIO()
        value.save(buf, format="PNG")
        data = buf.getvalue()
    elif isinstance(value, dict) and value.get("path") and Path(value["path"]).is_file():
        return str(Path(value["path"]).resolve())
    if not data:
        raise fail(path, record, field, f"holds no image (expected image bytes or a PIL image, got {_short(value)})")
    from mmlink.fileio import store_by_content

    return str(store_by_content(data, cache, ".png"))  # decoders read the content, not the name


def hf_rows(root: Path, split: str, layout: str) -> Iterator[tuple[str, int, dict]]:
    """Rows of a Hugging Face data set kept locally, as ``(source, index, row)``: a ``save_to_disk`` directory
    (a ``DatasetDict`` with the split, or one ``Dataset``), or the hub layout of parquet files
    (``data/<split>-*.parquet``, ``<split>/*.parquet``, ``<split>-*.parquet``). Nothing is downloaded; images stay
    undecoded (``{"bytes", "path"}``) for `store_image`."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory (expected layout: {layout})")
    import datasets

    if (root / "dataset_dict.json").is_file() or (root / "state.json").is_file():
        rows, source = saved_rows(root, split), str(root)
    else:
        files = [p for pattern in (f"data/{split}-*.parquet", f"data/{split}/*.parquet", f"{split}/*.parquet",
                                   f"{split}-*.parquet", f"*/{split}-*.parquet", f"{split}.parquet")
                 for p in sorted(root.glob(pattern))]
        if not files:
            raise FileNotFoundError(f"{root}: no saved data set (dataset_dict.json) and no parquet files of split "
                                    f"{split!r} (expected layout: {layout})")
        import datasets

        files = list(dict.fromkeys(files))
        rows = arrow_rows(datasets.load_dataset("parquet", data_files=[str(p) for p in files], split="train"))
        source = ", ".join(str(p) for p in files)
    for i, row in enumerate(rows):
        yield source, i, row


def record(rid: str, images: Sequence[str], prompt: str, reference: str, **meta: Any) -> dict:
    """A LLaVA-format record: one human turn (``prompt``, with one `IMAGE` per image) and the reference answer
    (``meta`` may hold its own ``answer``: a rank task's correct candidate)."""
    if prompt.count(IMAGE) != len(images):
        raise AssertionError(f"record {rid!r}: {prompt.count(IMAGE)} placeholder(s) for {len(images)} image(s)")
    return {"id": str(rid), "image": list(images),
            "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": reference}],
            "meta": meta}


def image_prefix(n: int) -> str:
    """``"<image>\\n"`` for one image; ``"Image 1: <image>\\nImage 2: <image>\\n"`` for several (CaD-VI's form)."""
    if n == 1:
        return f"{IMAGE}\n"
    return "".join(f"Image {k}: {IMAGE}\n" for k in range(1, n + 1))


def lettered(options: Sequence[str]) -> str:
    """``"(A) red\\n(B) blue"``: the options labelled with capital letters, one per line."""
    if len(options) > len(LETTERS):
        raise ValueError(f"at most {len(LETTERS)} options, got {len(options)}")
    return "\n".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(options))


def letter_index(answer: str, n: int, path: Path | str, record: Any, field: str) -> int:
    """The option index of an answer letter such as ``"B"``, ``"(B)"`` or ``"B."``."""
    text = str(answer).strip().strip("().:").strip()
    if len(text) == 1 and text.upper() in LETTERS[:n]:
        return LETTERS.index(text.upper())
    raise fail(path, record, field, f"must be an option letter among {LETTERS[:n]}, got {answer!r}")


def check_split(split: str, splits: Iterable[str], root: Path) -> None:
    splits = list(splits)
    if split not in splits:
        raise ValueError(f"{root}: unknown split {split!r}; this data set has {', '.join(splits)}")


__all__ = ["DataError", "IMAGE", "IMAGE_SUFFIXES", "LETTERS", "check_split", "fail", "find_file", "get", "hf_rows",
           "image_file", "image_prefix", "letter_index", "lettered", "read_json", "read_jsonl", "record",
           "store_image"]
