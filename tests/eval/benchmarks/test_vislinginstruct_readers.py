"""VisLingInstruct Table 1 readers (mmlink.eval.benchmarks.vislinginstruct) on tiny fixtures in each set's released
format. Formats: Flickr30K Karpathy json (cs.stanford.edu/people/karpathy/deepimagesent), NoCaps val json
(nocaps.org/download), VSR jsonl (github.com/cambridgeltl/visual-spatial-reasoning data/README.md), GQA balanced
questions (cs.stanford.edu/people/dorarad/gqa), IconQA problems.json/pid_splits.json/iconqa/<split>/choose_txt
(github.com/lupantech/IconQA README), VizWiz VQA annotations (vizwiz.org), TextVQA 0.5.1 + Rosetta OCR
(textvqa.org/dataset), ScienceQA problems.json/pid_splits.json (github.com/lupantech/ScienceQA README), VisDial v1.0
(visualdialog.org/data), Hateful Memes jsonl (ai.meta.com/tools/hatefulmemes)."""

import json
from pathlib import Path

import pytest
from PIL import Image

from mmlink.eval.benchmarks import vislinginstruct as vl
from mmlink.eval.tasks import EVAL_TASKS


def png(path: Path, shade: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (shade % 255, 80, 160)).save(path)
    return path


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def items(name, records):
    return [it for r in records for it in EVAL_TASKS.get(name).build_items(r)]


def test_every_task_is_registered_with_its_reader():
    names = {"flickr30k", "nocaps", "vsr", "gqa", "iconqa", "vizwiz", "textvqa", "scienceqa", "visdial",
             "hateful_memes"}
    assert {t["name"] for t in vl.TASKS} == names
    for name in names:
        task = EVAL_TASKS.get(name)
        assert task.reader is not None and task.splits and task.layout and task.source.startswith("https://")
    assert EVAL_TASKS.get("visdial").metric == "retrieval" and EVAL_TASKS.get("hateful_memes").metric == "auc"
    assert EVAL_TASKS.get("vsr").option_scoring == "generate"  # the paper ranks only SciQA, IconQA, HM, VisDial


# --------------------------------------------------------------------------------------------- Flickr30K


def flickr(root: Path) -> Path:
    def image(name, split, n):
        png(root / "flickr30k-images" / name, n)
        return {"filename": name, "imgid": n, "split": split, "sentids": list(range(5 * n, 5 * n + 5)),
                "sentences": [{"raw": f"A dog runs {k}.", "tokens": ["a", "dog", "runs", str(k)], "imgid": n,
                               "sentid": 5 * n + k} for k in range(5)]}
    write_json(root / "dataset_flickr30k.json", {"dataset": "flickr30k", "images": [
        image("1000092795.jpg", "train", 0), image("1001.jpg", "test", 1), image("1002.jpg", "test", 2),
        image("1003.jpg", "val", 3)]})
    return root


def test_flickr30k_reads_the_karpathy_test_split(tmp_path):
    records = vl.read_flickr30k(flickr(tmp_path), "test", tmp_path / "cache")
    assert [r["id"] for r in records] == ["1001", "1002"]
    assert Path(records[0]["image"][0]).is_file()
    assert records[0]["conversations"][0]["value"] == "<image>\nA short image description:"
    assert records[0]["meta"]["refs"] == [f"A dog runs {k}." for k in range(5)]
    (item,) = items("flickr30k", records[:1])
    assert item.refs == records[0]["meta"]["refs"] and item.turns[-1]["value"].endswith("description:")
    assert [r["id"] for r in vl.read_flickr30k(tmp_path, "val", tmp_path / "cache")] == ["1003"]


def test_flickr30k_errors_name_file_record_and_field(tmp_path):
    flickr(tmp_path)
    data = json.loads((tmp_path / "dataset_flickr30k.json").read_text())
    del data["images"][1]["sentences"][2]["raw"]
    write_json(tmp_path / "dataset_flickr30k.json", data)
    with pytest.raises(ValueError, match=r"dataset_flickr30k\.json: record '1001\.jpg': field 'raw' is missing"):
        vl.read_flickr30k(tmp_path, "test", tmp_path / "cache")
    with pytest.raises(ValueError, match="unknown split 'train'"):
        vl.read_flickr30k(tmp_path, "train", tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="dataset_flickr30k.json"):
        vl.read_flickr30k(tmp_path / "missing", "test", tmp_path / "cache")


