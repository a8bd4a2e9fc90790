"""mmlink.eval.benchmarks.base: the helpers every released-data reader uses, and their errors, which name the file,
the record and the field (and, for a missing file, the layout expected)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from mmlink.eval.benchmarks import base
from mmlink.eval.benchmarks.base import DataError


def test_fail_names_file_record_and_field():
    err = base.fail(Path("/d/x.json"), 7, "answers", "must be a list")
    assert isinstance(err, DataError) and isinstance(err, ValueError)
    assert str(err) == "/d/x.json: record 7: field 'answers' must be a list"


def test_find_file_tries_candidates_and_globs_in_order(tmp_path):
    (tmp_path / "b.json").write_text("{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "z-2.json").write_text("{}")
    (tmp_path / "sub" / "z-1.json").write_text("{}")
    (tmp_path / "dir.json").mkdir()  # a directory is no file
    assert base.find_file(tmp_path, ["a.json", "dir.json", "b.json"], "L") == tmp_path / "b.json"
    assert base.find_file(tmp_path, ["sub/z-*.json", "b.json"], "L") == tmp_path / "sub" / "z-1.json"  # sorted
    with pytest.raises(FileNotFoundError, match=r"none of a\.json, c/\*\.json found \(expected layout: ROOT/a\.json\)"):
        base.find_file(tmp_path, ["a.json", "c/*.json"], "ROOT/a.json")
    with pytest.raises(FileNotFoundError, match=r"missing: no such directory \(expected layout: ROOT/a\.json\)"):
        base.find_file(tmp_path / "missing", ["a.json"], "ROOT/a.json")


def test_read_json_and_jsonl_name_the_file_and_line(tmp_path):
    good = tmp_path / "a.json"
    good.write_text('{"x": [1, 2]}', encoding="utf-8")
    assert base.read_json(good) == {"x": [1, 2]}
    good.write_text("{x", encoding="utf-8")
    with pytest.raises(DataError, match=r"a\.json: not valid JSON"):
        base.read_json(good)
    lines = tmp_path / "a.jsonl"
    lines.write_text('{"a": 1}\n\n  \n{"a": 2}\n', encoding="utf-8")
    assert base.read_jsonl(lines) == [(1, {"a": 1}), (4, {"a": 2})]  # blank lines skipped, numbers kept
    lines.write_text('{"a": 1}\n{"a": \n', encoding="utf-8")
    with pytest.raises(DataError, match=r"a\.jsonl: line 2: not valid JSON"):
        base.read_jsonl(lines)


def test_get_checks_presence_type_and_emptiness():
    rec = {"q": "What?", "n": 3, "flag": True, "opts": [], "blank": "  ", "none": None, "f": 1.5}
    assert base.get(rec, "q", "f.json", 1) == "What?"
    assert base.get(rec, "n", "f.json", 1, int) == 3
    assert base.get(rec, "f", "f.json", 1, (int, float)) == 1.5
    assert base.get(rec, "opts", "f.json", 1, list, nonempty=False) == []
    assert base.get(rec, "flag", "f.json", 1, bool) is True
    cases = [("missing", str, "field 'missing' is missing"), ("none", str, "field 'none' is missing"),
             ("n", str, "field 'n' must be str, got int 3"), ("flag", int, "field 'flag' must be int, got bool True"),
             ("opts", list, "field 'opts' is empty"), ("blank", str, "field 'blank' is empty"),
             ("q", (int, float), "field 'q' must be int or float, got str 'What\\?'")]
    for key, kind, message in cases:
        with pytest.raises(DataError, match=rf"^f\.json: record 1: {message}"):
            base.get(rec, key, "f.json", 1, kind)
    with pytest.raises(DataError, match="f.json: record 'r9' must be an object, got list"):
        base.get([1], "q", "f.json", "r9")
    with pytest.raises(DataError, match=r"got str 'aaaaaaaaa.*\.\.\.$"):  # long values are shortened
        base.get({"k": "a" * 100}, "k", "f.json", 1, int)


def test_image_file_tries_the_suffixes_and_names_what_it_looked_for(tmp_path):
    (tmp_path / "img1.png").write_bytes(b"x")
    assert base.image_file(tmp_path, "img1", "d.json", 3, "image", (".jpg", ".png")) == str(
        (tmp_path / "img1.png").resolve())
    assert base.image_file(tmp_path, "img1.png", "d.json", 3, "image") == str((tmp_path / "img1.png").resolve())
    with pytest.raises(DataError, match=r"d\.json: record 3: field 'image' names an image that is not there "
                                        r"\(looked for .*img2\.jpg, .*img2\.png\)"):
        base.image_file(tmp_path, "img2", "d.json", 3, "image", (".jpg", ".png"))


def _png(color=(255, 0, 0)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buf, format="PNG")
    return buf.getvalue()


def test_store_image_writes_each_content_once(tmp_path):
    cache = tmp_path / "cache"
    a = base.store_image({"bytes": _png(), "path": None}, cache, "d.parquet", 0, "image")
    assert Path(a).read_bytes() == _png() and Path(a).suffix == ".png" and Path(a).is_absolute()
    assert base.store_image(_png(), cache, "d.parquet", 1, "image") == a  # same bytes, same file
    assert base.store_image(bytearray(_png()), cache, "d.parquet", 1, "image") == a
    from_pil = base.store_image(Image.new("RGB", (4, 4), (0, 0, 255)), cache, "d.parquet", 2, "image")
    with Image.open(from_pil) as img:
        assert img.getpixel((0, 0)) == (0, 0, 255)
    assert len(list(cache.iterdir())) == 2
    on_disk = tmp_path / "kept.png"
    on_disk.write_bytes(_png())
    assert base.store_image({"bytes": None, "path": str(on_disk)}, cache, "d", 3, "image") == str(on_disk.resolve())
    for bad in (None, {"bytes": b"", "path": str(tmp_path / "nope.png")}, "img.png"):
        with pytest.raises(DataError, match=r"d\.parquet: record 4: field 'image' holds no image"):
            base.store_image(bad, cache, "d.parquet", 4, "image")


def test_record_prompt_helpers():
    rec = base.record(12, ["/a.png", "/b.png"], base.image_prefix(2) + "Same?", "yes", answer="yes", refs=["yes"])
    assert rec == {"id": "12", "image": ["/a.png", "/b.png"],
                   "conversations": [{"from": "human", "value": "Image 1: <image>\nImage 2: <image>\nSame?"},
                                     {"from": "gpt", "value": "yes"}],
                   "meta": {"answer": "yes", "refs": ["yes"]}}
    assert base.image_prefix(1) == "<image>\n"
    with pytest.raises(AssertionError, match=r"record 'r': 1 placeholder\(s\) for 2 image\(s\)"):
        base.record("r", ["/a", "/b"], "<image> x", "y")


def test_lettered_options_and_answer_letters():
    assert base.lettered(["red", "blue", "green"]) == "(A) red\n(B) blue\n(C) green"
    assert base.lettered([]) == ""
    with pytest.raises(ValueError, match="at most 26 options, got 27"):
        base.lettered(["x"] * 27)
    assert [base.letter_index(a, 4, "f", 1, "answer") for a in ("B", "(c)", " D. ", "a:")] == [1, 2, 3, 0]
    for bad in ("E", "AB", "", "(1)"):
        with pytest.raises(DataError, match=r"f: record 1: field 'answer' must be an option letter among ABCD"):
            base.letter_index(bad, 4, "f", 1, "answer")


def test_check_split_names_the_valid_splits():
    base.check_split("val", ("val", "test"), Path("/data"))
    with pytest.raises(ValueError, match=r"/data: unknown split 'train'; this data set has val, test"):
        base.check_split("train", ("val", "test"), Path("/data"))


def test_hf_rows_from_a_saved_copy_and_its_errors(tmp_path):
    import datasets

    rows = {"question": ["q0", "q1"], "image": [{"bytes": _png(), "path": None}, {"bytes": _png((0, 9, 0)),
                                                                                    "path": None}]}
    features = datasets.Features({"question": datasets.Value("string"), "image": datasets.Image()})
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows, features=features)}).save_to_disk(
        str(tmp_path / "saved"))
    got = list(base.hf_rows(tmp_path / "saved", "test", "L"))
    assert [(s, i, r["question"]) for s, i, r in got] == [(str(tmp_path / "saved"), 0, "q0"),
                                                         (str(tmp_path / "saved"), 1, "q1")]
    assert got[1][2]["image"]["bytes"] == _png((0, 9, 0))  # images stay undecoded
    with pytest.raises(ValueError, match=r"saved data set has no split 'val'; it has test"):
        list(base.hf_rows(tmp_path / "saved", "val", "L"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no parquet files of split 'test' \(expected layout: L\)"):
        list(base.hf_rows(tmp_path / "empty", "test", "L"))
    with pytest.raises(FileNotFoundError, match=r"no such directory \(expected layout: L\)"):
        list(base.hf_rows(tmp_path / "none", "test", "L"))
