"""Readers of CaD-VI's evaluation data (mmlink.eval.benchmarks.cadvi), each on a fixture in its released format.

Formats: CaD-VI's eval files (github.com/wlin-at/CaD-VI eval_json_files/*.jsonl, docs/DATASETS.md; the lines below
copy the form of their first lines); BISON (facebookresearch/binary-image-selection, the fields as read by
HYPJUDY/Sparkles evaluate.py); SVO-Probes (deepmind/svo_probes README and notebook columns); NLVR2
(lil-lab/nlvr nlvr2/README.md, data/test1.json lines); EQBEN's MLLM subset (eqben_vllm/all_select.json as read by
linzhiqiu/t2v_metrics EqBen_Mini); COLA (arijitray1993/COLA data/COLA_multiobjects_matching_benchmark.json);
CaD-QA (huggingface.co/datasets/wlin21at/CaD-Inst card: json_files/CaD_QA_eval.jsonl, CaD_QA_eval parquet).
"""

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from mmlink.eval.benchmarks import cadvi
from mmlink.eval.tasks import EVAL_TASKS

SUITS = ("Image 1: <image>\nImage 2: <image>\nWhich image suits the caption \"{}\" better?\nA. Image 1\nB. Image 2\n"
         "Answer with the option's letter from the given choices directly.")
NLVR2 = ("There are two images, one on the left and one on the right.\nLeft image: <image>\nRight image: <image>\n"
         "Is the statement \"{}\" True or False?\nAnswer with \"True\" or \"False\" directly.")


def _png(path: Path, shade: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (shade % 256, 100, 200)).save(path, format="PNG")
    return path


def _jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _read(task: str, root: Path, split: str | None = None) -> list[dict]:
    spec = EVAL_TASKS.get(task)
    return spec.reader(root, split or spec.splits[0], root / ".cache")


def _check_images(records):
    for r in records:
        assert len(r["image"]) == 2 and all(Path(p).is_absolute() and Path(p).is_file() for p in r["image"])
        assert r["conversations"][0]["value"].count("<image>") == 2


def test_tasks_keep_the_built_in_kinds_and_default_to_cadvis_subsets():
    for name, kind in (("bison", "rank"), ("svo", "rank"), ("nlvr2", "rank"), ("eqben", "pair_match"),
                       ("cola", "pair_match"), ("cad_qa", "judge")):
        task = EVAL_TASKS.get(name)
        assert task.kind == kind and task.reader is not None and task.layout and task.source
        assert task.world_task == name  # still the built-in task, with a reader added
        assert task.splits[0] == ("test" if name == "cad_qa" else "cadvi")
    assert EVAL_TASKS.get("nlvr2").splits[1] == "test1"
    assert EVAL_TASKS.get("eqben").chance == 25.0 and EVAL_TASKS.get("bison").chance == 50.0


# --------------------------------------------------------------------------------------------- BISON


def _bison_cadvi(root: Path) -> None:
    _jsonl(root / "BISON.jsonl", [
        {"image": ["COCO_val2014_000000143961.jpg", "COCO_val2014_000000274538.jpg"],
         "text": SUITS.format("A large group of people lounge on a lawn for an event."), "answer": "A",
         "question_id": 0},
        {"image": ["COCO_val2014_000000216437.jpg", "COCO_val2014_000000252147.jpg"],
         "text": SUITS.format('A runner poses beneath a "Run for Rights" sign.'), "answer": "B", "question_id": 2},
    ])
    for i, n in enumerate((143961, 274538, 216437, 252147)):
        _png(root / "images" / f"COCO_val2014_{n:012d}.jpg", i * 40)


