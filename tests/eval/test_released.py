"""Released data sets in the harness: --data-root, splits, and the VQA-accuracy, retrieval and AUC scores on `tiny`."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmlink.eval.bootstrap import auc, weighted_auc
from mmlink.eval.closed import answer_rank, retrieval_metrics
from mmlink.eval.harness import EvalConfig, evaluate, task_data
from mmlink.eval.tasks import EVAL_TASKS, EvalTask, Item


def _images(root: Path, n: int) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = root / f"im{i}.png"
        Image.new("RGB", (32, 32), (40 * i % 255, 90, 200 - 30 * i % 200)).save(path)
        paths.append(str(path))
    return paths


def _record(rid, images, prompt, reference, **meta):
    return {"id": rid, "image": images, "meta": meta,
            "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": reference}]}


def _vqa_reader(root: Path, split: str, cache: Path) -> list[dict]:
    ims = sorted(str(p) for p in Path(root).glob("*.png"))
    answers = [["red"] * 3 + ["blue"] * 7, ["2"] * 10, ["yes"]]
    return [_record(f"{split}-{i}", [ims[i]], "<image>\nQuestion: what is it? Short answer:", a[0], answers=a)
            for i, a in enumerate(answers)]


def _rank_reader(root: Path, split: str, cache: Path) -> list[dict]:
    ims = sorted(str(p) for p in Path(root).glob("*.png"))
    options = ["a cat", "a dog", "nothing", "two birds", "a red ball"]
    return [_record(f"q{i}", [ims[i]], "<image>\nWhat is shown?", options[i], choices=options, answer=options[i])
            for i in range(3)]


def _memes_reader(root: Path, split: str, cache: Path) -> list[dict]:
    ims = sorted(str(p) for p in Path(root).glob("*.png"))
    return [_record(f"m{i}", [ims[i]], "<image>\nIs it hateful? Answer:", "yes" if i % 2 else "no",
                    choices=["yes", "no"], answer="yes" if i % 2 else "no") for i in range(4)]


def _category_reader(root: Path, split: str, cache: Path) -> list[dict]:
    ims = sorted(str(p) for p in Path(root).glob("*.png"))
    return [_record(f"c{i}", [ims[i]], "<image>\nWhich?\n(A) x\n(B) y", "A", choices=["A", "B"],
                    answer="A" if i % 2 else "B", category="one" if i < 3 else "two") for i in range(4)]


TASKS = (EvalTask("test_vqa_released", "vqa", reader=_vqa_reader, splits=("val", "test"), max_new_tokens=4),
         EvalTask("test_retrieval_released", "rank", reader=_rank_reader, splits=("val",), metric="retrieval"),
         EvalTask("test_auc_released", "rank", reader=_memes_reader, splits=("dev",), metric="auc", chance=50.0),
         EvalTask("test_category_released", "rank", reader=_category_reader, splits=("test",)))


@pytest.fixture(autouse=True)
def released_tasks(monkeypatch):
    """This module's tasks, registered for each test and gone after it."""
    for task in TASKS:
        monkeypatch.setitem(EVAL_TASKS.items, task.name, task)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("released")
    _images(root, 4)
    return root


def _run(tmp_path, task, root, **kw):
    config = EvalConfig(out=str(tmp_path / "run"), data_root={"*": str(root)}, progress=False, **kw)
    return evaluate("tiny", [task], config)


