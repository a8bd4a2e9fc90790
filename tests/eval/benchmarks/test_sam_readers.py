"""Readers of SAM's evaluation sets (`mmlink.eval.benchmarks.sam`) on tiny fixtures in each released format.

Formats, from the authors' releases (see each reader's docstring):
  VIST SIS json          — visionandlanguage.net/VIST; grouping as github.com/windx0303/VIST-Challenge-NAACL-2018
  Spot-the-Diff          — github.com/harsh19/spot-the-diff data/annotations/*.json; refs as CLIP4IDC's reformat
  CLEVR-Change           — github.com/Seth-Park/RobustChangeCaptioning (tarball data/, evaluate.py)
  Birds-to-Words         — github.com/google-research-datasets/birds-to-words README (11-column TSV)
  Image Editing Request  — github.com/airsplay/VisualRelationships dataset/adobe/*.json, src/evaluate.py
  group_caption_data     — mmlink's own documented format
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from mmlink.eval.benchmarks import sam
from mmlink.eval.tasks import EVAL_TASKS

NAMES = ("vist", "spot_the_diff", "clevr_change", "birds_to_words", "image_editing_request", "group_caption_data")


def _png(path: Path, color=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), color).save(path)
    return path


def _json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def _items(name: str, records: list[dict]):
    return [item for r in records for item in EVAL_TASKS.get(name).build_items(r)]


def test_tasks_are_registered_with_their_readers():
    for name in NAMES:
        task = EVAL_TASKS.get(name)
        assert task.kind == "generate" and task.reader is not None and task.splits[0] == "test"
        assert task.layout and task.source and "SAM Table" in task.description
    assert EVAL_TASKS.get("vist").max_new_tokens == 160
    assert EVAL_TASKS.get("group_caption").world_task == "group_caption"  # the world task stays separate


# --------------------------------------------------------------------------------------------- VIST


def _storylet(story, album, photo, order, text, storylet):
    return [{"original_text": text.capitalize(), "album_id": album, "photo_flickr_id": photo,
             "setting": "first-2-pick-and-tell", "worker_id": "W1", "story_id": story, "tier": "story-in-sequence",
             "worker_arranged_photo_order": order, "text": text, "storylet_id": storylet}]


def _vist(root: Path) -> Path:
    seq_a, seq_b, seq_c = [f"a{k}" for k in range(5)], [f"b{k}" for k in range(5)], [f"c{k}" for k in range(5)]
    anns = []
    for k, p in enumerate(seq_a):
        anns.append(_storylet("10", "al1", p, k, f"[male] went to place {k} .", str(100 + k)))
    for k, p in reversed(list(enumerate(seq_a))):  # listed out of order: the reader sorts by worker order
        anns.append(_storylet("11", "al1", p, k, f"we saw thing {k} .", str(200 + k)))
    for k, p in enumerate(seq_b):
        anns.append(_storylet("12", "al2", p, k, f"b story {k} .", str(300 + k)))
    for k, p in enumerate(seq_c):
        anns.append(_storylet("13", "al3", p, k, f"c story {k} .", str(400 + k)))
    data = {"info": {}, "type": "sis", "albums": [{"id": "al1"}], "images": [{"id": p} for p in seq_a],
            "annotations": anns}
    _json(root / "sis" / "test.story-in-sequence.json", data)
    for p in seq_a:
        _png(root / "images" / "test" / f"{p}.jpg")
    for p in seq_b[:4]:  # b4 was never distributed: its sequence is left out
        _png(root / "images" / "test" / f"{p}.jpg")
    for p in seq_c:
        _png(root / "images" / "test" / f"{p}.png")
    return root


def test_vist_groups_stories_by_photo_sequence(tmp_path):
    root = _vist(tmp_path / "vist")
    with pytest.warns(UserWarning, match="1 of 3 photo sequence"):
        records = sam.read_vist(root, "test", tmp_path / "cache")
    assert [r["id"] for r in records] == ["a0_a1_a2_a3_a4", "c0_c1_c2_c3_c4"]
    a = records[0]
    assert [Path(p).name for p in a["image"]] == [f"a{k}.jpg" for k in range(5)]
    assert all(Path(p).is_absolute() and Path(p).is_file() for r in records for p in r["image"])
    assert a["meta"]["refs"] == [" ".join(f"[male] went to place {k} ." for k in range(5)),
                                 " ".join(f"we saw thing {k} ." for k in range(5))]
    assert a["meta"]["original_refs"][1].startswith("We saw thing 0 .")
    assert a["meta"]["story_ids"] == ["10", "11"] and a["meta"]["album_id"] == "al1"
    prompt = a["conversations"][0]["value"]
    assert prompt.startswith("Image 1: <image>\nImage 2: <image>") and prompt.count("<image>") == 5
    assert prompt.endswith(sam.STORY_PROMPT)
    items = _items("vist", records)
    assert len(items) == 2 and items[0].refs == a["meta"]["refs"] and len(items[1].images) == 5


def test_vist_errors_name_file_record_field(tmp_path):
    root = _vist(tmp_path / "vist")
    path = root / "sis" / "test.story-in-sequence.json"
    data = json.loads(path.read_text())
    data["annotations"][3][0]["worker_arranged_photo_order"] = "3"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"test\.story-in-sequence\.json.*story 10.*worker_arranged_photo_order"):
        sam.read_vist(root, "test", tmp_path / "cache")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        sam.read_vist(root, "dev", tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="story-in-sequence"):
        sam.read_vist(root, "val", tmp_path / "cache")


# --------------------------------------------------------------------------------------------- Spot-the-Diff


def _spot(root: Path) -> Path:
    _json(root / "annotations" / "test.json", [
        {"img_id": "256", "sentences": ["person with umbrella is gone", "person with red coat is moved"]},
        {"img_id": "294", "sentences": ["there is a red car that is not in the left image"]},
        {"img_id": "256", "sentences": ["car up at top to left is now missing", ""]},
        {"img_id": "187", "sentences": [""]},
    ])
    for name in ("256", "256_2", "294", "294_2", "187", "187_2"):
        _png(root / "resized_images" / f"{name}.png")
    _png(root / "resized_images" / "256_diff.jpg")
    return root


def test_spot_the_diff_merges_sentences_of_a_pair_as_references(tmp_path):
    root = _spot(tmp_path / "spot")
    with pytest.warns(UserWarning, match="1 image pair"):
        records = sam.read_spot_the_diff(root, "test", tmp_path / "cache")
    assert [r["id"] for r in records] == ["256", "294"]
    r = records[0]
    assert [Path(p).name for p in r["image"]] == ["256.png", "256_2.png"]
    assert r["meta"]["refs"] == ["person with umbrella is gone", "person with red coat is moved",
                                 "car up at top to left is now missing"]
    assert r["conversations"][0]["value"] == "Image 1: <image>\nImage 2: <image>\n" + sam.CHANGE_PROMPT
    items = _items("spot_the_diff", records)
    assert items[0].refs == r["meta"]["refs"] and items[1].refs == ["there is a red car that is not in the left image"]


def test_spot_the_diff_errors(tmp_path):
    root = _spot(tmp_path / "spot")
    _json(root / "annotations" / "test.json", [{"img_id": "294", "sentences": "a red car"}])
    with pytest.raises(ValueError, match=r"test\.json.*'294'.*'sentences'.*must be list"):
        sam.read_spot_the_diff(root, "test", tmp_path / "cache")
    _json(root / "annotations" / "test.json", [{"img_id": "999", "sentences": ["gone"]}])
    with pytest.raises(ValueError, match=r"test\.json.*'999'.*'img_id'.*999\.png"):
        sam.read_spot_the_diff(root, "test", tmp_path / "cache")


# --------------------------------------------------------------------------------------------- CLEVR-Change


def _clevr(root: Path, n_test: int = 2) -> Path:
    data = root / "data"  # the tarball extracts to data/
    scenes = range(2 + n_test)
    _json(data / "splits.json", {"train": [0], "val": [1], "test": list(scenes)[2:]})
    change = {f"CLEVR_default_{n:06d}.png": [f"the cube changed {n}", f"the cube became red {n}"] for n in scenes}
    nochange = {f"CLEVR_default_{n:06d}.png": ["nothing has changed", "the scene remains the same"] for n in scenes}
    _json(data / "change_captions.json", change)
    _json(data / "no_change_captions.json", nochange)
    _json(data / "type_mapping.json", {"color": ["000002.png"], "move": ["000003.png"]})
    for n in scenes:
        _png(data / "images" / f"CLEVR_default_{n:06d}.png")
        _png(data / "sc_images" / f"CLEVR_semantic_{n:06d}.png", (0, 0, 200))
        _png(data / "nsc_images" / f"CLEVR_nonsemantic_{n:06d}.png", (0, 200, 0))
    return root


def test_clevr_change_gives_change_and_distractor_pairs(tmp_path):
    root = _clevr(tmp_path / "clevr")
    records = sam.read_clevr_change(root, "test", tmp_path / "cache")
    assert [r["id"] for r in records] == ["000002", "000002_n", "000003", "000003_n"]
    sc, nsc = records[0], records[1]
    assert [Path(p).name for p in sc["image"]] == ["CLEVR_default_000002.png", "CLEVR_semantic_000002.png"]
    assert [Path(p).name for p in nsc["image"]] == ["CLEVR_default_000002.png", "CLEVR_nonsemantic_000002.png"]
    assert sc["meta"] == {"refs": ["the cube changed 2", "the cube became red 2"], "change": True, "scene": 2,
                          "change_type": "color", "category": "color"}
    assert nsc["meta"]["change"] is False and nsc["meta"]["change_type"] == nsc["meta"]["category"] == "no_change"
    assert nsc["meta"]["refs"] == ["nothing has changed", "the scene remains the same"]
    assert records[2]["meta"]["change_type"] == "move"
    assert [r["id"] for r in sam.read_clevr_change(root / "data", "val", tmp_path / "cache")] == ["000001",
                                                                                                "000001_n"]
    assert len(_items("clevr_change", records)) == 4


def test_clevr_change_errors(tmp_path):
    root = _clevr(tmp_path / "clevr")
    path = root / "data" / "change_captions.json"
    data = json.loads(path.read_text())
    del data["CLEVR_default_000003.png"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"change_captions\.json.*CLEVR_default_000003\.png.*is missing"):
        sam.read_clevr_change(root, "test", tmp_path / "cache")
    _json(root / "data" / "splits.json", {"test": [2, "x"]})
    with pytest.raises(ValueError, match=r"splits\.json.*test\[1\].*scene indices"):
        sam.read_clevr_change(root, "test", tmp_path / "cache")


# --------------------------------------------------------------------------------------------- Birds-to-Words


def _url(pid: int) -> str:
    return f"https://static.inaturalist.org/photos/{pid}/medium.jpg?1490648345"


def _row(p1: int, p2: int, split: str, ann: int, text: str) -> str:
    cols = [f"https://www.inaturalist.org/observations/{p1 + 7}", _url(p1), "Colinus virginianus", "base",
            f"https://www.inaturalist.org/observations/{p2 + 7}", _url(p2), "Cyanocorax yncas", "visual",
            split, str(ann), text]
    return "\t".join(cols)


def _birds(root: Path, extra: str = "") -> Path:
    lines = ["\t".join(sam.BIRDS_COLUMNS),
             _row(647514, 5595152, "test", 1, "animal1 is brown and white . animal2 is multi-colored ."),
             _row(647514, 5595152, "test", 2, '"animal1" has a brown head and wings .'),
             _row(1111, 2222, "test", 1, "animal1 is much smaller ."),
             _row(3333, 4444, "train", 1, "animal2 has a longer tail .")]
    root.mkdir(parents=True, exist_ok=True)
    (root / "birds-to-words-v1.0.tsv").write_text("\n".join(lines + ([extra] if extra else [])) + "\n")
    for pid in (647514, 5595152, 1111, 2222):
        _png(root / "images" / f"{pid}.jpg")
    return root


def test_birds_to_words_groups_descriptions_of_a_pair(tmp_path):
    root = _birds(tmp_path / "birds")
    records = sam.read_birds_to_words(root, "test", tmp_path / "cache")
    assert [r["id"] for r in records] == ["647514_5595152", "1111_2222"]
    r = records[0]
    assert [Path(p).name for p in r["image"]] == ["647514.jpg", "5595152.jpg"]
    assert r["meta"]["refs"] == ["animal1 is brown and white . animal2 is multi-colored .",
                                 '"animal1" has a brown head and wings .']
    assert r["meta"]["species"] == ["Colinus virginianus", "Cyanocorax yncas"]
    assert "animal1" in r["conversations"][0]["value"] and r["conversations"][0]["value"].count("<image>") == 2
    assert _items("birds_to_words", records)[1].refs == ["animal1 is much smaller ."]


def test_birds_to_words_errors(tmp_path):
    bad = _row(1, 2, "test", 1, "x").replace(_url(1), "https://example.org/bird.jpg")
    root = _birds(tmp_path / "birds", extra=bad)
    with pytest.raises(ValueError, match=r"birds-to-words-v1\.0\.tsv.*line 6.*img1ImgURL"):
        sam.read_birds_to_words(root, "test", tmp_path / "cache")
    root = _birds(tmp_path / "birds2", extra=_row(5, 6, "test", 1, "animal1 is red ."))
    with pytest.raises(ValueError, match=r"line 6.*img1ImgURL.*photo 5"):
        sam.read_birds_to_words(root, "test", tmp_path / "cache")


# --------------------------------------------------------------------------------------------- Image Editing Request


def _ier(root: Path) -> Path:
    _json(root / "test.json", [
        {"img0": "Reddit.com_4wfxf2_4wfxf2.jpg", "img1": "Reddit.com_4wfxf2_d66nm3m_2.jpg",
         "sents": ["take the people out of the back in the photo", "Remove the two people behind the woman",
                   "remove people behind the couple in the centre"], "uid": "Reddit_1052"},
        {"img0": "Reddit.com_5qc6xh_5qc6xh.jpg", "img1": "Reddit.com_5qc6xh_dcy3qw5.png",
         "sents": ["add middle finger emoji to nose", "Insert the hand onto the top of the boys nose",
                   "add a middle finger on boy's nose"], "uid": "Reddit_1409"},
        {"img0": "Reddit.com_5qc6xh_5qc6xh.jpg", "img1": "Reddit.com_5qc6xh_dcy3qw5.png",
         "sents": ["Put a hand with a middle finger here on his nose", "Insert the hand onto the top of the boys "
                   "nose", "add a middle finger on boy's nose"], "uid": "Reddit_1444"},
    ])
    for name in ("Reddit.com_4wfxf2_4wfxf2.jpg", "Reddit.com_4wfxf2_d66nm3m_2.jpg", "Reddit.com_5qc6xh_5qc6xh.jpg",
                 "Reddit.com_5qc6xh_dcy3qw5.png"):
        _png(root / "images" / name)
    return root


def test_image_editing_request_one_item_per_uid(tmp_path):
    root = _ier(tmp_path / "ier")
    records = sam.read_image_editing_request(root, "test", tmp_path / "cache")
    assert [r["id"] for r in records] == ["Reddit_1052", "Reddit_1409", "Reddit_1444"]
    assert [Path(p).name for p in records[1]["image"]] == ["Reddit.com_5qc6xh_5qc6xh.jpg",
                                                           "Reddit.com_5qc6xh_dcy3qw5.png"]
    assert records[0]["meta"]["refs"][1] == "Remove the two people behind the woman"
    assert records[0]["conversations"][1]["value"] == "take the people out of the back in the photo"
    assert len(_items("image_editing_request", records)) == 3
    with pytest.raises(ValueError, match="unknown split 'val'.*valid"):
        sam.read_image_editing_request(root, "val", tmp_path / "cache")


def test_image_editing_request_errors(tmp_path):
    root = _ier(tmp_path / "ier")
    data = json.loads((root / "test.json").read_text())
    data[1]["sents"] = "add a cap"
    _json(root / "test.json", data)
    with pytest.raises(ValueError, match=r"test\.json.*Reddit_1409.*'sents'.*must be list"):
        sam.read_image_editing_request(root, "test", tmp_path / "cache")


# --------------------------------------------------------------------------------------------- group captions


def _groups(root: Path) -> Path:
    for g, n in (("g1", 3), ("g2", 2)):
        for k in range(n):
            _png(root / "imgs" / g / f"{k}.png", (40 * k, 90, 90))
    lines = [{"id": "g1", "images": [f"imgs/g1/{k}.png" for k in range(3)], "captions": ["dogs at the beach",
                                                                                       "a dog on sand"]},
             {"id": 2, "images": ["imgs/g2/0.png", str((root / "imgs" / "g2" / "1.png").resolve())],
              "captions": ["red cars"]}]
    (root / "test.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return root


def test_group_caption_data(tmp_path):
    root = _groups(tmp_path / "groups")
    records = sam.read_group_caption_data(root, "test", tmp_path / "cache")
    assert [r["id"] for r in records] == ["g1", "2"]
    assert all(Path(p).is_file() for r in records for p in r["image"])
    assert records[0]["conversations"][0]["value"].count("<image>") == 3
    assert records[0]["meta"]["refs"] == ["dogs at the beach", "a dog on sand"]
    assert _items("group_caption_data", records)[1].refs == ["red cars"]
    (root / "test.jsonl").write_text(json.dumps({"id": "g3", "images": ["imgs/g2/0.png", "imgs/g2/1.png"]}) + "\n")
    with pytest.raises(ValueError, match=r"test\.jsonl.*'g3'.*'captions'.*missing"):
        sam.read_group_caption_data(root, "test", tmp_path / "cache")


# --------------------------------------------------------------------------------------------- end to end


def test_eval_clevr_change_end_to_end(tmp_path):
    from mmlink.cli import main

    # 5 test scenes -> 10 items: CIDEr's IDF needs a whole set (the harness refuses fewer than 10 items)
    root, out = _clevr(tmp_path / "clevr", n_test=5), tmp_path / "run"
    assert main(["eval", "--model", "tiny", "--task", "clevr_change", "--data-root", str(root), "--out", str(out),
                 "--max-new-tokens", "4", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())["tasks"]["clevr_change"]
    assert metrics["n"] == 10
    assert {"BLEU-4", "ROUGE-L", "CIDEr"} <= set(metrics["metrics"])