def test_bison_cadvi_subset_keeps_the_authors_prompt_and_letter_answers(tmp_path):
    _bison_cadvi(tmp_path)
    records = _read("bison", tmp_path)
    assert [r["id"] for r in records] == ["0", "2"]
    _check_images(records)
    assert records[0]["image"][0].endswith("images/COCO_val2014_000000143961.jpg")
    assert records[0]["conversations"][0]["value"] == SUITS.format("A large group of people lounge on a lawn for "
                                                                   "an event.")
    assert records[1]["meta"]["text"] == 'A runner poses beneath a "Run for Rights" sign.'  # quotes kept
    assert [r["meta"]["answer"] for r in records] == ["A", "B"]
    items = [it for r in records for it in EVAL_TASKS.get("bison").build_items(r)]
    assert [it.candidates for it in items] == [["A", "B"]] * 2 and [it.answer for it in items] == ["A", "B"]


def test_bison_release_orders_candidates_as_the_file_and_names_a_bad_true_image(tmp_path):
    anno = {"info": {"source": "coco", "split": "val2014"}, "data": [
        {"bison_id": 0, "caption_id": 16037, "caption": "A large group of people lounge on a lawn for an event.",
         "image_candidates": [{"image_id": 143961, "image_filename": "COCO_val2014_000000143961.jpg"},
                              {"image_id": 274538, "image_filename": "COCO_val2014_000000274538.jpg"}],
         "true_image_id": 143961},
        {"bison_id": 1, "caption_id": 1, "caption": "A desk with a bookshelf above it.",
         "image_candidates": [{"image_id": 216437, "image_filename": "COCO_val2014_000000216437.jpg"},
                              {"image_id": 252147, "image_filename": "COCO_val2014_000000252147.jpg"}],
         "true_image_id": 252147}]}
    path = tmp_path / "annotations" / "bison_annotations.cocoval2014.json"
    path.parent.mkdir()
    path.write_text(json.dumps(anno))
    for n in (143961, 274538, 216437, 252147):
        _png(tmp_path / "val2014" / f"COCO_val2014_{n:012d}.jpg")
    records = _read("bison", tmp_path, "val2014")
    assert [(r["id"], r["meta"]["answer"]) for r in records] == [("0", "A"), ("1", "B")]
    assert records[1]["image"][1].endswith("val2014/COCO_val2014_000000252147.jpg")
    # the same question as CaD-VI's line for this caption, word for word
    assert records[0]["conversations"][0]["value"] == SUITS.format(anno["data"][0]["caption"])
    _check_images(records)

    anno["data"][1]["true_image_id"] = 5
    path.write_text(json.dumps(anno))
    with pytest.raises(ValueError, match=r"bison_annotations.cocoval2014.json: record 1: field 'true_image_id'"):
        _read("bison", tmp_path, "val2014")
    with pytest.raises(ValueError, match="unknown split 'test'"):
        _read("bison", tmp_path, "test")