# --------------------------------------------------------------------------------------------- NoCaps


def nocaps(root: Path) -> Path:
    ids = ["0013ea2087020901", "00223d2ec3b3b1d5", "0039a5de5ba4bc0c"]
    domains = ["in-domain", "near-domain", "out-domain"]
    images = []
    for i, (oid, domain) in enumerate(zip(ids, domains)):
        png(root / "val" / f"{oid}.jpg", i)
        images.append({"id": i, "open_images_id": oid, "file_name": f"{oid}.jpg", "height": 8, "width": 8,
                       "coco_url": f"https://s3.amazonaws.com/nocaps/val/{oid}.jpg", "license": 0,
                       "date_captured": "2018-11-06 11:04:33", "domain": domain})
    annotations = [{"image_id": i, "id": 10 * i + k, "caption": f"caption {k} of image {i}"}
                   for i in range(3) for k in range(10)]
    write_json(root / "nocaps_val_4500_captions.json", {"licenses": [], "info": {}, "images": images,
                                                         "annotations": annotations})
    return root


def test_nocaps_reads_val_with_ten_references_and_the_domain(tmp_path):
    records = vl.read_nocaps(nocaps(tmp_path), "val", tmp_path / "cache")
    assert [r["id"] for r in records] == ["0", "1", "2"]
    assert [r["meta"]["domain"] for r in records] == ["in", "near", "out"]
    assert records[1]["meta"]["refs"] == [f"caption {k} of image 1" for k in range(10)]
    assert records[1]["image"][0].endswith("00223d2ec3b3b1d5.jpg") and Path(records[1]["image"][0]).is_file()
    (item,) = items("nocaps", records[2:])
    assert len(item.refs) == 10
    with pytest.raises(ValueError, match="unknown split 'test'"):  # no public test references
        vl.read_nocaps(tmp_path, "test", tmp_path / "cache")


def test_nocaps_errors_name_file_record_and_field(tmp_path):
    nocaps(tmp_path)
    data = json.loads((tmp_path / "nocaps_val_4500_captions.json").read_text())
    data["images"][2]["domain"] = "far-domain"
    write_json(tmp_path / "nocaps_val_4500_captions.json", data)
    with pytest.raises(ValueError, match=r"nocaps_val_4500_captions\.json: record 2: field 'domain'"):
        vl.read_nocaps(tmp_path, "val", tmp_path / "cache")


# --------------------------------------------------------------------------------------------- VSR


def vsr(root: Path) -> Path:
    rows = [{"image": "000000017697.jpg", "image_link": "http://images.cocodataset.org/train2017/000000017697.jpg",
             "caption": "The car is behind the suitcase.", "label": 1, "relation": "behind", "subj": "car",
             "obj": "suitcase", "annotator_id": 2, "vote_true_validator_id": "[18, 2]",
             "vote_false_validator_id": "[1]"},
            {"image": "000000199940.jpg", "image_link": "http://images.cocodataset.org/train2017/000000199940.jpg",
             "caption": "The cat is under the backpack.", "label": 0, "relation": "under", "subj": "cat",
             "obj": "backpack", "annotator_id": 1, "vote_true_validator_id": "[]",
             "vote_false_validator_id": "[2, 51, 26]"}]
    write_jsonl(root / "splits" / "zeroshot" / "test.jsonl", rows)
    write_jsonl(root / "splits" / "random" / "test.jsonl", rows[:1])
    for i, row in enumerate(rows):
        png(root / "images" / row["image"], i)
    return root


def test_vsr_reads_the_zeroshot_test_split_as_true_false(tmp_path):
    records = vl.read_vsr(vsr(tmp_path), "zeroshot_test", tmp_path / "cache")
    assert [r["id"] for r in records] == ["zeroshot_test-1", "zeroshot_test-2"]
    assert records[0]["conversations"][0]["value"] == ("<image>\nBased on the image, is this statement true or "
                                                       "false? The car is behind the suitcase.")
    assert [r["meta"]["answer"] for r in records] == ["true", "false"]
    assert records[1]["meta"]["relation"] == "under" and Path(records[1]["image"][0]).is_file()
    its = items("vsr", records)
    assert its[0].candidates == ["true", "false"] and its[1].answer == "false"
    assert len(vl.read_vsr(tmp_path, "random_test", tmp_path / "cache")) == 1
    assert EVAL_TASKS.get("vsr").splits[0] == "zeroshot_test"