def test_vqa_task_scores_the_standard_vqa_accuracy_of_its_answers(tmp_path, root, one_thread):
    from mmlink.eval.vqa import vqa_accuracy

    metrics = _run(tmp_path, "test_vqa_released", root)
    entry = metrics["tasks"]["test_vqa_released"]
    assert entry["n"] == 3 and entry["split"] == "val" and entry["data"] == str(root)
    rows = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    by_id = {r["id"]: r for r in rows}
    expected = [vqa_accuracy(by_id[f"val-{i}"]["text"], a)
                for i, a in enumerate([["red"] * 3 + ["blue"] * 7, ["2"] * 10, ["yes"]])]
    assert entry["metrics"]["VQA accuracy"] == pytest.approx(100 * sum(expected) / 3)
    assert "VQA accuracy" in entry["ci"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "test_vqa_released" in report and "VQA accuracy" in report


def test_retrieval_metrics_follow_the_stored_likelihoods(tmp_path, root, one_thread):
    metrics = _run(tmp_path, "test_retrieval_released", root, option_scoring="mean")
    entry = metrics["tasks"]["test_retrieval_released"]
    rows = {json.loads(line)["id"]: json.loads(line)
            for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()}
    ranks = []
    for i, answer in enumerate(["a cat", "a dog", "nothing"]):
        scores = np.array(rows[f"q{i}"]["logprob"]) / np.array(rows[f"q{i}"]["tokens"])
        ranks.append(int((scores >= scores[i]).sum()))
    assert entry["metrics"]["MRR"] == pytest.approx(100 * np.mean([1 / r for r in ranks]))
    assert entry["metrics"]["R@1"] == pytest.approx(100 * np.mean([r == 1 for r in ranks]))
    assert entry["metrics"]["mean rank"] == pytest.approx(np.mean(ranks))
    assert entry["scoring"] == "mean"


def test_auc_task_scores_the_first_candidates_margin(tmp_path, root, one_thread):
    metrics = _run(tmp_path, "test_auc_released", root, split="dev")
    entry = metrics["tasks"]["test_auc_released"]
    rows = {json.loads(line)["id"]: json.loads(line)
            for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()}
    margin = {i: rows[f"m{i}"]["logprob"][0] - rows[f"m{i}"]["logprob"][1] for i in range(4)}
    expected = auc([margin[1], margin[3]], [margin[0], margin[2]])
    assert entry["metrics"]["AUC"] == pytest.approx(100 * expected)
    assert entry["chance"] == 50.0 and "AUC" in entry["ci"]


def test_auc_and_retrieval_refuse_generated_answers_before_loading(tmp_path, root):
    with pytest.raises(ValueError, match="--option-scoring sum or mean"):
        _run(tmp_path, "test_auc_released", root, option_scoring="generate")


def test_data_root_errors_name_the_fix(tmp_path, root):
    with pytest.raises(ValueError, match="no reader for a released data set; tasks with one: .*test_vqa_released"):
        _run(tmp_path, "caption", root)
    with pytest.raises(ValueError, match=r"--split 'train': task 'test_vqa_released' has split\(s\) val, test"):
        task_data(EVAL_TASKS.get("test_vqa_released"),
                  EvalConfig(out=str(tmp_path), data_root={"*": str(root)}, split="train"))
    with pytest.raises(ValueError, match="--data-root names task"):
        evaluate("tiny", ["caption"], EvalConfig(out=str(tmp_path), data_root={"bison": str(root)}))


def test_reader_only_task_without_data_root_says_how_to_give_it(tmp_path):
    with pytest.raises(ValueError, match="reads a released data set: give its directory with --data-root"):
        task_data(EVAL_TASKS.get("test_vqa_released"), EvalConfig(out=str(tmp_path)))


def test_a_bare_data_root_prefers_the_tasks_own_subdirectory(tmp_path):
    (tmp_path / "test_vqa_released").mkdir()
    config = EvalConfig(out=str(tmp_path / "o"), data_root={"*": str(tmp_path)})
    assert task_data(EVAL_TASKS.get("test_vqa_released"), config).path == tmp_path / "test_vqa_released"
    assert task_data(EVAL_TASKS.get("test_retrieval_released"), config).path == tmp_path


def test_answer_rank_counts_ties_against_the_answer():
    row = {"logprob": [-1.0, -2.0, -1.0, -3.0], "tokens": [1, 1, 1, 1]}
    assert answer_rank(row, ["a", "b", "c", "d"], "a", "sum") == 2  # tied with "c": no credit for the tie
    assert answer_rank(row, ["a", "b", "c", "d"], "b", "sum") == 3
    items = [Item("x", "x", [], [], candidates=["a", "b", "c", "d"], answer="b")]
    assert retrieval_metrics(items, {"x": row}, "sum") == {"MRR": pytest.approx(100 / 3), "R@1": 0.0, "R@5": 100.0,
                                                           "R@10": 100.0, "mean rank": 3.0}


def test_weighted_auc_is_the_mann_whitney_u_and_weights_count_as_repeats():
    assert weighted_auc([0.9, 0.1, 0.5, 0.5], [1, 0, 1, 0]) == pytest.approx(0.875)  # one tie: half credit
    repeated = weighted_auc([0.9, 0.9, 0.1, 0.5, 0.5], [1, 1, 0, 1, 0])
    assert weighted_auc([0.9, 0.1, 0.5, 0.5], [1, 0, 1, 0], [2, 1, 1, 1]) == pytest.approx(repeated)
    assert np.isnan(weighted_auc([0.3, 0.4], [1, 1]))




def test_categories_are_scored_each_and_averaged(tmp_path, root, one_thread):
    metrics = _run(tmp_path, "test_category_released", root)
    entry = metrics["tasks"]["test_category_released"]
    rows = {json.loads(line)["id"]: json.loads(line)
            for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()}
    one = 100 * np.mean([rows[f"c{i}"]["correct"] for i in range(3)])
    two = 100 * float(rows["c3"]["correct"])
    assert entry["by_category"] == {"one": {"n": 3, "accuracy": pytest.approx(one)},
                                    "two": {"n": 1, "accuracy": pytest.approx(two)}}
    assert entry["metrics"]["accuracy (category mean)"] == pytest.approx((one + two) / 2)
    assert "per category: one" in (tmp_path / "run" / "report.md").read_text()



def _domain_reader(root: Path, split: str, cache: Path) -> list[dict]:
    ims = sorted(str(p) for p in Path(root).glob("*.png"))
    words = ["a red ball", "a blue box", "two green trees", "a small yellow car"]
    return [_record(f"d{i}", [ims[i]], "<image>\nA short image description:", words[i],
                    refs=[words[i], words[(i + 1) % 4]], category="in" if i < 2 else "out") for i in range(4)]


def test_generation_categories_are_scored_as_their_own_sets(tmp_path, root, monkeypatch, one_thread):
    from mmlink.metrics import score

    monkeypatch.setitem(EVAL_TASKS.items, "test_domains", EvalTask("test_domains", "generate", reader=_domain_reader,
                                                                   splits=("val",), max_new_tokens=4))
    metrics = _run(tmp_path, "test_domains", root, min_cider_set=2)
    entry = metrics["tasks"]["test_domains"]
    rows = {json.loads(line)["id"]: json.loads(line)
            for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()}
    for category, ids in (("in", ["d0", "d1"]), ("out", ["d2", "d3"])):
        want = score({i: rows[i]["text"] for i in ids}, {i: rows[i]["refs"] for i in ids}, min_cider_set=None)
        got = entry["by_category"][category]
        assert got["n"] == 2 and got["CIDEr"] == pytest.approx(want["CIDEr"]) and got["BLEU-4"] == pytest.approx(
            want["BLEU-4"])
    assert "`in` (n=2)" in (tmp_path / "run" / "report.md").read_text()


def test_a_tasks_own_scoring_is_recorded_so_runs_cannot_mix(tmp_path, root, monkeypatch):
    monkeypatch.setitem(EVAL_TASKS.items, "test_own_scoring",
                        EvalTask("test_own_scoring", "rank", reader=_category_reader, splits=("test",),
                                 option_scoring="generate"))
    _run(tmp_path, "test_own_scoring", root, limit=1, max_new_tokens=2)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["option_scoring"] == "sum" and run["task_option_scoring"] == {"test_own_scoring": "generate"}
    with pytest.raises(ValueError, match="holds predictions of another run"):
        _run(tmp_path, "test_own_scoring", root, limit=1, max_new_tokens=2, option_scoring="sum")
