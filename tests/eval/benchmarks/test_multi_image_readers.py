"""Readers of the multi-image benchmarks (MuirBench, BLINK, Mantis-Eval, MMIU) on fixtures written in each release's
own format, built with `datasets` and tiny PIL images.

Formats: MuirBench — huggingface.co/datasets/MUIRBENCH/MUIRBENCH (data/test-*.parquet; fields as lmms-eval
lmms_eval/tasks/muirbench reads them); BLINK — huggingface.co/datasets/BLINK-Benchmark/BLINK (one folder per
subtask config, fields as github.com/zeyofu/BLINK_Benchmark eval/test_benchmark.py reads them); Mantis-Eval —
huggingface.co/datasets/TIGER-Lab/Mantis-Eval (mantis_eval/test-*.parquet, features of github.com/TIGER-AI-Lab/Mantis
data/upload_test_dataset_to_hf.py); MMIU — huggingface.co/datasets/FanqingM/MMIU-Benchmark (all.parquet plus the
image archives unzipped into folders named after them).
"""

import json
from pathlib import Path

import datasets
import pytest
from PIL import Image

from mmlink.eval.benchmarks import multi_image as mi
from mmlink.eval.tasks import EVAL_TASKS

COLORS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200)]


def _pil(k: int) -> Image.Image:
    return Image.new("RGB", (8, 8), COLORS[k % len(COLORS)])


def _items(name: str, records: list[dict]) -> list:
    task = EVAL_TASKS.get(name)
    return [it for r in records for it in task.build_items(r)]


def _check_images(record: dict) -> None:
    assert record["image"] and all(Path(p).is_absolute() and Path(p).is_file() for p in record["image"])
    assert record["conversations"][0]["value"].count("<image>") == len(record["image"])


# --------------------------------------------------------------------------------------------- MuirBench

MUIR_FEATURES = datasets.Features({
    "idx": datasets.Value("string"), "task": datasets.Value("string"), "image_relation": datasets.Value("string"),
    "image_type": datasets.Value("string"), "question": datasets.Value("string"),
    "options": datasets.Sequence(datasets.Value("string")), "answer": datasets.Value("string"),
    "image_list": datasets.Sequence(datasets.Image()), "counterpart_idx": datasets.Value("string")})


def _muir_rows(**override) -> dict:
    rows = {
        "idx": ["1", "2"],
        "task": ["Counting", "Visual Retrieval"],
        "image_relation": ["Independent", "Multiview"],
        "image_type": ["Photography", "Satellite"],
        "question": ["How many mittens are in <image> and <image>?",
                     "Which image shows the same building as <image>?"],
        "options": [["Four", "Three", "None of the choices provided"], ["<image>", "<image>", "NO_ANSWER"]],
        "answer": ["A", "B"],
        "image_list": [[_pil(0), _pil(1)], [_pil(2), _pil(3), _pil(4)]],
        "counterpart_idx": ["1001", "1002"],
    }
    rows.update(override)
    return rows


def _write_muir(root: Path, layout: str = "parquet", **override) -> Path:
    ds = datasets.Dataset.from_dict(_muir_rows(**override), features=MUIR_FEATURES)
    if layout == "parquet":
        (root / "data").mkdir(parents=True)
        ds.to_parquet(str(root / "data" / "test-00000-of-00001.parquet"))
    else:
        datasets.DatasetDict({"test": ds}).save_to_disk(str(root))
    return root


@pytest.mark.parametrize("layout", ["parquet", "saved"])
def test_muirbench_reads_the_hub_layout_and_a_saved_copy(tmp_path, layout):
    root = _write_muir(tmp_path / "muir", layout)
    records = mi.read_muirbench(root, "test", tmp_path / "cache")
    assert [r["id"] for r in records] == ["1", "2"]
    for r in records:
        _check_images(r)
    assert all(Path(p).parent == tmp_path / "cache" for r in records for p in r["image"])
    first, second = records
    # the authors' create_prompt (MuirBench eval/utils/preprocess.py), <image> tokens kept inline
    assert first["conversations"][0]["value"] == (
        "Question: How many mittens are in <image> and <image>?\nChoices:\n(A) Four\n(B) Three\n"
        "(C) None of the choices provided\n"
        "Hint: Please provide the correct option letter, such as A, B, C, D, directly.\nAnswer:")
    assert first["meta"]["choices"] == ["A", "B", "C"] and first["meta"]["answer"] == "A"
    assert first["meta"]["category"] == "Counting" and first["meta"]["counterpart_idx"] == "1001"
    # options that are images: the question's token plus one per option, in image_list order
    assert "(A) <image>\n(B) <image>\n(C) NO_ANSWER" in second["conversations"][0]["value"]
    assert len(second["image"]) == 3 and second["meta"]["answer"] == "B"
    items = _items("muirbench", records)
    assert [(it.candidates, it.answer) for it in items] == [(["A", "B", "C"], "A"), (["A", "B", "C"], "B")]