def test_vsr_errors_name_file_record_and_field(tmp_path):
    vsr(tmp_path)
    path = tmp_path / "splits" / "zeroshot" / "test.jsonl"
    path.write_text(path.read_text().replace('"label": 0', '"label": 2'))
    with pytest.raises(ValueError, match=r"test\.jsonl: record 'line 2': field 'label' must be 0 or 1"):
        vl.read_vsr(tmp_path, "zeroshot_test", tmp_path / "cache")
    (tmp_path / "images" / "000000017697.jpg").unlink()
    with pytest.raises(ValueError, match=r"record 'line 1': field 'image' names an image that is not there"):
        vl.read_vsr(tmp_path, "zeroshot_test", tmp_path / "cache")


# --------------------------------------------------------------------------------------------- GQA


def gqa(root: Path) -> Path:
    def q(image_id, question, answer):
        return {"semantic": [], "entailed": [], "equivalent": [], "question": question, "imageId": image_id,
                "isBalanced": True, "groups": {"global": None, "local": "10c-shirt_color"}, "answer": answer,
                "semanticStr": "select: shirt ->query: color", "annotations": {"answer": {}, "question": {},
                                                                              "fullAnswer": {}},
                "types": {"structural": "query", "semantic": "attr", "detailed": "color"},
                "fullAnswer": f"The answer is {answer}."}
    write_json(root / "testdev_balanced_questions.json", {
        "20968379": q("n288870", "Is the shirt blue?", "no"),
        "20968380": q("n288870", "What color is the shirt?", "white"),
        "201307251": q("n161313", "Who is wearing the hat?", "man")})
    png(root / "images" / "n288870.jpg", 1)
    png(root / "images" / "n161313.jpg", 2)
    return root


def test_gqa_reads_testdev_with_one_answer(tmp_path):
    records = vl.read_gqa(gqa(tmp_path), "testdev", tmp_path / "cache")
    assert [r["id"] for r in records] == ["20968379", "20968380", "201307251"]
    assert records[1]["conversations"][0]["value"] == "<image>\nQuestion: What color is the shirt?\nShort answer:"
    assert records[1]["meta"]["answers"] == ["white"] and records[0]["image"] == records[1]["image"]
    (item,) = items("gqa", records[2:])
    assert item.refs == ["man"] and item.question == "Question: Who is wearing the hat?\nShort answer:"


def test_gqa_errors_name_file_record_and_field(tmp_path):
    gqa(tmp_path)
    data = json.loads((tmp_path / "testdev_balanced_questions.json").read_text())
    data["20968380"]["answer"] = 7
    write_json(tmp_path / "testdev_balanced_questions.json", data)
    with pytest.raises(ValueError, match=r"testdev_balanced_questions\.json: record '20968380': field 'answer' must "
                                         r"be str"):
        vl.read_gqa(tmp_path, "testdev", tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="val_balanced_questions.json"):
        vl.read_gqa(tmp_path, "val", tmp_path / "cache")


# --------------------------------------------------------------------------------------------- IconQA


def iconqa(root: Path, with_problems: bool = True) -> Path:
    data = root / "iconqa_data"
    problems = {
        "17": {"question": "How many dots are there?", "choices": ["3", "5", "6"], "answer": 1,
               "ques_type": "choose_txt", "grade": "prek", "label": "counting", "split": "test"},
        "105": {"question": "Which shape is bigger?", "choices": ["circle", "square"], "answer": 0,
                "ques_type": "choose_txt", "grade": "kindergarten", "label": "comparing", "split": "test"},
        "3": {"question": "What time is shown?", "choices": ["1:00", "2:00"], "answer": 1, "ques_type": "choose_txt",
              "grade": "grade1", "label": "time", "split": "val"},
    }
    for pid, prob in problems.items():
        folder = data / "iconqa" / prob["split"] / "choose_txt" / pid
        png(folder / "image.png", int(pid))
        write_json(folder / "data.json", prob)
    if with_problems:
        write_json(data / "problems.json", problems)
        write_json(data / "pid_splits.json", {"choose_txt_test": ["17", "105"], "choose_txt_val": ["3"],
                                              "fill_in_blank_test": []})
    return root


