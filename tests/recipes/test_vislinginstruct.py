"""`mmlink vislinginstruct` on `tiny` standing in for `mini-base` and a tiny CMAA checkpoint for `mini-cmaa`: every
row answers with its blind control, the AIO rows record their steps and cost, differences are exactly zero where
the same model answers the same way, and the files it writes."""

import json

import pytest

from mmlink import cli
from mmlink.models import load
from mmlink.recipes.vislinginstruct import ROWS, run_table

pytestmark = pytest.mark.usefixtures("one_thread")


def test_table_on_tiny(tmp_path):
    model, processor = load("tiny", cmaa="per_query")
    model.save_pretrained(tmp_path / "tiny_cmaa")
    processor.save_pretrained(tmp_path / "tiny_cmaa")
    models = {"mini-base": "tiny", "mini-cmaa": str(tmp_path / "tiny_cmaa")}
    tasks = ["bison", "caption"]
    result = run_table(tmp_path / "t", n=10, tasks=tasks, progress=False, models=models, image_size=32)
    runs = {r["label"]: r for r in result["runs"]}
    assert list(runs) == [label for label, *_ in ROWS]
    assert runs["cmaa"]["model_settings"]["cmaa"] == "per_query" and "cmaa" not in runs["base"]["model_settings"]
    for label, _, aio, _ in ROWS:
        for t in tasks:
            entry = runs[label]["tasks"][t]
            assert "blind" in entry and "gap" in entry and entry["n"] == 10
            assert ("aio" in entry) == aio
    # the blind pass re-uses the real pass's rewrites: AIO's rewrites depend on the instruction alone
    blind = [json.loads(x) for x in (tmp_path / "t" / "aio" / "blind" / "predictions.jsonl").read_text().splitlines()]
    assert blind and all(r["aio"]["reused"] for r in blind)
    diffs = result["differences"]
    assert set(diffs) == {"cmaa", "aio", "cmaa_aio"}
    assert all(len(diffs[row]["bison"]["accuracy"]["ci"]) == 2 and "CIDEr" in diffs[row]["caption"] for row in diffs)
    md = (tmp_path / "t" / "table.md").read_text()
    for text in ("Difference from the base", "real − blind", "AIO's cost", "+ CMAA + AIO", "BISON accuracy",
                 "Captioning fact precision", "Captioning CIDEr"):
        assert text in md, text
    saved = json.loads((tmp_path / "t" / "table.json").read_text())
    assert [r["row"] for r in saved["rows"]] == ["base", "cmaa", "aio", "cmaa_aio"] and saved["rows"][2]["aio"]
    assert (tmp_path / "t" / "table.png").stat().st_size > 1000


def test_cli_errors(tmp_path, capsys):
    assert cli.main(["vislinginstruct", "--out", str(tmp_path), "--n", "0"]) == 2
    assert "--n: n must be >= 1, got 0" in capsys.readouterr().err
    assert cli.main(["vislinginstruct", "--out", str(tmp_path), "--tasks", "storytelling"]) == 2
    assert "tasks must be some of" in capsys.readouterr().err
