"""scripts/mix_datasets.py: several synth outputs → one data.jsonl whose image paths still resolve."""

import importlib.util
import json
from pathlib import Path

import pytest

from mmlink.data import synth
from mmlink.data.formats import read_dataset

ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("mix_datasets", ROOT / "scripts" / "mix_datasets.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


mix_datasets = _load()


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    out = {}
    for task, n in (("caption", 3), ("mmlink_pair", 2), ("group_caption", 2)):
        synth.synthesize(task, root / task, n=n, split="train", seed=0, image_size=32, progress=False)
        out[task] = root / task
    return out


def _records(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


@pytest.mark.parametrize("absolute", [False, True])
def test_merged_paths_point_at_the_same_images(sources, tmp_path, absolute):
    out = tmp_path / "deep" / "mix" / "data.jsonl"
    specs = [(sources["caption"], None), (sources["mmlink_pair"] / "data.jsonl", None), (sources["group_caption"], 1)]
    summary = mix_datasets.mix(specs, out, absolute=absolute)
    merged = _records(out)
    assert summary["records"] == len(merged) == 3 + 2 + 1
    originals = _records(sources["caption"] / "data.jsonl") + _records(sources["mmlink_pair"] / "data.jsonl") + \
        _records(sources["group_caption"] / "data.jsonl")[:1]
    assert [r["id"] for r in merged] == [r["id"] for r in originals]
    src_dirs = [sources["caption"]] * 3 + [sources["mmlink_pair"]] * 2 + [sources["group_caption"]]
    for rec, orig, src in zip(merged, originals, src_dirs):
        assert rec["conversations"] == orig["conversations"] and rec["task"] == orig["task"]
        assert len(rec["image"]) == len(orig["image"])
        for new, old in zip(rec["image"], orig["image"]):
            assert Path(new).is_absolute() == absolute
            resolved = Path(new) if absolute else out.parent / new
            assert resolved.resolve() == (src / old).resolve() and resolved.is_file()
    # the loader the trainer uses reads it, resolving images against the file's directory
    records, report = read_dataset(out, verify_images=True)
    assert report["kept"] == 6


def test_cli_and_limits(sources, tmp_path, capsys):
    out = tmp_path / "m.jsonl"
    assert mix_datasets.main(["--out", str(out), f"{sources['caption']}:2", str(sources["mmlink_pair"])]) == 0
    assert len(_records(out)) == 4 and "4 records" in capsys.readouterr().out
    assert mix_datasets.main(["--out", str(out), f"{sources['caption']}:99"]) == 2  # more than it has
    assert mix_datasets.main(["--out", str(out), str(sources["caption"]), str(sources["caption"])]) == 2  # dup ids
    assert mix_datasets.main(["--out", str(out), str(tmp_path / "missing")]) == 2
    assert len(_records(out)) == 4  # a failed run leaves the previous output alone


def test_parse_source():
    assert mix_datasets.parse_source("a/b:12") == ("a/b", 12)
    assert mix_datasets.parse_source("a/b") == ("a/b", None)
    assert mix_datasets.parse_source("c:/x/y") == ("c:/x/y", None)