@pytest.mark.parametrize("with_problems", [True, False])
def test_iconqa_reads_the_multi_text_choice_problems(tmp_path, with_problems):
    records = vl.read_iconqa(iconqa(tmp_path, with_problems), "test", tmp_path / "cache")
    assert [r["id"] for r in records] == ["17", "105"]
    assert records[0]["conversations"][0]["value"] == ("<image>\nQuestion: How many dots are there? Options: (a) 3 "
                                                       "(b) 5 (c) 6\nAnswer:")
    assert records[0]["meta"] == {"choices": ["3", "5", "6"], "answer": "5"}
    assert records[1]["image"][0].endswith("test/choose_txt/105/image.png")
    its = items("iconqa", records)
    assert its[1].candidates == ["circle", "square"] and its[1].answer == "circle"
    assert [r["id"] for r in vl.read_iconqa(tmp_path / "iconqa_data", "val", tmp_path / "cache")] == ["3"]


def test_iconqa_errors_name_file_record_and_field(tmp_path):
    iconqa(tmp_path)
    problems = json.loads((tmp_path / "iconqa_data" / "problems.json").read_text())
    problems["105"]["answer"] = 4
    write_json(tmp_path / "iconqa_data" / "problems.json", problems)
    with pytest.raises(ValueError, match=r"problems\.json: record '105': field 'answer' must index one of the 2"):
        vl.read_iconqa(tmp_path, "test", tmp_path / "cache")


# --------------------------------------------------------------------------------------------- VizWiz


def vizwiz(root: Path) -> Path:
    def answers(*texts):
        return [{"answer": t, "answer_confidence": "yes"} for t in texts]
    rows = [{"image": "VizWiz_val_00000000.jpg", "question": "What is in this bottle?",
             "answers": answers(*(["advil"] * 6 + ["medicine"] * 4)), "answer_type": "other", "answerable": 1},
            {"image": "VizWiz_val_00000001.jpg", "question": "What does the label say?",
             "answers": answers(*(["unanswerable"] * 10)), "answer_type": "unanswerable", "answerable": 0}]
    write_json(root / "Annotations" / "val.json", rows)
    for i, row in enumerate(rows):
        png(root / "val" / row["image"], i)
    return root


def test_vizwiz_reads_val_with_its_ten_answers(tmp_path):
    records = vl.read_vizwiz(vizwiz(tmp_path), "val", tmp_path / "cache")
    assert [r["id"] for r in records] == ["VizWiz_val_00000000", "VizWiz_val_00000001"]
    assert records[0]["conversations"][0]["value"] == (
        "<image>\nAnswer the question based on the image. Reply in one phrase/word or say 'unanswerable'. "
        "Question: What is in this bottle?\nShort answer:")
    assert records[0]["conversations"][1]["value"] == "advil" and len(records[0]["meta"]["answers"]) == 10
    assert records[1]["meta"]["answerable"] == 0
    (item,) = items("vizwiz", records[1:])
    assert item.refs == ["unanswerable"] * 10


def test_vizwiz_errors_name_file_record_and_field(tmp_path):
    vizwiz(tmp_path)
    rows = json.loads((tmp_path / "Annotations" / "val.json").read_text())
    rows[1]["answers"][3] = {"answer_confidence": "yes"}
    write_json(tmp_path / "Annotations" / "val.json", rows)
    with pytest.raises(ValueError, match=r"val\.json: record 'VizWiz_val_00000001\.jpg': field 'answer' is missing"):
        vl.read_vizwiz(tmp_path, "val", tmp_path / "cache")


# --------------------------------------------------------------------------------------------- TextVQA


