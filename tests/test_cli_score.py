"""`mmlink score`: one JSON object on stdout, agreeing with pycocoevalcap; errors are one line on stderr, exit 2."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("pycocoevalcap")
from lightimport import run_light  # noqa: E402

from mmlink.cli import main  # noqa: E402

_spec = importlib.util.spec_from_file_location("_score_fixture", Path(__file__).with_name("test_metrics.py"))
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)  # the caption fixture and the direct pycocoevalcap reference


def _run(capsys, *argv):
    code = main(["score", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_prints_one_json_object_agreeing_with_pycocoevalcap(tmp_path, capsys):
    pred, ref = fx.write_fixture(tmp_path)
    code, out, err = _run(capsys, "--pred", pred, "--ref", ref)
    assert code == 0 and err == ""
    assert out.count("\n") == 1
    result = json.loads(out)
    assert list(result) == ["BLEU-4", "ROUGE-L", "CIDEr", "n"] and result["n"] == 20
    fx._assert_agree(result, fx.direct(fx.PREDS, fx.REFS))


def test_metrics_subset_prints_only_those_keys(tmp_path, capsys):
    pred, ref = fx.write_fixture(tmp_path)
    code, out, _ = _run(capsys, "--pred", pred, "--ref", ref, "--metrics", "cider,bleu4")
    assert code == 0 and list(json.loads(out)) == ["BLEU-4", "CIDEr", "n"]
    code, out, _ = _run(capsys, "--pred", pred, "--ref", ref, "--metrics", "rougeL")
    assert code == 0 and list(json.loads(out)) == ["ROUGE-L", "n"]


@pytest.mark.skipif(shutil.which("java") is None, reason="`java` is not on PATH: the PTB tokenizer needs Java")
def test_ptb(tmp_path, capsys):
    pred, ref = fx.write_fixture(tmp_path)
    code, out, err = _run(capsys, "--pred", pred, "--ref", ref, "--tokenize", "ptb")
    assert code == 0 and err == ""  # java's "PTBTokenizer tokenized …" line is not passed on
    fx._assert_agree(json.loads(out), fx.direct(fx.PREDS, fx.REFS, "ptb"))


def test_java_missing(tmp_path, capsys, monkeypatch):
    pred, ref = fx.write_fixture(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    code, out, err = _run(capsys, "--pred", pred, "--ref", ref, "--tokenize", "ptb")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "needs Java" in err and "--tokenize simple" in err


def test_empty_prediction_warns_on_stderr(tmp_path, capsys):
    preds = dict(fx.PREDS)
    preds[6818] = ""
    pred, ref = fx.write_fixture(tmp_path, preds=preds)
    code, out, err = _run(capsys, "--pred", pred, "--ref", ref)
    assert code == 0 and json.loads(out)["n"] == 20
    assert "warning" in err and "'6818'" in err and "score 0" in err


@pytest.mark.parametrize(
    "edit, extra, pattern",
    [
        ("missing_pred", [], "in {ref} but not in {pred}: '6818'"),
        ("extra_pred", [], "in {pred} but not in {ref}: '12345'"),
        ("dup", [], "line 21: duplicate id '6818'"),
        ("empty", [], "{pred}: empty file"),
        ("badjson", [], "{ref} line 3: not valid JSON"),
        ("nofield", [], "{ref} line 1: missing field 'refs'"),
        (None, ["--metrics", "bleu4,spice"], "unknown metric(s) 'spice'; valid metrics: bleu1, bleu2"),
        ("small", [], "CIDEr needs a whole evaluation set"),
        ("nofile", [], "nope.jsonl"),
    ],
)
def test_errors_are_one_line_exit_2(tmp_path, capsys, edit, extra, pattern):
    pred, ref = fx.write_fixture(tmp_path)
    lines = pred.read_text().splitlines(keepends=True)
    if edit == "missing_pred":
        pred.write_text("".join(ln for ln in lines if '"id": 6818,' not in ln))
    elif edit == "extra_pred":
        pred.write_text("".join(lines) + json.dumps({"id": 12345, "text": "a dog"}) + "\n")
    elif edit == "dup":
        pred.write_text("".join(lines) + json.dumps({"id": "6818", "text": "a dog"}) + "\n")
    elif edit == "empty":
        pred.write_text("")
    elif edit == "badjson":
        rl = ref.read_text().splitlines(keepends=True)
        rl[2] = rl[2][:-5] + "\n"
        ref.write_text("".join(rl))
    elif edit == "nofield":
        ref.write_text('{"id": 1, "ref": ["a"]}\n')
    elif edit == "small":
        pred.write_text("".join(lines[:3]))
        ref.write_text("".join(ref.read_text().splitlines(keepends=True)[:3]))
    elif edit == "nofile":
        pred = tmp_path / "nope.jsonl"
    code, out, err = _run(capsys, "--pred", pred, "--ref", ref, *extra)
    assert code == 2 and out == ""
    assert err.startswith("mmlink score: error: ") and err.count("\n") == 1
    assert pattern.format(pred=pred, ref=ref) in err


def test_small_set_allowed_with_override(tmp_path, capsys):
    few = list(fx.PREDS)[:4]
    pred, ref = fx.write_fixture(tmp_path, {k: fx.PREDS[k] for k in few}, {k: fx.REFS[k] for k in few})
    code, out, _ = _run(capsys, "--pred", pred, "--ref", ref, "--min-cider-set", "4")
    assert code == 0 and json.loads(out)["n"] == 4


def test_subprocess_does_not_import_torch(tmp_path):
    pred, ref = fx.write_fixture(tmp_path)
    proc = run_light(
        "import sys, runpy\n"
        f"sys.argv = ['mmlink', 'score', '--pred', {str(pred)!r}, '--ref', {str(ref)!r}]\n"
        "try:\n"
        "    runpy.run_module('mmlink.cli', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
    )
    result = json.loads(proc.stdout)
    assert set(result) == {"BLEU-4", "ROUGE-L", "CIDEr", "n"}


def test_score_reads_one_task_of_an_eval_predictions_file(tmp_path, capsys):
    lines = [{"task": "bison", "id": "b0", "sample": "b0", "choice": "1", "answer": "1", "correct": True}]
    lines += [{"task": "cap", "id": f"c{i}", "text": f"a red ball number {i}", "refs": [f"a red ball {i}", "a ball"]}
              for i in range(12)]
    pred = tmp_path / "predictions.jsonl"
    pred.write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert main(["score", "--pred", str(pred), "--task", "cap"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 12 and result["BLEU-4"] > 0
    assert main(["score", "--pred", str(pred), "--task", "bison"]) == 2
    assert "closed-ended answer (a choice, no text)" in capsys.readouterr().err
    assert main(["score", "--pred", str(pred), "--task", "nope"]) == 2
    assert "no records of task 'nope'" in capsys.readouterr().err
