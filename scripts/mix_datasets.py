"""Merge several `mmlink synth` outputs into one LLaVA-format ``data.jsonl`` (for a mixed training set).

`TrainConfig.train_data` takes one file, and image paths in a record resolve against that file's directory. This
script reads each source (a synth output directory or its ``data.jsonl``/``data.json``), optionally keeps only its
first N records, rewrites every image path so it still points at the same file from the output's directory
(relative by default, ``--absolute`` for absolute paths), refuses duplicate record ids, and writes the records
source by source (the trainer shuffles every epoch). Images are not copied.

    python scripts/mix_datasets.py --out runs/mini/data/stage1/data.jsonl \\
        runs/mini/data/caption_train runs/mini/data/group_caption_train:2000 runs/mini/data/mmlink_pair_train
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def source_file(src: str | Path) -> Path:
    """A synth output directory → its data.jsonl (else data.json); a file is returned as it is."""
    p = Path(src)
    if p.is_dir():
        for name in ("data.jsonl", "data.json"):
            if (p / name).is_file():
                return p / name
        raise FileNotFoundError(f"{p}: no data.jsonl or data.json in this directory")
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file or directory")
    return p


def read_records(path: Path) -> list[dict]:
    text = path.read_text()
    if path.suffix == ".json":
        data = json.loads(text)
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of records")
        return data
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def parse_source(spec: str) -> tuple[str, int | None]:
    """'DIR' or 'DIR:N' (keep the first N records)."""
    head, sep, tail = spec.rpartition(":")
    if sep and tail.isdigit() and head:
        return head, int(tail)
    return spec, None


def rebase(image: str, src_dir: Path, out_dir: Path, absolute: bool) -> str:
    p = Path(image)
    full = p if p.is_absolute() else (src_dir / p)
    full = Path(os.path.abspath(full))
    if absolute:
        return str(full)
    return Path(os.path.relpath(full, os.path.abspath(out_dir))).as_posix()


def mix(sources: list[tuple[str | Path, int | None]], out: str | Path, absolute: bool = False) -> dict:
    """Write the merged records to ``out``; return ``{"records": n, "per_source": {path: n}}``."""
    out = Path(out)
    out_dir = out.parent
    merged: list[dict] = []
    per_source: dict[str, int] = {}
    seen: set[str] = set()
    for src, limit in sources:
        path = source_file(src)
        records = read_records(path)
        if limit is not None:
            if limit > len(records):
                raise ValueError(f"{path}: asked for {limit} records, it has {len(records)}")
            records = records[:limit]
        for rec in records:
            rid = rec.get("id")
            if rid in seen:
                raise ValueError(f"duplicate record id {rid!r} (in {path})")
            seen.add(rid)
            images = rec.get("image", [])
            if isinstance(images, str):
                images = [images]
            rec = {**rec, "image": [rebase(im, path.parent, out_dir, absolute) for im in images]}
            merged.append(rec)
        per_source[str(path)] = len(records)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w") as f:
        for rec in merged:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    tmp.replace(out)
    return {"records": len(merged), "per_source": per_source}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sources", nargs="+", help="synth output dir or data file, optionally ':N' for its first N records")
    ap.add_argument("--out", required=True, help="the merged data.jsonl to write")
    ap.add_argument("--absolute", action="store_true", help="write absolute image paths (default: relative to --out)")
    args = ap.parse_args(argv)
    try:
        summary = mix([parse_source(s) for s in args.sources], args.out, absolute=args.absolute)
    except (OSError, ValueError) as err:
        print(f"mix_datasets: error: {err}", file=sys.stderr)
        return 2
    parts = ", ".join(f"{n} from {p}" for p, n in summary["per_source"].items())
    print(f"mix_datasets: {summary['records']} records -> {args.out} ({parts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