def textvqa(root: Path) -> Path:
    def q(qid, image_id, question, answer):
        return {"question": question, "image_id": image_id, "image_classes": ["Bottle"], "flickr_original_url": "",
                "flickr_300k_url": "", "image_width": 8, "image_height": 8, "answers": [answer] * 10,
                "question_tokens": question.split(), "question_id": qid, "set_name": "val"}
    write_json(root / "TextVQA_0.5.1_val.json", {"dataset_type": "val", "dataset_name": "textvqa",
                                                 "dataset_version": "0.5.1", "data": [
        q(34602, "0054c91397f2fe05", "what is the brand of phone?", "nokia"),
        q(34603, "005635e119b9f32f", "what year is on the coin?", "1999")]})
    write_json(root / "TextVQA_Rosetta_OCR_v0.2_val.json", {"dataset_name": "textvqa", "data": [
        {"image_id": "0054c91397f2fe05", "ocr_tokens": ["NOKIA", "menu"] + [f"t{k}" for k in range(40)],
         "ocr_info": []},
        {"image_id": "005635e119b9f32f", "ocr_tokens": [], "ocr_info": []}]})
    png(root / "train_images" / "0054c91397f2fe05.jpg", 1)
    png(root / "train_images" / "005635e119b9f32f.jpg", 2)
    return root


def test_textvqa_puts_the_first_30_ocr_tokens_in_the_prompt(tmp_path):
    records = vl.read_textvqa(textvqa(tmp_path), "val", tmp_path / "cache")
    assert [r["id"] for r in records] == ["34602", "34603"]
    tokens = ", ".join(["NOKIA", "menu"] + [f"t{k}" for k in range(28)])
    assert records[0]["conversations"][0]["value"] == (f"<image>\nOCR tokens: {tokens}. Question: what is the brand "
                                                       "of phone?\nShort answer:")
    # no OCR tokens: the plain question
    assert records[1]["conversations"][0]["value"] == "<image>\nQuestion: what year is on the coin?\nShort answer:"
    assert records[0]["meta"]["answers"] == ["nokia"] * 10
    (item,) = items("textvqa", records[:1])
    assert item.refs == ["nokia"] * 10
    plain = vl.read_textvqa(tmp_path, "val_no_ocr", tmp_path / "cache")
    assert plain[0]["conversations"][0]["value"] == "<image>\nQuestion: what is the brand of phone?\nShort answer:"


def test_textvqa_errors_name_file_record_and_field(tmp_path):
    textvqa(tmp_path)
    data = json.loads((tmp_path / "TextVQA_0.5.1_val.json").read_text())
    data["data"][1]["answers"][4] = 1999
    write_json(tmp_path / "TextVQA_0.5.1_val.json", data)
    with pytest.raises(ValueError, match=r"TextVQA_0\.5\.1_val\.json: record 34603: field 'answers'"):
        vl.read_textvqa(tmp_path, "val_no_ocr", tmp_path / "cache")
    (tmp_path / "TextVQA_Rosetta_OCR_v0.2_val.json").unlink()
    with pytest.raises(FileNotFoundError, match="TextVQA_Rosetta_OCR_v0.2_val.json"):
        vl.read_textvqa(tmp_path, "val", tmp_path / "cache")


# --------------------------------------------------------------------------------------------- ScienceQA


def scienceqa(root: Path) -> Path:
    home = root / "data" / "scienceqa"

    def prob(question, choices, answer, hint, image, split):
        return {"question": question, "choices": choices, "answer": answer, "hint": hint, "image": image,
                "task": "closed choice", "grade": "grade2", "subject": "social science", "topic": "geography",
                "category": "Geography", "skill": "Read a map", "lecture": "", "solution": "", "split": split}
    write_json(home / "problems.json", {
        "5": prob("Which of these states is farthest north?", ["West Virginia", "Louisiana", "Arizona"], 0, "",
                  "image.png", "test"),
        "6": prob("Which word is a noun?", ["run", "dog"], 1, "", None, "test"),
        "8": prob("Which animal's feet are adapted for swimming?", ["duck", "goat"], 0,
                  "Figure: sturgeon.", "image.png", "test")})
    write_json(home / "pid_splits.json", {"train": [], "val": [], "test": ["5", "6", "8"]})
    png(home / "images" / "test" / "5" / "image.png", 5)
    png(home / "images" / "test" / "8" / "image.png", 8)
    return root


