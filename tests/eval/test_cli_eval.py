"""`mmlink eval`, `mmlink report` and `mmlink bench` from the command line, on `tiny`."""

from __future__ import annotations

import csv
import json

import pytest

from mmlink.cli import main


def _eval(tmp_path, out, *extra):
    return main(["eval", "--model", "tiny", "--task", "bison", "--task", "change_caption", "--out", str(out),
                 "--data-dir", str(tmp_path / "data"), "--limit", "10", "--image-size", "32", "--max-new-tokens", "4",
                 "--no-progress", *extra])


def test_eval_then_report_over_two_runs(tmp_path, capsys):
    assert _eval(tmp_path, tmp_path / "a") == 0
    out = capsys.readouterr().out
    assert "# Evaluation report" in out and "wrote" in out
    assert _eval(tmp_path, tmp_path / "b", "--option-scoring", "mean", "--blind", "--label", "normed") == 0
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())
    b = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert a["tasks"]["bison"]["scoring"] == "sum" and b["tasks"]["bison"]["scoring"] == "mean"
    assert "blind" not in a["tasks"]["bison"]  # world-fact scores join the gap when both passes define them
    assert set(b["tasks"]["change_caption"]["gap"]) - {"fact precision", "fact recall"} == {"ROUGE-L", "CIDEr",
                                                                                            "BLEU-4"}
    assert (tmp_path / "b" / "blind" / "predictions.jsonl").is_file() and b["config"]["blind"] is True
    assert set(a["tasks"]["bison"]["ci"]) == {"accuracy"}
    assert a["config"]["limit"] == 10 and a["config"]["tokenize"] == "simple"
    from mmlink.runtime import choose_dtype

    # --dtype auto by default, resolved for this machine and recorded with its reason
    assert a["config"]["dtype"] == "auto" and a["dtype"] == choose_dtype("auto").to_dict()
    assert json.loads((tmp_path / "a" / "run.json").read_text())["dtype"] == a["dtype"]["name"]
    # The same test set for both runs: ids agree.
    ids = [{json.loads(line)["id"] for line in (tmp_path / d / "predictions.jsonl").open()} for d in "ab"]
    assert ids[0] == ids[1] and len(ids[0]) == 20
    capsys.readouterr()
    assert main(["report", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp")]) == 0
    table = capsys.readouterr().out
    assert "normed" in table
    rows = list(csv.DictReader((tmp_path / "cmp" / "comparison.csv").open()))
    assert [r["run"] for r in rows] == ["tiny", "normed"]
    assert float(rows[0]["bison/accuracy"]) == pytest.approx(a["tasks"]["bison"]["metrics"]["accuracy"])
    assert float(rows[1]["change_caption/CIDEr"]) == pytest.approx(b["tasks"]["change_caption"]["metrics"]["CIDEr"])
    assert (tmp_path / "cmp" / "comparison.png").stat().st_size > 0


def test_eval_errors_are_one_line_and_exit_2(tmp_path, capsys):
    code = main(["eval", "--model", "tiny", "--task", "nope", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "unknown task 'nope'" in err and "group_caption" in err and "groups: all" in err
    code = main(["eval", "--model", "tiny", "--task", "bison", "--out", str(tmp_path / "x"),
                 "--data", "bison=" + str(tmp_path / "missing.jsonl")])
    assert code == 2 and "missing.jsonl" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "--model", "tiny", "--task", "bison", "--out", str(tmp_path / "x"), "--data", "no-equals"])
    assert "TASK=PATH" in capsys.readouterr().err


def test_eval_help_lists_every_task(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = capsys.readouterr().out
    for name in ("group_caption", "storytelling", "change_caption", "bison", "svo", "nlvr2", "eqben", "cola",
                 "vqa_options", "cad", "cad_qa", "--option-scoring", "--blind", "--judge-url"):
        assert name in text
    assert "--length-norm" not in text
    flat = " ".join(text.split())  # help lines wrap with the terminal's width
    assert "normalisation mean" in flat and "'unmatched'" in flat  # what the gray is, what generate counts


def test_bench_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--model", "tiny", "--images", "2", "--new-tokens", "3", "--repeats", "1", "--warmup", "0",
                 "--no-memory", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [(r["variant"], r["images"]) for r in result["rows"]] == [("base", 2), ("sam", 2)]
    assert all(r["generated_tokens"] == [3] for r in result["rows"])  # one timed call, 3 tokens forced
    from mmlink.runtime import choose_dtype

    auto = choose_dtype("auto", "cpu").to_dict()
    assert result["dtype"] == auto["name"] and result["dtype_choice"] == auto  # --dtype auto by default
    assert result["cpu_capability"] == auto["cpu_capability"]
    printed = capsys.readouterr().out
    assert f"CPU capability {auto['cpu_capability']}" in printed and f"dtype: {auto['reason']}" in printed


def test_a_small_smoke_run_finishes_with_cider_null_and_says_why(tmp_path, capsys):
    out = tmp_path / "smoke"
    code = main(["eval", "--model", "tiny", "--task", "change_caption", "--limit", "3", "--out", str(out),
                 "--image-size", "32", "--max-new-tokens", "4", "--no-progress"])
    assert code == 0
    entry = json.loads((out / "metrics.json").read_text())["tasks"]["change_caption"]
    assert entry["metrics"]["CIDEr"] is None and "fewer than --min-cider-set 10" in entry["cider_unreliable"]
    assert entry["metrics"]["BLEU-4"] is not None
    assert "CIDEr not reported: 3 item(s)" in (out / "report.md").read_text()


def test_a_device_this_machine_lacks_is_one_line(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = main(["eval", "--model", "tiny", "--task", "bison", "--out", str(tmp_path / "x"), "--device", "cuda"])
    assert code == 2
    assert "--device cuda: CUDA is not available" in capsys.readouterr().err


def test_eval_settings_from_a_config_file_and_task_groups(tmp_path, capsys):
    config = tmp_path / "eval.yaml"
    config.write_text(f"model: tiny\ntask: [sam]\nout: {tmp_path / 'cfg'}\nlimit: 2\nimage_size: 32\n"
                      "max_new_tokens: 3\nprogress: false\n")
    assert main(["eval", "--config", str(config), "--task", "bison,svo"]) == 0  # the command line wins for task
    tasks = json.loads((tmp_path / "cfg" / "metrics.json").read_text())["tasks"]
    assert list(tasks) == ["bison", "svo"] and tasks["bison"]["n"] == 2
    config.write_text("model: tiny\nlimt: 3\n")
    assert main(["eval", "--config", str(config)]) == 2
    assert "unknown key(s) ['limt']" in capsys.readouterr().err
    assert main(["eval", "--model", "tiny", "--out", str(tmp_path / "x")]) == 2
    assert "--task required" in capsys.readouterr().err


def test_task_groups_and_comma_lists_expand_in_order():
    from mmlink.eval.tasks import expand_tasks

    assert expand_tasks(["sam", "change_caption,bison"]) == ["group_caption", "storytelling", "change_caption",
                                                              "bison"]
    assert {"vist", "clevr_change"} <= set(expand_tasks(["sam_released"]))
    assert expand_tasks(["multi_image"])[:2] == ["muirbench", "blink"]
    with pytest.raises(ValueError, match="groups: all"):
        expand_tasks(["nope"])


def test_data_may_be_the_directory_mmlink_synth_wrote(tmp_path):
    from mmlink.data.synth import synthesize

    synthesize("bison", tmp_path / "bison", 3, "test", 0, image_size=32, progress=False)
    out = tmp_path / "o"
    assert main(["eval", "--model", "tiny", "--task", "bison", "--data", f"bison={tmp_path / 'bison'}",
                 "--out", str(out), "--no-progress"]) == 0
    entry = json.loads((out / "metrics.json").read_text())["tasks"]["bison"]
    assert entry["n"] == 3 and entry["data"].endswith("data.jsonl")