def test_muirbench_errors_name_file_record_and_field(tmp_path):
    root = _write_muir(tmp_path / "a", question=["How many mittens are in <image>?",
                                                  "Which image shows the same building as <image>?"])
    with pytest.raises(ValueError, match=r"test-00000-of-00001\.parquet.*record '1'.*field 'question'.*1 <image>"):
        mi.read_muirbench(root, "test", tmp_path / "cache")
    root = _write_muir(tmp_path / "b", answer=["A", "E"])
    with pytest.raises(ValueError, match=r"test-00000-of-00001\.parquet.*record '2'.*field 'answer'"):
        mi.read_muirbench(root, "test", tmp_path / "cache")
    with pytest.raises(ValueError, match="unknown split 'val'"):
        mi.read_muirbench(root, "val", tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="MUIRBENCH"):
        mi.read_muirbench(tmp_path / "empty", "test", tmp_path / "cache")


def test_muirbench_end_to_end_on_tiny(tmp_path, one_thread):
    from mmlink.cli import main

    root = _write_muir(tmp_path / "muir")
    out = tmp_path / "run"
    assert main(["eval", "--model", "tiny", "--task", "muirbench", "--data-root", str(root), "--out", str(out),
                 "--max-new-tokens", "3", "--no-progress"]) == 0
    entry = json.loads((out / "metrics.json").read_text())["tasks"]["muirbench"]
    assert entry["n"] == 2 and entry["split"] == "test" and entry["scoring"] == "generate"
    assert 0.0 <= entry["metrics"]["accuracy"] <= 100.0


# --------------------------------------------------------------------------------------------- BLINK

BLINK_FEATURES = datasets.Features({
    "idx": datasets.Value("string"), "question": datasets.Value("string"), "sub_task": datasets.Value("string"),
    **{f"image_{k}": datasets.Image() for k in range(1, 5)},
    "choices": datasets.Sequence(datasets.Value("string")), "answer": datasets.Value("string"),
    "prompt": datasets.Value("string"), "explanation": datasets.Value("string")})


def _blink_rows(subtask: str, n_images: int, split: str = "val", **override) -> dict:
    q = {"Counting": "How many blue floats are there?", "Jigsaw": "Which image completes the picture?"}[subtask]
    choices = ["0", "3", "2"] if subtask == "Counting" else ["the second image", "the third image"]
    rows = {
        "idx": [f"{split}_{subtask}_1"], "question": [q], "sub_task": [subtask],
        **{f"image_{k}": [_pil(k) if k <= n_images else None] for k in range(1, 5)},
        "choices": [choices], "answer": ["(B)" if split == "val" else "hidden"],
        "prompt": [q + "\nSelect from the following choices.\n"
                   + "\n".join(f"({'ABC'[i]}) {c}" for i, c in enumerate(choices))],
        "explanation": [""],
    }
    rows.update(override)
    return rows


def _write_blink(root: Path, **override) -> Path:
    for subtask, n in (("Counting", 1), ("Jigsaw", 3)):
        (root / subtask).mkdir(parents=True)
        for split in ("val", "test"):
            rows = _blink_rows(subtask, n, split, **(override if subtask == "Jigsaw" and split == "val" else {}))
            datasets.Dataset.from_dict(rows, features=BLINK_FEATURES).to_parquet(
                str(root / subtask / f"{split}-00000-of-00001.parquet"))
    return root


def test_blink_reads_every_subtask_folder(tmp_path):
    root = _write_blink(tmp_path / "blink")
    (root / "notes").mkdir()  # a folder holding no data set is not a subtask
    records = mi.read_blink(root, "val", tmp_path / "cache")
    assert [r["id"] for r in records] == ["val_Counting_1", "val_Jigsaw_1"]
    for r in records:
        _check_images(r)
    counting, jigsaw = records
    assert counting["conversations"][0]["value"] == (
        "<image>\nNote: You only need to respond with A, B, C without providing any additional information.\n"
        "How many blue floats are there?\nSelect from the following choices.\n(A) 0\n(B) 3\n(C) 2")
    assert jigsaw["conversations"][0]["value"].startswith(
        "Image 1: <image>\nImage 2: <image>\nImage 3: <image>\nNote: You only need to respond with A, B without")
    assert len(jigsaw["image"]) == 3 and jigsaw["meta"]["category"] == "Jigsaw"
    assert [(it.candidates, it.answer) for it in _items("blink", records)] == [(["A", "B", "C"], "B"),
                                                                                (["A", "B"], "B")]
    # one subtask's folder given directly
    assert [r["id"] for r in mi.read_blink(root / "Jigsaw", "val", tmp_path / "cache")] == ["val_Jigsaw_1"]