def test_scienceqa_keeps_the_problems_with_an_image_and_ranks_their_option_texts(tmp_path):
    records = vl.read_scienceqa(scienceqa(tmp_path), "test", tmp_path / "cache")
    assert [r["id"] for r in records] == ["5", "8"]
    assert records[0]["conversations"][0]["value"] == (
        "<image>\nGiven the image, choose the correct option for the following question. Question: Which of these "
        "states is farthest north?\nOptions: (A) West Virginia (B) Louisiana (C) Arizona")
    assert records[1]["conversations"][0]["value"].startswith("<image>\nContext: Figure: sturgeon.\nGiven the image")
    assert records[0]["meta"]["choices"] == ["West Virginia", "Louisiana", "Arizona"]
    assert records[0]["meta"]["answer"] == "West Virginia"
    its = items("scienceqa", records)
    assert its[1].candidates == ["duck", "goat"] and its[1].answer == "duck"


def test_scienceqa_reads_the_hugging_face_copy(tmp_path):
    import io

    import datasets

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, format="PNG")
    features = datasets.Features({"image": datasets.Image(), "question": datasets.Value("string"),
                                  "choices": datasets.Sequence(datasets.Value("string")),
                                  "answer": datasets.Value("int64"), "hint": datasets.Value("string")})
    data = datasets.Dataset.from_dict({"image": [{"bytes": buf.getvalue(), "path": None}, None],
                                       "question": ["Which is a mammal?", "Which word is a verb?"],
                                       "choices": [["whale", "shark"], ["run", "dog"]], "answer": [0, 0],
                                       "hint": ["", ""]}, features=features)
    datasets.DatasetDict({"test": data}).save_to_disk(str(tmp_path / "hf"))
    records = vl.read_scienceqa(tmp_path / "hf", "test", tmp_path / "cache")
    assert [r["id"] for r in records] == ["test-0"] and Path(records[0]["image"][0]).is_file()
    assert "Options: (A) whale (B) shark" in records[0]["conversations"][0]["value"]


def test_scienceqa_errors_name_file_record_and_field(tmp_path):
    scienceqa(tmp_path)
    path = tmp_path / "data" / "scienceqa" / "problems.json"
    problems = json.loads(path.read_text())
    problems["8"]["choices"] = ["duck"]
    write_json(path, problems)
    with pytest.raises(ValueError, match=r"problems\.json: record '8': field 'choices' must be a list of >= 2"):
        vl.read_scienceqa(tmp_path, "test", tmp_path / "cache")


# --------------------------------------------------------------------------------------------- VisDial


def visdial(root: Path) -> Path:
    questions = ["is the photo in color", "is there a dog", "how many people"]
    answers = ["yes", "no", "2", "maybe", "i can't tell"]
    options = [0, 1, 2, 3, 1, 4]  # answer 1 ("no") offered twice
    dialogs = [{"image_id": 185565, "caption": "a man riding a bike",
                "dialog": [{"question": 0, "answer": 0, "answer_options": options, "gt_index": 0},
                           {"question": 1, "answer": 1, "answer_options": options, "gt_index": 4}]},
               {"image_id": 284024, "caption": "two people at a table",
                "dialog": [{"question": 2, "answer": 2, "answer_options": options, "gt_index": 2}]}]
    write_json(root / "visdial_1.0_val.json", {"version": "1.0", "split": "val2018",
                                               "data": {"dialogs": dialogs, "questions": questions,
                                                        "answers": answers}})
    for i, d in enumerate(dialogs):
        png(root / "VisualDialog_val2018" / f"VisualDialog_val2018_{d['image_id']:012d}.jpg", i)
    return root


def test_visdial_makes_one_item_per_round_with_caption_and_history(tmp_path):
    records = vl.read_visdial(visdial(tmp_path), "val", tmp_path / "cache")
    assert [r["id"] for r in records] == ["185565_1", "185565_2", "284024_1"]
    assert records[0]["conversations"][0]["value"] == ('<image>\nThis image has the caption "a man riding a bike". '
                                                       "Question: is the photo in color\nShort answer:")
    assert records[1]["conversations"][0]["value"] == (
        '<image>\nThis image has the caption "a man riding a bike". dialog history: q: is the photo in color a: yes\n'
        "Question: is there a dog\nShort answer:")
    # the repeated option keeps its first place; gt_index 4 names that repeat, so the answer is its text
    assert records[1]["meta"]["choices"] == ["yes", "no", "2", "maybe", "i can't tell"]
    assert records[1]["meta"]["answer"] == "no" and records[2]["meta"]["answer"] == "2"
    assert Path(records[2]["image"][0]).name == "VisualDialog_val2018_000000284024.jpg"
    its = items("visdial", records)
    assert its[1].candidates == records[1]["meta"]["choices"] and its[1].answer == "no"


