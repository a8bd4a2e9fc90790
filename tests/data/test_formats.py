"""mmlink.data.formats: LLaVA-format multi-image records — validation messages, skip_bad reports, json/jsonl,
🤗 datasets. Every fixture file is written in tmp_path."""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from mmlink.data.formats import (
    RecordError,
    dumps_record,
    read_dataset,
    resolve_data_path,
    to_hf_dataset,
    validate_record,
    write_dataset,
)

PROMPT = "Image 1: <image>\nImage 2: <image>\nWhat do the two images have in common?"


def _record(i: int, images=("imgs/a.png", "imgs/b.png"), **extra) -> dict:
    rec = {
        "id": f"r{i}",
        "image": list(images),
        "conversations": [{"from": "human", "value": PROMPT}, {"from": "gpt", "value": f"Answer {i}."}],
        "meta": {"i": i},
        "task": "demo",
    }
    rec.update(extra)
    return rec


@pytest.fixture
def root(tmp_path) -> Path:
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (8, 8), (200, 20, 20)).save(tmp_path / "imgs" / "a.png")
    Image.new("RGB", (8, 8), (20, 20, 200)).save(tmp_path / "imgs" / "b.png")
    (tmp_path / "imgs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    return tmp_path


def _write_json(path: Path, records) -> Path:
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def _write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------- valid input


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_reads_json_and_jsonl(root, suffix):
    records = [_record(i) for i in range(5)]
    path = root / f"data{suffix}"
    (_write_json if suffix == ".json" else _write_jsonl)(path, records)
    got, report = read_dataset(path)
    assert got == records
    assert report == {"total": 5, "kept": 5, "skipped": 0, "reasons": {}}


def test_jsonl_blank_lines_are_ignored(root):
    path = root / "data.jsonl"
    path.write_text("\n" + json.dumps(_record(0)) + "\n\n" + json.dumps(_record(1)) + "\n\n")
    got, report = read_dataset(path)
    assert [r["id"] for r in got] == ["r0", "r1"] and report["total"] == 2


def test_single_image_string_is_normalised_to_a_list(root):
    rec = _record(0, images=())
    rec["image"] = "imgs/a.png"
    rec["conversations"][0]["value"] = "<image>\nDescribe it."
    got, _ = read_dataset(_write_json(root / "data.json", [rec]))
    assert got[0]["image"] == ["imgs/a.png"]


def test_image_root_overrides_the_file_directory(root, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    path = _write_json(elsewhere / "data.json", [_record(0)])
    with pytest.raises(ValueError, match="file not found"):
        read_dataset(path)
    got, _ = read_dataset(path, image_root=root)
    assert len(got) == 1


def test_absolute_image_paths_are_accepted(root, tmp_path_factory):
    rec = _record(0, images=(str(root / "imgs" / "a.png"), str(root / "imgs" / "b.png")))
    path = _write_json(tmp_path_factory.mktemp("other") / "data.json", [rec])
    assert read_dataset(path)[0][0]["image"][0] == str(root / "imgs" / "a.png")


def test_extra_keys_are_kept(root):
    rec = _record(0, source="coco")
    got, _ = read_dataset(_write_json(root / "data.json", [rec]))
    assert got[0]["source"] == "coco"


def test_multi_turn_conversations(root):
    rec = _record(0)
    rec["conversations"] += [{"from": "human", "value": "Which one is red?"}, {"from": "gpt", "value": "Image 1."}]
    assert read_dataset(_write_json(root / "data.json", [rec]))[0][0]["conversations"][3]["value"] == "Image 1."


# --------------------------------------------------------------------------------------------- errors


def _bad(mutate):
    rec = _record(12, images=("imgs/a.png", "imgs/b.png"))
    rec["id"] = "x"
    mutate(rec)
    return rec


def _set(key, value):
    def mutate(rec):
        rec[key] = value

    return mutate


def _turn(t, key, value):
    def mutate(rec):
        rec["conversations"][t][key] = value

    return mutate


def _drop(key):
    return lambda rec: rec.pop(key)


# (mutation, field named in the message, words in the message, reason)
CASES = {
    "missing image file": (_set("image", ["imgs/a.png", "imgs/missing.png"]), "'image'[1]",
                           "file not found: imgs/missing.png", "image not found"),
    "too few placeholders": (_turn(0, "value", "Image 1: <image>\nWhat is it?"), "'image'",
                             "2 image(s) but 1 <image> placeholder(s)", "placeholder mismatch"),
    "too many placeholders": (_turn(0, "value", "<image> <image> <image>"), "'image'",
                              "2 image(s) but 3", "placeholder mismatch"),
    "placeholder in a gpt turn": (_turn(1, "value", "It is <image>."), "'conversations'[1]['value']",
                                  "gpt turn holds 1 <image>", "placeholder mismatch"),
    # no image field / an empty list: a text-only record, which then has two placeholders too many
    "missing image field": (_drop("image"), "'image'", "0 image(s) but 2 <image> placeholder(s)",
                            "placeholder mismatch"),
    "missing conversations": (_drop("conversations"), "'conversations'", "missing", "missing field"),
    "missing turn value": (lambda rec: rec["conversations"][1].pop("value"), "'conversations'[1]['value']",
                           "missing", "missing field"),
    "image wrong type": (_set("image", 3), "'image'", "expected a list of paths", "wrong type"),
    "image path wrong type": (_set("image", ["imgs/a.png", 7]), "'image'[1]", "expected a string path, got int",
                              "wrong type"),
    "conversations wrong type": (_set("conversations", {"from": "human"}), "'conversations'",
                                 "expected a list of turns, got object", "wrong type"),
    "turn wrong type": (lambda rec: rec["conversations"].__setitem__(1, "hi"), "'conversations'[1]",
                        "expected an object, got string", "wrong type"),
    "value wrong type": (_turn(1, "value", 5), "'conversations'[1]['value']", "expected a string, got int",
                         "wrong type"),
    "meta wrong type": (_set("meta", [1, 2]), "'meta'", "expected an object, got list", "wrong type"),
    "task wrong type": (_set("task", 1), "'task'", "expected a string", "wrong type"),
    "empty value": (_turn(1, "value", "  "), "'conversations'[1]['value']", "empty text", "empty value"),
    "empty image list": (_set("image", []), "'image'", "0 image(s) but 2 <image> placeholder(s)",
                         "placeholder mismatch"),
    "unknown role": (_turn(1, "from", "system"), "'conversations'[1]['from']", "must be 'human' or 'gpt'",
                     "bad conversation"),
    "unknown role/content role": (lambda rec: rec["conversations"].__setitem__(
        1, {"role": "tool", "content": "x"}), "'conversations'[1]['role']", "got 'tool'", "bad conversation"),
    "content wrong type": (lambda rec: rec["conversations"].__setitem__(
        1, {"role": "assistant", "content": [{"type": "text", "text": "x"}]}), "'conversations'[1]['content']",
        "expected a string, got list", "wrong type"),
    "user/assistant not alternating": (lambda rec: rec["conversations"].__setitem__(
        1, {"from": "user", "value": "x"}), "'conversations'[1]['from']", "expected 'gpt', got 'user'",
        "bad conversation"),
    "not alternating": (_turn(1, "from", "human"), "'conversations'[1]['from']",
                        "expected 'gpt', got 'human'", "bad conversation"),
    "starts with gpt": (_turn(0, "from", "gpt"), "'conversations'[0]['from']", "starting with 'human'",
                        "bad conversation"),
    "ends with human": (lambda rec: rec["conversations"].append({"from": "human", "value": "and?"}),
                        "'conversations'[2]", "last turn must be a gpt answer", "bad conversation"),
    "single turn": (lambda rec: rec["conversations"].pop(), "'conversations'", "at least one human and one gpt",
                    "bad conversation"),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_bad_record_names_file_index_id_and_field(root, case, suffix):
    mutate, field, words, reason = CASES[case]
    records = [_record(i) for i in range(12)] + [_bad(mutate)] + [_record(13)]
    path = root / f"data{suffix}"
    (_write_json if suffix == ".json" else _write_jsonl)(path, records)
    with pytest.raises(ValueError) as err:
        read_dataset(path)
    message = str(err.value)
    assert message.startswith(f"{path}: record 12 (id 'x'): field {field}: "), message
    assert words in message, message
    assert "\n" not in message
    assert isinstance(err.value, RecordError) and err.value.reason == reason and err.value.index == 12

    got, report = read_dataset(path, skip_bad=True)
    assert [r["id"] for r in got] == [f"r{i}" for i in range(12)] + ["r13"]
    assert report == {"total": 14, "kept": 13, "skipped": 1, "reasons": {reason: 1}}


def test_wrong_id_type_and_missing_id(root):
    path = _write_json(root / "data.json", [_record(0), {**_record(1), "id": 5}])
    with pytest.raises(ValueError, match=r"data.json: record 1: field 'id': expected a string, got int"):
        read_dataset(path)
    rec = _record(2)
    del rec["id"]
    path = _write_json(root / "data.json", [rec])
    with pytest.raises(ValueError, match=r"data.json: record 0: field 'id': missing"):
        read_dataset(path)


def test_record_that_is_not_an_object(root):
    path = _write_json(root / "data.json", [_record(0), ["not", "a", "record"]])
    with pytest.raises(ValueError, match=r"data.json: record 1: expected a JSON object, got list"):
        read_dataset(path)


def test_duplicate_id(root):
    path = _write_jsonl(root / "data.jsonl", [_record(0), _record(1), _record(0)])
    with pytest.raises(ValueError, match=r"record 2 \(id 'r0'\): field 'id': duplicate"):
        read_dataset(path)
    got, report = read_dataset(path, skip_bad=True)
    assert [r["id"] for r in got] == ["r0", "r1"] and report["reasons"] == {"duplicate id": 1}


def test_invalid_json_line_in_jsonl(root):
    path = root / "data.jsonl"
    path.write_text(json.dumps(_record(0)) + "\n" + '{"id": "r1", "image": [\n' + json.dumps(_record(2)) + "\n")
    with pytest.raises(ValueError, match=r"data.jsonl: record 1 \(line 2: invalid JSON"):
        read_dataset(path)
    got, report = read_dataset(path, skip_bad=True)
    assert [r["id"] for r in got] == ["r0", "r2"]
    assert report == {"total": 3, "kept": 2, "skipped": 1, "reasons": {"invalid json": 1}}


def test_skip_bad_counts_several_reasons(root):
    records = [
        _record(0),
        _bad(CASES["missing image file"][0]),
        {**_record(2), "id": "y"},
        _bad(CASES["too few placeholders"][0]),
        _bad(CASES["missing image file"][0]),
        _bad(CASES["value wrong type"][0]),
    ]
    records[4]["id"] = "z"
    records[5]["id"] = "w"
    got, report = read_dataset(_write_json(root / "data.json", records), skip_bad=True)
    assert [r["id"] for r in got] == ["r0", "y"]
    assert report == {"total": 6, "kept": 2, "skipped": 4,
                      "reasons": {"image not found": 2, "placeholder mismatch": 1, "wrong type": 1}}


def test_whole_file_errors(root):
    path = root / "data.json"
    path.write_text('[{"id": "a",')
    with pytest.raises(ValueError, match=r"data.json: invalid JSON at line 1"):
        read_dataset(path, skip_bad=True)
    path.write_text(json.dumps({"id": "a"}))
    with pytest.raises(ValueError, match=r"data.json: expected a JSON list of records, got object"):
        read_dataset(path)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        read_dataset(root / "nope.json")


def test_verify_images_decodes(root):
    rec = _record(0, images=("imgs/a.png", "imgs/broken.png"))
    path = _write_json(root / "data.json", [rec, _record(1)])
    assert read_dataset(path)[1]["kept"] == 2  # existence only by default
    with pytest.raises(ValueError, match=r"record 0 \(id 'r0'\): field 'image'\[1\]: unreadable"):
        read_dataset(path, verify_images=True)
    assert read_dataset(path, verify_images=True, skip_bad=True)[1]["reasons"] == {"image unreadable": 1}


def test_validate_record_without_files_and_input_untouched():
    rec = _record(0, images=())
    rec["image"] = "x.png"
    rec["conversations"][0]["value"] = "<image> what?"
    before = copy.deepcopy(rec)
    out = validate_record(rec, 3, source="mine")
    assert out["image"] == ["x.png"] and rec == before
    with pytest.raises(RecordError, match=r"^mine: record 3 \(id 'r0'\): field 'image'\[0\]: file not found"):
        validate_record(rec, 3, source="mine", image_root="/nonexistent-root")


# --------------------------------------------------------------------------------------------- writing, datasets


def test_write_dataset_round_trip(root):
    records = [_record(i) for i in range(3)]
    records[0]["meta"] = {"caption": "Ünïcode ✓", "nested": {"a": [1, 2]}}
    for name in ("out.jsonl", "out.json"):
        path = write_dataset(records, root / name)
        assert read_dataset(path)[0] == records
    text = (root / "out.jsonl").read_text(encoding="utf-8")
    assert text.splitlines()[0] == dumps_record(records[0]) and "✓" in text
    assert json.loads((root / "out.json").read_text(encoding="utf-8")) == records


def test_dumps_record_handles_numpy():
    import numpy as np

    line = dumps_record({"id": "a", "meta": {"n": np.int64(3), "x": np.float32(0.5), "v": np.arange(2),
                                              "s": {"b", "a"}}})
    assert json.loads(line) == {"id": "a", "meta": {"n": 3, "x": 0.5, "v": [0, 1], "s": ["a", "b"]}}


def test_to_hf_dataset(root):
    datasets = pytest.importorskip("datasets")
    records, _ = read_dataset(_write_json(root / "data.json", [_record(i) for i in range(3)]))
    ds = to_hf_dataset(records, root)
    assert isinstance(ds, datasets.Dataset)
    assert set(ds.column_names) == {"id", "images", "conversations", "meta"} and len(ds) == 3
    row = ds[1]
    assert row["id"] == "r1"
    assert row["images"] == [str((root / "imgs" / "a.png").resolve()), str((root / "imgs" / "b.png").resolve())]
    assert row["conversations"][1] == {"from": "gpt", "value": "Answer 1."}
    assert json.loads(row["meta"]) == {"i": 1}


@pytest.mark.parametrize("name", ["data.jsonl", "data.json"])
def test_datasets_load_dataset_reads_what_write_dataset_writes(root, tmp_path_factory, name):
    datasets = pytest.importorskip("datasets")
    records = [_record(i) for i in range(4)]
    records[2]["meta"] = {"i": 2, "axes": ["count", "colour"]}  # keys differ between records
    path = write_dataset(records, root / name)
    ds = datasets.load_dataset("json", data_files=str(path), split="train",
                               cache_dir=str(tmp_path_factory.mktemp("hf_cache")))
    assert ds["id"] == [r["id"] for r in records]
    assert ds["image"][0] == ["imgs/a.png", "imgs/b.png"]
    assert ds["conversations"][3] == records[3]["conversations"]


# --------------------------------------------------------------------------------------------- other conventions


def _turns(*pairs):
    return [dict(p) for p in pairs]


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_user_assistant_roles_are_normalised(root, suffix):
    sharegpt = _record(0, conversations=_turns({"from": "user", "value": PROMPT},
                                               {"from": "assistant", "value": "Both are squares.", "weight": 1}))
    openai = _record(1, conversations=_turns({"role": "user", "content": PROMPT},
                                             {"role": "assistant", "content": "Both are squares."},
                                             {"role": "user", "content": "Which is red?"},
                                             {"role": "assistant", "content": "Image 1."}))
    path = root / f"data{suffix}"
    (_write_json if suffix == ".json" else _write_jsonl)(path, [sharegpt, openai, _record(2)])
    got, report = read_dataset(path)
    assert report["kept"] == 3
    assert got[0]["conversations"] == [{"from": "human", "value": PROMPT},
                                       {"from": "gpt", "value": "Both are squares.", "weight": 1}]
    assert [t["from"] for t in got[1]["conversations"]] == ["human", "gpt", "human", "gpt"]
    assert all(set(t) == {"from", "value"} for t in got[1]["conversations"])
    assert got[1]["conversations"][3]["value"] == "Image 1."
    assert got[2] == _record(2)  # LLaVA's own form is untouched


def test_text_only_records_are_accepted(root):
    text = [{"from": "human", "value": "What is 2 + 2?"}, {"from": "gpt", "value": "4."}]
    no_key = {"id": "t0", "conversations": text}
    empty = {"id": "t1", "image": [], "conversations": text}
    null = {"id": "t2", "image": None, "conversations": text}
    got, report = read_dataset(_write_jsonl(root / "data.jsonl", [no_key, _record(0), empty, null]),
                               verify_images=True)
    assert report == {"total": 4, "kept": 4, "skipped": 0, "reasons": {}}
    assert [r["image"] for r in got] == [[], ["imgs/a.png", "imgs/b.png"], [], []]
    assert validate_record(no_key) == {**no_key, "image": []}


def test_text_only_record_with_a_placeholder_is_an_error(root):
    rec = {"id": "t", "conversations": [{"from": "human", "value": "<image> what?"}, {"from": "gpt", "value": "x"}]}
    path = _write_jsonl(root / "data.jsonl", [rec])
    with pytest.raises(RecordError, match=r"data.jsonl: record 0 \(id 't'\): field 'image': 0 image\(s\) but 1"):
        read_dataset(path)


# --------------------------------------------------------------------------------------------- nothing to read


@pytest.mark.parametrize("name, text", [("data.jsonl", ""), ("data.jsonl", "\n  \n"), ("data.json", "[]")])
def test_an_empty_data_set_is_an_error(root, name, text):
    path = root / name
    path.write_text(text)
    for skip_bad in (False, True):
        with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: no records \(the file is empty\)$"):
            read_dataset(path, skip_bad=skip_bad)


def test_skip_bad_with_every_record_bad_is_an_error(root):
    records = [_bad(CASES["missing image file"][0]), {**_bad(CASES["value wrong type"][0]), "id": "y"}]
    path = _write_jsonl(root / "data.jsonl", records)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: no valid records: all 2 skipped "
                                         r"\(image not found: 1, wrong type: 1\)$"):
        read_dataset(path, skip_bad=True)


# --------------------------------------------------------------------------------------------- directories


def test_a_directory_names_its_data_jsonl(root):
    """What `mmlink synth --out DIR` leaves: data.jsonl, its data.json twin and object-valued JSON beside them."""
    _write_jsonl(root / "data.jsonl", [_record(0), _record(1)])
    _write_json(root / "data.json", [_record(0)])
    (root / "synth.json").write_text(json.dumps({"task": "x"}))
    (root / "report.json").write_text(json.dumps({"n": 2}))
    assert resolve_data_path(root) == root / "data.jsonl"
    got, report = read_dataset(root)
    assert [r["id"] for r in got] == ["r0", "r1"] and report["kept"] == 2  # images relative to the directory
    (root / "data.jsonl").unlink()
    assert resolve_data_path(root) == root / "data.json"


@pytest.mark.parametrize("name", ["mine.jsonl", "mine.json"])
def test_a_directory_with_one_data_file(root, name):
    path = (_write_jsonl if name.endswith("l") else _write_json)(root / name, [_record(0)])
    (root / "synth.json").write_text(json.dumps({"task": "x"}))  # an object: not data
    (root / ".mine.jsonl.123.tmp").write_text("")  # an atomic write's leftover
    assert resolve_data_path(root) == path
    assert read_dataset(root)[0] == [_record(0)]


def test_a_directory_without_one_data_file_is_an_error(root, tmp_path_factory):
    at = re.escape(str(root))
    with pytest.raises(FileNotFoundError, match=rf"^{at}: a directory without data: expected data.jsonl"):
        resolve_data_path(root)
    _write_jsonl(root / "a.jsonl", [_record(0)])
    _write_json(root / "b.json", [_record(1)])
    with pytest.raises(ValueError, match=rf"^{at}: several data files \(a.jsonl, b.json\) and no data.jsonl"):
        read_dataset(root)
    with pytest.raises(FileNotFoundError, match="nope: no such file or directory"):
        read_dataset(root / "nope")


# --------------------------------------------------------------------------------------------- saved 🤗 data sets


def _png(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="JPEG")
    return buf.getvalue()


def _embedded_dataset(datasets, rows):
    features = datasets.Features({
        "id": datasets.Value("string"),
        "image": datasets.List(datasets.Image()),
        "conversations": datasets.List({"from": datasets.Value("string"), "value": datasets.Value("string")}),
    })
    return datasets.Dataset.from_dict({k: [r[k] for r in rows] for k in features}, features=features)


def test_saved_dataset_round_trip_of_to_hf_dataset(root, tmp_path_factory):
    datasets = pytest.importorskip("datasets")
    records = [_record(i) for i in range(3)]
    records[1] = {"id": "text", "conversations": _turns({"from": "human", "value": "Hi?"},
                                                        {"from": "gpt", "value": "Hello."})}
    saved = tmp_path_factory.mktemp("hf") / "set"
    to_hf_dataset(records, root).save_to_disk(str(saved))
    assert resolve_data_path(saved) == saved
    got, report = read_dataset(saved)
    assert report == {"total": 3, "kept": 3, "skipped": 0, "reasons": {}}
    assert got[0]["image"] == [str((root / "imgs" / "a.png").resolve()), str((root / "imgs" / "b.png").resolve())]
    assert got[0]["meta"] == {"i": 0} and got[1]["image"] == [] and got[1]["meta"] == {}
    assert got[2]["conversations"] == records[2]["conversations"]
    assert not (saved / ".mmlink-images").exists()  # paths only: nothing written


def test_saved_dataset_with_embedded_images(tmp_path):
    datasets = pytest.importorskip("datasets")
    red, blue = _png((200, 0, 0)), _jpeg((0, 0, 200))
    rows = [
        {"id": "two", "image": [{"bytes": red, "path": None}, {"bytes": blue, "path": None}],
         "conversations": [{"from": "user", "value": "<image> and <image>?"},
                           {"from": "assistant", "value": "Red, blue."}]},
        {"id": "text", "image": [], "conversations": [{"from": "human", "value": "Hi?"},
                                                     {"from": "gpt", "value": "Hello."}]},
        {"id": "again", "image": [{"bytes": red, "path": None}],
         "conversations": [{"from": "human", "value": "<image> colour?"}, {"from": "gpt", "value": "Red."}]},
    ]
    saved = tmp_path / "set"
    _embedded_dataset(datasets, rows).save_to_disk(str(saved))
    got, report = read_dataset(saved, verify_images=True)
    assert report["kept"] == 3
    cache = (saved / ".mmlink-images").resolve()
    assert sorted(p.suffix for p in cache.iterdir()) == [".jpg", ".png"]  # the same red image once
    assert got[0]["image"][0] == got[2]["image"][0] and Path(got[0]["image"][0]).parent == cache
    assert Path(got[0]["image"][1]).read_bytes() == blue
    assert got[0]["conversations"][0] == {"from": "human", "value": "<image> and <image>?"}
    assert got[1]["image"] == []
    stamps = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert read_dataset(saved)[0] == got
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == stamps  # written once

    elsewhere = tmp_path / "cache"
    got, _ = read_dataset(saved, image_cache=elsewhere)
    assert Path(got[0]["image"][0]).parent == elsewhere.resolve()


def test_saved_dataset_in_a_read_only_place_caches_under_mmlink_cache(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    import mmlink.data.formats as formats

    rows = [{"id": "a", "image": [{"bytes": _png((1, 2, 3)), "path": None}],
             "conversations": [{"from": "human", "value": "<image> ?"}, {"from": "gpt", "value": "x"}]}]
    saved = tmp_path / "set"
    _embedded_dataset(datasets, rows).save_to_disk(str(saved))
    monkeypatch.setenv("MMLINK_CACHE", str(tmp_path / "mmlink"))
    monkeypatch.setattr(formats, "_writable_dir", lambda path: False)
    got, _ = read_dataset(saved)
    assert Path(got[0]["image"][0]).parent == (tmp_path / "mmlink" / "hf-images").resolve()


def test_saved_dataset_dict_and_bad_rows(tmp_path):
    datasets = pytest.importorskip("datasets")
    good = {"id": "g", "image": [{"bytes": _png((9, 9, 9)), "path": None}],
            "conversations": [{"from": "human", "value": "<image> ?"}, {"from": "gpt", "value": "grey"}]}
    broken = {**good, "id": "b", "image": [{"bytes": _png((1, 1, 1)), "path": None},
                                           {"bytes": b"\x89PNG\r\n\x1a\n not a png", "path": None}]}
    ds = _embedded_dataset(datasets, [good, broken])
    one = tmp_path / "one"
    datasets.DatasetDict({"train": ds}).save_to_disk(str(one))
    with pytest.raises(RecordError, match=rf"^{re.escape(str(one))}: record 1 \(id 'b'\): field 'image'\[1\]: "
                                          "unreadable embedded"):
        read_dataset(one)
    got, report = read_dataset(one, skip_bad=True)
    assert [r["id"] for r in got] == ["g"] and report["reasons"] == {"image unreadable": 1}

    two = tmp_path / "two"
    datasets.DatasetDict({"train": ds, "val": ds.select([0])}).save_to_disk(str(two))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(two))}: a saved DatasetDict with splits train, val; "
                                         "name one"):
        read_dataset(two)
    assert [r["id"] for r in read_dataset(two / "val")[0]] == ["g"]

    empty = tmp_path / "empty"
    ds.select([]).save_to_disk(str(empty))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(empty))}: no records \(the data set has no rows\)"):
        read_dataset(empty)
