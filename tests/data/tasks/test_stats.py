"""task_report: label balance, trivial baselines, caption-metric baseline."""

import builtins
import importlib.util

import numpy as np
import pytest

from mmlink.data.tasks import TASKS, WorldSample
from mmlink.data.tasks.stats import MIN_SAMPLES_FOR_METRICS, caption_scores, generate, normalize, task_report
from mmlink.data.world.scene import Scene


def closed_sample(answer, choices=("1", "2")):
    conv = [{"from": "human", "value": "Image 1: <image>\nImage 2: <image>\nq"}, {"from": "gpt", "value": answer}]
    return WorldSample([Scene("park"), Scene("beach")], conv, {"answer": answer, "choices": list(choices)})


def test_closed_report_counts_and_baselines():
    answers = ["1"] * 30 + ["2"] * 10
    r = task_report("toy", [closed_sample(a) for a in answers])
    assert r["kind"] == "closed" and r["n"] == 40
    assert r["label_distribution"] == {"1": 30, "2": 10}
    assert r["label_fractions"]["1"] == pytest.approx(0.75)
    assert r["chance"] == 0.5
    b = r["baselines"]
    assert b["majority"] == {"answer": "1", "accuracy": 0.75}
    assert b["first_image"] == {"answer": "1", "accuracy": 0.75}
    # the random baseline is reproducible and equals its own recomputation
    rng = np.random.default_rng(0)
    preds = [["1", "2"][int(k)] for k in rng.integers(2, size=40)]
    assert b["random"]["accuracy"] == pytest.approx(np.mean([p == a for p, a in zip(preds, answers)]))
    assert task_report("toy", [closed_sample(a) for a in answers]) == r


def test_closed_report_without_an_image_answer():
    r = task_report("toy", [closed_sample(a, ("True", "False")) for a in ["True", "False", "False"]])
    assert r["baselines"]["first_image"] is None
    assert r["baselines"]["first_choice"]["accuracy"] == pytest.approx(1 / 3)
    assert r["baselines"]["majority"]["answer"] == "False"


def test_match_task_first_image_is_identity_mapping():
    r = task_report("eqben", generate("eqben", "val", 60))
    assert r["baselines"]["first_image"]["answer"] == "1-A, 2-B"
    assert sum(r["label_distribution"].values()) == 60


def test_empty_report():
    assert task_report("x", [])["kind"] == "empty"


def test_normalize():
    assert normalize("The Red ball, is  here!") == "the red ball is here"


def test_caption_scores_refuses_small_sets_and_handles_missing_package(monkeypatch):
    assert "note" in caption_scores(["a b"] * 3, ["a b"] * 3)
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("pycocoevalcap"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    out = caption_scores(["a red ball"] * MIN_SAMPLES_FOR_METRICS, ["a red ball"] * MIN_SAMPLES_FOR_METRICS)
    assert "pycocoevalcap" in out["note"]
    with pytest.raises(ValueError):
        caption_scores(["a"], [])


def test_caption_scores_values():
    pytest.importorskip("pycocoevalcap")
    refs = [f"a {c} ball is on the left of the {k} tree" for c in ("red", "blue", "green")
            for k in ("big", "small", "old", "new")]  # fmt: skip
    perfect = caption_scores(refs, [r.upper() + "." for r in refs])  # case and punctuation do not count
    assert perfect["BLEU-4"] == pytest.approx(100, abs=1e-3)
    assert perfect["ROUGE-L"] == pytest.approx(100, abs=1e-3)
    assert perfect["CIDEr"] > 100
    worse = caption_scores(refs, ["a cat sits on a mat"] * len(refs))
    assert worse["BLEU-4"] < 1 and worse["ROUGE-L"] < perfect["ROUGE-L"] and worse["CIDEr"] < 10


def test_generation_report():
    ss = generate("change_caption", "train", 40)
    r = task_report("change_caption", ss)
    assert r["kind"] == "generation"
    lens = [len(s.conversations[1]["value"].split()) for s in ss]
    assert r["target_words"]["mean"] == pytest.approx(np.mean(lens))
    assert r["target_words"]["max"] == max(lens)
    base = r["baseline_first_image_caption"]
    if importlib.util.find_spec("pycocoevalcap") is None:
        assert "note" in base
    else:
        for k in ("BLEU-4", "ROUGE-L", "CIDEr"):
            assert 0 <= base[k] < 100


def test_cad_report_has_retrieval_baselines():
    r = task_report("cad", generate("cad", "test", 40))
    assert r["kind"] == "generation" and "retrieval" in r
    assert sum(r["retrieval"]["label_distribution"].values()) == 40
    assert set(r["meta_distributions"]["similarity"]) <= {"high", "medium", "low"}


MY_TASKS = ("group_caption", "storytelling", "change_caption", "mmlink_pair", "cad", "cad_qa", "bison", "svo", "eqben",
            "cola", "nlvr2")  # fmt: skip


@pytest.mark.parametrize("task", MY_TASKS)
def test_every_task_reports(task):
    assert task in TASKS
    r = task_report(task, generate(task, "val", 30))
    assert r["n"] == 30 and r["kind"] in ("closed", "generation")
    if r["kind"] == "closed":
        assert abs(sum(r["label_fractions"].values()) - 1) < 1e-9


@pytest.mark.parametrize("task", MY_TASKS)
def test_meta_is_plain_json(task):
    import json

    def walk(x):
        if isinstance(x, dict):
            assert all(isinstance(k, str) for k in x)
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        else:
            assert x is None or type(x) in (str, int, float, bool), type(x)

    for s in generate(task, "train", 40):
        walk(s.meta)
        assert json.loads(json.dumps(s.meta)) == s.meta
        for scene in s.scenes:
            assert type(scene.seed) is int and type(scene.lighting) is float and type(scene.context) is str


def test_generation_does_not_depend_on_the_hash_seed():
    import os
    import subprocess
    import sys

    code = (
        "import hashlib;from mmlink.data.tasks.stats import generate;h=hashlib.sha256()\n"
        f"for t in {MY_TASKS!r}:\n"
        "    for s in generate(t, 'test', 15): h.update(repr((s.scenes, s.conversations, s.meta)).encode())\n"
        "print(h.hexdigest())"
    )
    outs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "HF_HUB_OFFLINE": "1"}
        outs.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                check=True).stdout)  # fmt: skip
    assert len(outs) == 1