def test_visdial_errors_name_file_record_and_field(tmp_path):
    visdial(tmp_path)
    data = json.loads((tmp_path / "visdial_1.0_val.json").read_text())
    data["data"]["dialogs"][1]["dialog"][0]["question"] = 9
    write_json(tmp_path / "visdial_1.0_val.json", data)
    with pytest.raises(ValueError, match=r"visdial_1\.0_val\.json: record '284024_1': field 'question' must index "
                                         r"data\.questions"):
        vl.read_visdial(tmp_path, "val", tmp_path / "cache")


# --------------------------------------------------------------------------------------------- Hateful Memes


def memes(root: Path) -> Path:
    seen = [{"id": 8291, "img": "img/08291.png", "label": 1, "text": "white people is this a shooting range"},
            {"id": 46971, "img": "img/46971.png", "label": 0, "text": "bravery at its finest"}]
    unseen = [{"id": 8291, "img": "img/08291.png", "label": 1, "text": "white people is this a shooting range"},
              {"id": 3745, "img": "img/03745.png", "label": 0, "text": "happy  pride\nmonth"}]
    write_jsonl(root / "dev_seen.jsonl", seen)
    write_jsonl(root / "dev_unseen.jsonl", unseen)
    for i, row in enumerate(seen + unseen):
        png(root / row["img"], i)
    return root


def test_hateful_memes_reads_dev_seen_with_yes_as_the_positive_class(tmp_path):
    records = vl.read_hateful_memes(memes(tmp_path), "dev_seen", tmp_path / "cache")
    assert [r["id"] for r in records] == ["8291", "46971"]
    assert records[0]["conversations"][0]["value"] == ('<image>\nThis is an image with: "white people is this a '
                                                       'shooting range" written on it. Is it hateful?')
    assert [r["meta"]["answer"] for r in records] == ["yes", "no"]
    assert records[0]["image"][0].endswith("img/08291.png")
    its = items("hateful_memes", records)
    assert its[0].candidates == ["yes", "no"] and its[1].answer == "no"
    both = vl.read_hateful_memes(tmp_path, "dev", tmp_path / "cache")  # VisLingInstruct's 1040 = seen + unseen
    assert [r["id"] for r in both] == ["dev_seen/8291", "dev_seen/46971", "dev_unseen/8291", "dev_unseen/3745"]
    assert "happy pride month" in both[3]["conversations"][0]["value"]


def test_hateful_memes_errors_name_file_record_and_field(tmp_path):
    memes(tmp_path)
    (tmp_path / "dev_seen.jsonl").write_text('{"id": 8291, "img": "img/08291.png", "text": "hi"}\n')
    with pytest.raises(ValueError, match=r"dev_seen\.jsonl: record 8291: field 'label' is missing"):
        vl.read_hateful_memes(tmp_path, "dev_seen", tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="test_seen.jsonl"):
        vl.read_hateful_memes(tmp_path, "test_seen", tmp_path / "cache")


# --------------------------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("name, make, metric", [("gqa", gqa, "VQA accuracy"), ("hateful_memes", memes, "AUC"),
                                                 ("vsr", vsr, "accuracy"), ("visdial", visdial, "MRR")])
def test_eval_runs_on_released_data(tmp_path, name, make, metric, one_thread):
    from mmlink.cli import main

    root = make(tmp_path / "data")
    out = tmp_path / "run"
    assert main(["eval", "--model", "tiny", "--task", name, "--data-root", str(root), "--out", str(out),
                 "--no-progress"]) == 0
    entry = json.loads((out / "metrics.json").read_text())["tasks"][name]
    assert entry["n"] == {"gqa": 3, "hateful_memes": 4, "vsr": 2, "visdial": 3}[name]  # memes: dev = seen + unseen
    assert metric in entry["metrics"] and entry["split"] == EVAL_TASKS.get(name).splits[0]
    if name == "vsr":  # the paper generates VSR's answer and matches it to true/false
        assert entry["scoring"] == "generate"