def test_cadvi_file_errors_name_file_record_and_field(tmp_path):
    _bison_cadvi(tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "BISON.jsonl").read_text().splitlines()]
    rows[1]["answer"] = "C"
    _jsonl(tmp_path / "BISON.jsonl", rows)
    with pytest.raises(ValueError, match=r"BISON.jsonl: record 2: field 'answer' must be one of \['A', 'B'\]"):
        _read("bison", tmp_path)
    rows[1]["answer"], rows[1]["text"] = "B", "Which image?"
    _jsonl(tmp_path / "BISON.jsonl", rows)
    with pytest.raises(ValueError, match=r"record 2: field 'text' must hold 2 <image> placeholders"):
        _read("bison", tmp_path)
    rows[1]["text"] = SUITS.format("x")
    rows[1]["image"][0] = "COCO_val2014_000000999999.jpg"
    _jsonl(tmp_path / "BISON.jsonl", rows)
    with pytest.raises(ValueError, match=r"record 2: field 'image' names an image that is not there .*"
                                         r"images/COCO_val2014_000000999999.jpg"):
        _read("bison", tmp_path)
    (tmp_path / "BISON.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match=r"BISON.jsonl.*expected layout: cadvi: DIR/BISON.jsonl"):
        _read("bison", tmp_path)


# --------------------------------------------------------------------------------------------- SVO-Probes


def test_svo_cadvi_subset_keeps_the_negative_category(tmp_path):
    _jsonl(tmp_path / "eval_json_files" / "SVO_Probes.jsonl", [
        {"image": ["05617.jpg", "00586.jpg"], "text": SUITS.format("A player celebrates with other players."),
         "answer": "A", "question_id": 5263, "category": "subject"},
        {"image": ["05175.jpg", "10225.jpg"], "text": SUITS.format("A soldier walks the field."), "answer": "B",
         "question_id": 249, "category": "verb"},
    ])
    for name in ("05617", "00586", "05175", "10225"):
        _png(tmp_path / "images" / f"{name}.jpg")
    records = _read("svo", tmp_path)
    assert [(r["id"], r["meta"]["category"], r["meta"]["answer"]) for r in records] == [
        ("5263", "subject", "A"), ("249", "verb", "B")]
    _check_images(records)


def _svo_csv(root: Path, rows: list[dict]) -> Path:
    fields = ["sentence", "pos_triplet", "neg_triplet", "subj_neg", "verb_neg", "obj_neg", "pos_url", "neg_url",
              "pos_image_id", "neg_image_id"]
    path = root / "svo_probes.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in fields})
    return path


def test_svo_release_places_the_positive_image_by_a_hash_of_the_row(tmp_path):
    rows = [{"sentence": f"A girl {verb} in grass.", "pos_triplet": f"girl,{verb},grass",
             "neg_triplet": f"dog,{verb},grass", "subj_neg": "True", "verb_neg": "False", "obj_neg": "False",
             "pos_url": f"https://x.test/{2 * i}.jpg", "neg_url": f"https://x.test/{2 * i + 1}.jpg",
             "pos_image_id": str(2 * i), "neg_image_id": str(2 * i + 1)}
            for i, verb in enumerate(["stands", "sits", "runs", "jumps", "walks", "sleeps"])]
    _svo_csv(tmp_path, rows)
    for i in range(12):
        # images named by id; one saved zero-padded to 5 digits (the names in CaD-VI's SVO file look so)
        _png(tmp_path / "images" / (f"{i:05d}.jpg" if i == 3 else f"{i}.jpg"), i * 20)
    records = _read("svo", tmp_path, "full")
    assert [r["id"] for r in records] == [str(i) for i in range(6)]
    _check_images(records)
    for i, r in enumerate(records):
        pos = 0 if r["meta"]["answer"] == "A" else 1
        assert int(Path(r["image"][pos]).stem) == 2 * i and int(Path(r["image"][1 - pos]).stem) == 2 * i + 1
        assert r["meta"]["answer"] == "AB"[cadvi._coin("svo", str(i))]
        assert r["meta"]["category"] == "subject" and r["meta"]["text"] == rows[i]["sentence"]
        assert r["conversations"][0]["value"] == SUITS.format(rows[i]["sentence"])
    # the rule is balanced over many rows, and fixed for a row whatever the file order
    share = Counter(cadvi._coin("svo", str(i)) for i in range(2000))[1] / 2000
    assert 0.45 < share < 0.55

    rows[4]["neg_image_id"] = "77"
    _svo_csv(tmp_path, rows)
    with pytest.raises(ValueError, match=r"svo_probes.csv: record '4': field 'neg_image_id' names an image that is "
                                         r"not there \(looked for .*images/77.jpg"):
        _read("svo", tmp_path, "full")
    rows[4]["neg_image_id"] = "nine"
    _svo_csv(tmp_path, rows)
    with pytest.raises(ValueError, match=r"record '4': field 'neg_image_id' must be an integer image id"):
        _read("svo", tmp_path, "full")


# --------------------------------------------------------------------------------------------- NLVR2


def test_nlvr2_cadvi_subset_and_release_name_images_by_identifier(tmp_path):
    _jsonl(tmp_path / "NLVR2.jsonl", [
        {"image": ["test1-463-0-img0.png", "test1-463-0-img1.png"],
         "text": NLVR2.format("A part of the sky is visible in one of the images."), "answer": "False",
         "question_id": 0},
        {"image": ["test1-463-1-img0.png", "test1-463-1-img1.png"],
         "text": NLVR2.format("A part of the sky is visible in one of the images."), "answer": "True",
         "question_id": 2},
    ])
    # the direct-download layout: DIR/test1/<images>, DIR/images/train/<directory>/<images>
    for stem in ("test1-463-0", "test1-463-1", "test1-0-1"):
        for k in (0, 1):
            _png(tmp_path / "test1" / f"{stem}-img{k}.png", k * 90)
    records = _read("nlvr2", tmp_path)
    assert [(r["id"], r["meta"]["answer"], r["meta"]["choices"]) for r in records] == [
        ("0", "False", ["True", "False"]), ("2", "True", ["True", "False"])]
    assert records[0]["image"][1].endswith("test1/test1-463-0-img1.png")
    _check_images(records)

    line = {"validation": {"28": "False"}, "sentence": "There is an empty glass.", "left_url": "http://a.test/l.jpg",
            "writer": "103", "label": "False", "right_url": "http://a.test/r.jpg", "synset": "beer bottle",
            "query": "group of beer bottles41", "identifier": "test1-0-1-0", "extra_validations": {"56": "False"}}
    _jsonl(tmp_path / "nlvr2" / "data" / "test1.json", [line, {**line, "identifier": "test1-0-1-1", "label": "True",
                                                                "sentence": "Two glasses are full."}])
    records = _read("nlvr2", tmp_path, "test1")
    assert [(r["id"], r["meta"]["answer"]) for r in records] == [("test1-0-1-0", "False"), ("test1-0-1-1", "True")]
    assert [Path(p).name for p in records[0]["image"]] == ["test1-0-1-img0.png", "test1-0-1-img1.png"]
    assert records[1]["conversations"][0]["value"] == NLVR2.format("Two glasses are full.")
    items = EVAL_TASKS.get("nlvr2").build_items(records[1])
    assert items[0].candidates == ["True", "False"] and items[0].answer == "True"

    train = {**line, "identifier": "train-10-2-0", "directory": 7}
    _jsonl(tmp_path / "train.json", [train])
    for k in (0, 1):
        _png(tmp_path / "images" / "train" / "7" / f"train-10-2-img{k}.png")
    assert _read("nlvr2", tmp_path, "train")[0]["image"][0].endswith("images/train/7/train-10-2-img0.png")

    _jsonl(tmp_path / "dev.json", [{**line, "identifier": "dev-850-0-0", "label": "maybe"}])
    with pytest.raises(ValueError, match=r"dev.json: record 'dev-850-0-0': field 'label' must be 'True' or 'False'"):
        _read("nlvr2", tmp_path, "dev")
    _jsonl(tmp_path / "dev.json", [{**line, "identifier": "dev-850-0-0"}])
    with pytest.raises(ValueError, match=r"record 'dev-850-0-0': field 'identifier' names an image that is not "
                                         r"there \(looked for .*dev/dev-850-0-img0.png"):
        _read("nlvr2", tmp_path, "dev")


# --------------------------------------------------------------------------------------------- EQBEN and COLA


def _two_rounds(pair: str, images: list[str], cap0: str, cap1: str) -> list[dict]:
    return [{"image": images, "text": SUITS.format(cap0), "answer": "A", "question_id": f"{pair}_0"},
            {"image": images, "text": SUITS.format(cap1), "answer": "B", "question_id": f"{pair}_1"}]


def _eqben_cadvi(root: Path) -> list[dict]:
    rows = (_two_rounds("0", ["eqbensd/844/image0.png", "eqbensd/844/image1.png"],
                        "a photo of dove standing on the branch", "a photo of eagle standing on the branch")
            + _two_rounds("1", ["eqbenkubric_cnt/12/image0.png", "eqbenkubric_cnt/12/image1.png"],
                          "two cubes", "three cubes"))
    _jsonl(root / "EQBEN.jsonl", rows)
    for r in rows:
        for i, name in enumerate(r["image"]):
            _png(root / "images" / name, i * 100)
    return rows


def test_eqben_cadvi_rounds_become_one_pair_match_record(tmp_path):
    _eqben_cadvi(tmp_path)
    records = _read("eqben", tmp_path)
    assert [r["id"] for r in records] == ["0", "1"]
    _check_images(records)
    for r in records:
        texts, answer = r["meta"]["texts"], r["meta"]["answer"]
        assert answer == cadvi.PAIR_ANSWERS[cadvi._coin("EQBEN", r["id"])]
        first = texts[answer[2]]  # the text of image 1
        assert first in ("a photo of dove standing on the branch", "two cubes")
        items = EVAL_TASKS.get("eqben").build_items(r)
        assert [it.part for it in items] == [1, 2] and {it.sample for it in items} == {r["id"]}
        assert [it.answer for it in items] == ["A", "B"]  # "A. Image 1" for image 1's caption, as CaD-VI asks
    assert records[0]["image"][0].endswith("images/eqbensd/844/image0.png")


def test_caption_rounds_reproduce_cadvis_questions_exactly(tmp_path):
    rows = _eqben_cadvi(tmp_path)
    records = _read("eqben", tmp_path)
    items = [it for r in records for it in EVAL_TASKS.get("eqben").build_items(r)]
    assert [it.turns[0]["value"] for it in items] == [row["text"] for row in rows]
    assert [it.answer for it in items] == [row["answer"] for row in rows]
    assert [(it.sample, it.part) for it in items] == [("0", 1), ("0", 2), ("1", 1), ("1", 2)]
    assert all(it.candidates == ["A", "B"] for it in items)


def test_eqben_cadvi_pair_errors(tmp_path):
    rows = _eqben_cadvi(tmp_path)
    _jsonl(tmp_path / "EQBEN.jsonl", rows[:3])
    with pytest.raises(ValueError, match=r"EQBEN.jsonl: record '1_1': field 'question_id' is missing"):
        _read("eqben", tmp_path)
    rows[3]["answer"] = "A"
    _jsonl(tmp_path / "EQBEN.jsonl", rows)
    with pytest.raises(ValueError, match=r"record '1_1': field 'answer' must differ from 1_0's"):
        _read("eqben", tmp_path)
    rows[3]["answer"], rows[3]["question_id"] = "B", "1-1"
    _jsonl(tmp_path / "EQBEN.jsonl", rows)
    with pytest.raises(ValueError, match=r"record '1-1': field 'question_id' must be '<pair>_0' or '<pair>_1'"):
        _read("eqben", tmp_path)


def test_eqben_vllm_subset_as_released(tmp_path):
    home = tmp_path / "eqben_vllm"
    items = [{"image0": "eqbensd/844/image0.png", "caption0": "a photo of dove standing on the branch",
              "image1": "eqbensd/844/image1.png", "caption1": "a photo of eagle standing on the branch"},
             {"image0": "eqbenag/5/image0.png", "caption0": "person holds a cup",
              "image1": "eqbenag/5/image1.png", "caption1": "person puts down a cup"}]
    home.mkdir()
    (home / "all_select.json").write_text(json.dumps(items))
    for item in items:
        for k in (0, 1):
            _png(home / "images" / item[f"image{k}"], k * 50)
    records = _read("eqben", tmp_path, "vllm")
    assert [(r["id"], r["meta"]["subset"]) for r in records] == [("0", "eqbensd"), ("1", "eqbenag")]
    for r, item in zip(records, items):
        assert r["meta"]["texts"][r["meta"]["answer"][2]] == item["caption0"]  # image 1 <-> caption0
        assert r["meta"]["texts"][r["meta"]["answer"][7]] == item["caption1"]
    _check_images(records)
    del items[1]["caption1"]
    (home / "all_select.json").write_text(json.dumps(items))
    with pytest.raises(ValueError, match=r"all_select.json: record '1': field 'caption1' is missing"):
        _read("eqben", tmp_path, "vllm")


def test_cola_cadvi_and_release_formats(tmp_path):
    _jsonl(tmp_path / "COLA.jsonl",
           _two_rounds("0", ["0_2390970.jpg", "0_2388902.jpg"], "standing tall long giraffe to the right of "
                       "brown giraffe", "brown giraffe behind tall white giraffe"))
    # CaD-VI's names "<pair>_<vg id>.jpg" are found under the plain Visual Genome names too
    for vg in (2390970, 2388902, 2383130, 2382835):
        _png(tmp_path / "images" / f"{vg}.jpg", vg)
    records = _read("cola", tmp_path)
    assert records[0]["id"] == "0" and records[0]["image"][0].endswith("images/2390970.jpg")
    texts, answer = records[0]["meta"]["texts"], records[0]["meta"]["answer"]
    assert texts[answer[2]] == "standing tall long giraffe to the right of brown giraffe"

    data = [["https://cs-people.bu.edu/array/data/vg_gqa_images/2390970.jpg",
             "standing tall long giraffe to the right of brown giraffe",
             "https://cs-people.bu.edu/array/data/vg_gqa_images/2388902.jpg",
             "brown giraffe behind tall white giraffe"],
            ["https://cs-people.bu.edu/array/data/vg_gqa_images/2383130.jpg",
             "large tree to the right of little short green tree",
             "https://cs-people.bu.edu/array/data/vg_gqa_images/2382835.jpg",
             "tall green tree to the right of large tall green tree"]]
    path = tmp_path / "data" / "COLA_multiobjects_matching_benchmark.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data))
    released = _read("cola", tmp_path, "multiobjects")
    assert [r["id"] for r in released] == ["0", "1"]
    assert released[0]["meta"] == records[0]["meta"]  # the same pair, the same A/B order, read either way
    assert released[1]["image"][1].endswith("images/2382835.jpg")
    _check_images(released)
    items = [it for r in released for it in EVAL_TASKS.get("cola").build_items(r)]
    assert len(items) == 4 and all(it.candidates == ["A", "B"] for it in items)

    data[1] = data[1][:3]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"COLA_multiobjects_matching_benchmark.json: record '1': field 'entry' "
                                         r"must be \[image 1 URL, caption 1, image 2 URL, caption 2\]"):
        _read("cola", tmp_path, "multiobjects")
    data[1] = ["https://x.test/404.jpg", "a", "https://x.test/2382835.jpg", "b"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"record '1': field 'image 1 URL' names an image that is not there "
                                         r"\(looked for .*images/404.jpg"):
        _read("cola", tmp_path, "multiobjects")


