"""`mmlink cadvi tables` on `tiny-llava` standing in for every row: both scorings, blind controls, the judge's
verdict, paired differences (exactly zero between identical models) and the files it writes."""

import json

import pytest

from mmlink.recipes import cadvi
from mmlink.recipes.cadvi_tables import ROWS, TABLE1, TABLE2, run_tables

pytestmark = pytest.mark.usefixtures("one_thread")


def test_tables_on_tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("MMLINK_CACHE", str(tmp_path / "cache"))  # no judge-check on record: "never measured"
    models = {preset: "tiny-llava" for preset, _ in ROWS}
    result = run_tables(tmp_path / "t", n=3, judge="template", progress=False, models=models, image_size=32)
    assert set(result["runs"]) == {"generate", "sum"}
    for scoring, runs in result["runs"].items():
        assert [r["label"] for r in runs] == [p for p, _ in ROWS]
        tasks = set(TABLE1) | (set(TABLE2) if scoring == "sum" else set())
        for run in runs:
            assert set(run["tasks"]) == tasks and run["config"]["option_scoring"] == scoring
            for t in tasks:
                assert "blind" in run["tasks"][t] and "gap" in run["tasks"][t]
        diffs = result["differences"][scoring]
        assert set(diffs) == {p for p, _ in ROWS[1:]}
        for per_task in diffs.values():  # the same weights answer the same items: differences are exactly zero
            for t in TABLE1:
                assert per_task[t]["accuracy"]["difference"] == 0.0
                assert per_task[t]["accuracy"]["ci"] == [0.0, 0.0]
    cadqa = result["runs"]["sum"][0]["tasks"]["cad_qa"]
    assert cadqa["judge"]["backend"] == "template" and not cadqa["judge"]["discrimination"]["measured"]
    assert {"rating", "fact precision", "fact recall"} <= set(cadqa["metrics"])
    md = (tmp_path / "t" / "tables.md").read_text()
    for text in ("Table 1 — exact match of the option", "Table 1 — candidate ranking", "Table 2 — CaD-QA",
                 "never measured", "EQBEN", "COLA", "chance", "real − blind", "Answers naming no option"):
        assert text in md, text
    assert json.loads((tmp_path / "t" / "tables.json").read_text())["sum"]["rows"][2]["preset"] == "tiny-llava"
    assert (tmp_path / "t" / "tables.png").stat().st_size > 1000


def test_tables_cli_errors(tmp_path, capsys):
    assert cadvi.main(["tables", "--out", str(tmp_path), "--n", "0"]) == 2
    assert "--n: n must be >= 1, got 0" in capsys.readouterr().err
    assert cadvi.main(["tables", "--out", str(tmp_path), "--scoring", "vote"]) == 2
    assert "scorings must be some of" in capsys.readouterr().err