def test_blink_errors_name_file_record_and_field(tmp_path):
    root = _write_blink(tmp_path / "a", answer=["(C)"])  # Jigsaw has two choices
    with pytest.raises(ValueError, match=r"Jigsaw/val-00000-of-00001\.parquet.*record 'val_Jigsaw_1'.*'answer'"):
        mi.read_blink(root, "val", tmp_path / "cache")
    with pytest.raises(ValueError, match="unknown split 'test'"):
        mi.read_blink(root, "test", tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no BLINK subtask"):
        mi.read_blink(tmp_path / "empty", "val", tmp_path / "cache")


# --------------------------------------------------------------------------------------------- Mantis-Eval

MANTIS_FEATURES = datasets.Features({
    "id": datasets.Value("string"), "images": datasets.Sequence(datasets.Image()),
    "question_type": datasets.Value("string"), "question": datasets.Value("string"),
    "options": datasets.Sequence(datasets.Value("string")), "answer": datasets.Value("string"),
    "data_source": datasets.Value("string"), "category": datasets.Value("string")})


def _write_mantis(root: Path, **override) -> Path:
    rows = {
        "id": ["1", "2", "3"],
        "images": [[_pil(0), _pil(1)], [_pil(2), _pil(3)], [_pil(4), _pil(0)]],
        "question_type": ["multi-choice", "multi-choice", "short-answer"],
        "question": ["<image> <image> What change can be observed in the second image?",
                     "<image> Which image is brighter?",  # one token for two images: the official code prepends
                     "How many cats are in <image> and <image> together?"],
        "options": [["The umbrella is gone", "The red coat moved", "The car is missing"],
                    ["A. the first", "B. the second"], []],
        "answer": ["B", "(A)", "3"],
        "data_source": ["original dataset"] * 3,
        "category": ["difference description", "comparison", "counting"],
    }
    rows.update(override)
    (root / "mantis_eval").mkdir(parents=True)
    datasets.Dataset.from_dict(rows, features=MANTIS_FEATURES).to_parquet(
        str(root / "mantis_eval" / "test-00000-of-00001.parquet"))
    return root


def test_mantis_eval_multiple_choice_and_short_answer(tmp_path):
    root = _write_mantis(tmp_path / "mantis")
    mc = mi.read_mantis_eval(root, "test", tmp_path / "cache")
    assert [r["id"] for r in mc] == ["1", "2"]
    for r in mc:
        _check_images(r)
    # mantis/benchmark/eval.py: unlabelled options get "(A)", labelled ones are kept; the multi-choice template
    assert mc[0]["conversations"][0]["value"] == (
        "<image> <image> What change can be observed in the second image?\n (A) The umbrella is gone\n"
        " (B) The red coat moved\n (C) The car is missing\nAnswer with the option's letter from the given choices "
        "directly.")
    assert mc[1]["conversations"][0]["value"].startswith("<image><image> Which image is brighter?\n A. the first\n")
    assert [(it.candidates, it.answer) for it in _items("mantis_eval", mc)] == [(["A", "B", "C"], "B"),
                                                                                 (["A", "B"], "A")]
    assert mc[0]["meta"]["category"] == "difference description"
    short = mi.read_mantis_eval_short(root, "test", tmp_path / "cache")
    assert [r["id"] for r in short] == ["3"]
    _check_images(short[0])
    assert short[0]["meta"]["answers"] == ["3"]
    assert short[0]["conversations"][0]["value"].endswith("Answer the question using a single word or phrase.")
    items = _items("mantis_eval_short", short)
    assert items[0].refs == ["3"]


def test_mantis_eval_errors_name_file_record_and_field(tmp_path):
    root = _write_mantis(tmp_path / "a", question=["<image> <image> <image> Too many?", "<image> ok?", "q <image>"])
    with pytest.raises(ValueError, match=r"mantis_eval/test-00000-of-00001\.parquet.*record '1'.*'question'.*3 "):
        mi.read_mantis_eval(root, "test", tmp_path / "cache")
    root = _write_mantis(tmp_path / "b", question_type=["multi-choice", "open", "short-answer"])
    with pytest.raises(ValueError, match=r"record '2'.*field 'question_type'"):
        mi.read_mantis_eval(root, "test", tmp_path / "cache")
    (tmp_path / "c" / "nlvr2").mkdir(parents=True)  # another config of the hub snapshot is not Mantis-Eval
    with pytest.raises(FileNotFoundError, match="mantis_eval"):
        mi.read_mantis_eval(tmp_path / "c", "test", tmp_path / "cache")


# --------------------------------------------------------------------------------------------- MMIU


def _write_mmiu(root: Path, **override) -> Path:
    paths = []
    for task, domain, n in (("forensic_detection_blink", "Low-level-semantic", 4), ("spot_the_diff", "2D-spatial", 2)):
        d = root / domain / task
        d.mkdir(parents=True)
        rel = []
        for k in range(n):
            _pil(k).save(d / f"{task}_0_{k}.jpg")
            rel.append(f"./{domain}/{task}/{task}_0_{k}.jpg")
        paths.append(rel)
    rows = {
        "task": ["forensic_detection_blink", "spot_the_diff"],
        "visual_input_component": ["natural image", "natural image"],
        "source": ["blink", "spot-the-diff"],
        "options": ["A: the first image\nB: the second image\nC: the third image\nD: the fourth image",
                    "A: a car is gone\nB: nothing changed"],
        "question": ["Which image is most likely to be a real photograph?", "What changed?"],
        "context": ["You are a judge in a photography competition, and now you are given the four images.", ""],
        "input_image_path": paths,
        "output": ["C", "A"],
    }
    rows.update(override)
    datasets.Dataset.from_dict(rows).to_parquet(str(root / "all.parquet"))
    return root


def test_mmiu_reads_the_parquet_and_the_unzipped_archives(tmp_path):
    root = _write_mmiu(tmp_path / "mmiu")
    records = mi.read_mmiu(root, "test", tmp_path / "cache")
    assert [r["id"] for r in records] == ["forensic_detection_blink_0", "spot_the_diff_1"]
    for r in records:
        _check_images(r)
    first, second = records
    assert first["image"][0] == str((root / "Low-level-semantic" / "forensic_detection_blink"
                                     / "forensic_detection_blink_0_0.jpg").resolve())
    assert first["conversations"][0]["value"] == (
        "Image 1: <image>\nImage 2: <image>\nImage 3: <image>\nImage 4: <image>\n"
        "You are a judge in a photography competition, and now you are given the four images.\n"
        "Which image is most likely to be a real photograph?\n"
        "A: the first image\nB: the second image\nC: the third image\nD: the fourth image\n"
        "Answer with the option's letter from the given choices directly.")
    assert first["meta"]["options"][2] == "the third image" and first["meta"]["category"] == "forensic_detection_blink"
    assert second["conversations"][0]["value"].startswith("Image 1: <image>\nImage 2: <image>\nWhat changed?\n")
    assert [(it.candidates, it.answer) for it in _items("mmiu", records)] == [(["A", "B", "C", "D"], "C"),
                                                                               (["A", "B"], "A")]


def test_mmiu_reads_a_json_copy_in_the_nested_form(tmp_path):
    root = _write_mmiu(tmp_path / "mmiu")
    flat = datasets.Dataset.from_parquet(str(root / "all.parquet")).to_list()
    (root / "all.parquet").unlink()
    nested = [{"task": r["task"], "options": r["options"], "output": {"output_text": r["output"]},
               "input": {"question": r["question"], "context": r["context"],
                         "input_image_path": r["input_image_path"]}} for r in flat]
    (root / "all.json").write_text(json.dumps(nested))
    records = mi.read_mmiu(root, "test", tmp_path / "cache")
    assert [r["meta"]["answer"] for r in records] == ["C", "A"] and len(records[0]["image"]) == 4


def test_mmiu_errors_name_file_record_and_field(tmp_path):
    root = _write_mmiu(tmp_path / "a")
    (root / "2D-spatial" / "spot_the_diff" / "spot_the_diff_0_1.jpg").unlink()
    with pytest.raises(ValueError, match=r"all\.parquet.*record 'spot_the_diff_1'.*'input_image_path'.*unzip "
                                         r"2D-spatial\.zip"):
        mi.read_mmiu(root, "test", tmp_path / "cache")
    root = _write_mmiu(tmp_path / "b", output=["E", "A"])
    with pytest.raises(ValueError, match=r"all\.parquet.*record 'forensic_detection_blink_0'.*field 'output'"):
        mi.read_mmiu(root, "test", tmp_path / "cache")
    root = _write_mmiu(tmp_path / "c", options=["the first image or the second", "A: x\nB: y"])
    with pytest.raises(ValueError, match=r"record 'forensic_detection_blink_0'.*field 'options'"):
        mi.read_mmiu(root, "test", tmp_path / "cache")
    (tmp_path / "d").mkdir()
    with pytest.raises(FileNotFoundError, match="all.parquet"):
        mi.read_mmiu(tmp_path / "d", "test", tmp_path / "cache")