# --------------------------------------------------------------------------------------------- CaD-QA

_QA = [("2406825_2550", ["VG_100K_2/2406825.jpg", "VG_100K_2/2550.jpg"], "What colors dominate each image?",
        "Image 1 is dominated by shades of white, yellow, and orange, while Image 2 features darker colors."),
       ("2349307_1159325", ["VG_100K/2349307.jpg", "VG_100K/1159325.jpg"],
        "Are the settings for the two images indoors or outdoors?",
        "Image 1 is set outdoors, while Image 2 is set indoors in a home office.")]


def _vg_images(root: Path) -> None:
    for _, names, _, _ in _QA:
        for i, name in enumerate(names):
            _png(root / name, i * 60)  # DIR is the Visual Genome folder (VG_100K/, VG_100K_2/)


def test_cad_qa_jsonl_gives_question_and_reference(tmp_path):
    _vg_images(tmp_path)
    _jsonl(tmp_path / "json_files" / "CaD_QA_eval.jsonl",
           [{"image": names, "text": f"Image 1: <image>\nImage 2: <image>\n{q}", "answer": a, "question_id": qid}
            for qid, names, q, a in _QA])
    records = _read("cad_qa", tmp_path)
    assert [r["id"] for r in records] == ["2406825_2550", "2349307_1159325"]
    _check_images(records)
    assert records[0]["image"][1].endswith("VG_100K_2/2550.jpg")
    assert records[0]["conversations"][0]["value"] == "Image 1: <image>\nImage 2: <image>\nWhat colors dominate " \
                                                      "each image?"
    assert records[1]["conversations"][1]["value"] == _QA[1][3]
    items = EVAL_TASKS.get("cad_qa").build_items(records[0])
    assert items[0].refs == [_QA[0][3]] and items[0].question == "What colors dominate each image?"


def test_cad_qa_hugging_face_parquet_config(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    _vg_images(tmp_path / "images")
    table = pa.table({"id": [q[0] for q in _QA], "image": [str(q[1]) for q in _QA],  # the pair kept as a string
                      "question": [q[2] for q in _QA], "answer": [q[3] for q in _QA],
                      "__null_dask_index__": list(range(len(_QA)))})
    (tmp_path / "CaD_QA_eval").mkdir()
    pq.write_table(table, tmp_path / "CaD_QA_eval" / "CaD_QA_7.5K.parquet")
    records = _read("cad_qa", tmp_path)
    assert [r["id"] for r in records] == [q[0] for q in _QA]
    assert records[1]["conversations"][0]["value"] == f"Image 1: <image>\nImage 2: <image>\n{_QA[1][2]}"
    assert records[0]["image"][0].endswith("images/VG_100K_2/2406825.jpg")
    _check_images(records)

    # a save_to_disk copy of the CaD_QA_eval config (DatasetDict with split "test") reads the same
    import datasets

    saved = tmp_path / "saved"
    datasets.DatasetDict({"test": datasets.Dataset.from_parquet(
        str(tmp_path / "CaD_QA_eval" / "CaD_QA_7.5K.parquet"))}).save_to_disk(str(saved))
    (saved / "images").symlink_to(tmp_path / "images")
    assert [r["conversations"] for r in _read("cad_qa", saved)] == [r["conversations"] for r in records]

    table = table.set_column(1, "image", pa.array(["VG_100K_2/2406825.jpg", str(_QA[1][1])]))
    pq.write_table(table, tmp_path / "CaD_QA_eval" / "CaD_QA_7.5K.parquet")
    with pytest.raises(ValueError, match=r"CaD_QA_7.5K.parquet: record '2406825_2550': field 'image' must be a list "
                                         r"of 2 image paths"):
        _read("cad_qa", tmp_path)


# --------------------------------------------------------------------------------------------- end to end


def test_eval_reads_cadvis_files_end_to_end(tmp_path, one_thread):
    from mmlink.cli import main

    root = tmp_path / "data"
    _bison_cadvi(root)
    _eqben_cadvi(root)
    out = tmp_path / "run"
    assert main(["eval", "--model", "tiny", "--task", "bison", "--task", "eqben", "--data-root", str(root),
                 "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    bison, eqben = metrics["tasks"]["bison"], metrics["tasks"]["eqben"]
    assert bison["n"] == 2 and bison["split"] == "cadvi" and 0 <= bison["metrics"]["accuracy"] <= 100
    assert eqben["n"] == 2 and eqben["chance"] == 25.0 and "item_accuracy" in eqben
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rows if r["task"] == "eqben") == ["0#1", "0#2", "1#1", "1#2"]
