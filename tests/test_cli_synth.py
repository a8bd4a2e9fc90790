"""``mmlink synth`` and ``mmlink synth-check``: help with the task list, a small run, one-line errors (exit 2)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

import mmlink.data.synth as synth
from mmlink.cli import main
from mmlink.data.tasks import TASKS, WorldSample
from mmlink.data.world.scene import CONTEXTS, sample_identity, sample_scene


def cli_fake_task(rng, split):
    """A fake one-image CLI task whose docstring first line shows in --help.

    This second line must not show.
    """
    scene = sample_scene(rng, [sample_identity(rng, split)])
    return WorldSample([scene], [{"from": "human", "value": "<image>\nWhere is this?"},
                                 {"from": "gpt", "value": f"In the {scene.context}."}], {"context": scene.context})


def cli_fake_render(scene, size=224):
    img = Image.new("RGB", (size, size), (40 * CONTEXTS.index(scene.context) % 255, 120, 90))
    ImageDraw.Draw(img).ellipse([size // 4, size // 4, size // 2, size // 2], fill=(scene.seed % 255, 0, 0))
    return img


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setitem(TASKS.items, "cli_fake", cli_fake_task)
    monkeypatch.setattr(synth, "_resolve_render", lambda: cli_fake_render)
    monkeypatch.setattr(synth, "_stats_available", lambda: False)


def _synth(out, *extra, task="cli_fake", n="4", seed="0"):
    return main(["synth", task, "--out", str(out), "--n", n, "--split", "test", "--seed", seed,
                 "--image-size", "32", "--no-progress", *extra])


def _one_line_error(capsys, code, *words):
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and err.endswith("\n"), err
    for word in words:
        assert word in err, err
    return err


def test_synth_writes_the_dataset(fake, tmp_path, capsys):
    out = tmp_path / "set"
    assert _synth(out, "--preview") == 0
    stdout = capsys.readouterr().out
    assert "synth cli_fake: 4 records" in stdout and "preview.png" in stdout
    for name in ("data.jsonl", "data.json", "synth.json", "preview.png"):
        assert (out / name).is_file(), name
    assert len(list((out / "images").glob("*.png"))) == 4
    records = json.loads((out / "data.json").read_text())
    assert [r["id"] for r in records] == [f"cli_fake-test-s0-{i:06d}" for i in range(4)]

    assert _synth(out, n="6") == 0  # grows
    assert "resumed: 4 kept, 2 new" in capsys.readouterr().out
    assert len(json.loads((out / "data.json").read_text())) == 6


def test_synth_help_lists_tasks_resume_and_layout(fake, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["synth", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "cli_fake" in out and "A fake one-image CLI task whose docstring first line shows in --help." in out
    assert "This second line" not in out
    for name in TASKS.names():
        assert name in out
    words = ("tasks:", "resum", "data.jsonl", "images/", "synth.json", "--workers", "--preview", "Image 1: <image>")
    for word in words:
        assert word in out, word


def test_top_level_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "synth" in out and "synth-check" in out and "generate" in out


def test_unknown_task_is_one_line(fake, tmp_path, capsys):
    code = _synth(tmp_path / "x", task="no_such_task")
    _one_line_error(capsys, code, "mmlink synth: error: unknown task 'no_such_task'", "cli_fake")
    assert not (tmp_path / "x").exists()


def test_parameter_mismatch_is_one_line(fake, tmp_path, capsys):
    assert _synth(tmp_path / "x") == 0
    capsys.readouterr()
    _one_line_error(capsys, _synth(tmp_path / "x", seed="1"), "seed=0", "seed=1", "new --out")


def test_bad_n_is_one_line(fake, tmp_path, capsys):
    _one_line_error(capsys, _synth(tmp_path / "x", n="0"), "n must be an integer >= 1")


def test_missing_required_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["synth", "cli_fake", "--n", "3"])
    assert exit_.value.code == 2
    assert "--out" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- synth-check


def test_synth_check_on_synth_output(fake, tmp_path, capsys):
    assert _synth(tmp_path / "set") == 0
    capsys.readouterr()
    assert main(["synth-check", str(tmp_path / "set" / "data.json")]) == 0
    assert "4 records, 4 valid, 0 skipped" in capsys.readouterr().out
    assert main(["synth-check", str(tmp_path / "set" / "data.jsonl"), "--json", "--verify-images"]) == 0
    assert json.loads(capsys.readouterr().out) == {"total": 4, "kept": 4, "skipped": 0, "reasons": {}}


def test_synth_check_bad_records(tmp_path, capsys):
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    good = {"id": "g", "image": ["a.png"], "conversations": [{"from": "human", "value": "<image> what?"},
                                                             {"from": "gpt", "value": "A square."}]}
    missing = {**good, "id": "m", "image": ["gone.png"]}
    mismatch = {**good, "id": "p", "image": ["a.png", "a.png"]}
    path = tmp_path / "user.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (good, missing, mismatch, good)))

    err = _one_line_error(capsys, main(["synth-check", str(path)]), "mmlink synth-check: error:")
    assert f"{path}: record 1 (id 'm'): field 'image'[0]: file not found: gone.png" in err

    assert main(["synth-check", str(path), "--skip-bad"]) == 0
    out = capsys.readouterr().out
    assert "4 records, 1 valid, 3 skipped" in out
    assert "image not found: 1" in out and "placeholder mismatch: 1" in out and "duplicate id: 1" in out

    _one_line_error(capsys, main(["synth-check", str(tmp_path / "none.json")]), "none.json")


def test_console_script_help(tmp_path):
    """The installed entry point (a fresh process) prints the task list too."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "mmlink.cli", "synth", "--help"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "tasks:" in proc.stdout and "output layout" in proc.stdout
    assert Path(synth.__file__).is_file()


def test_synth_check_on_the_synth_directory(fake, tmp_path, capsys):
    assert _synth(tmp_path / "set") == 0
    capsys.readouterr()
    assert main(["synth-check", str(tmp_path / "set")]) == 0
    assert f"{tmp_path / 'set' / 'data.jsonl'}: 4 records, 4 valid, 0 skipped" in capsys.readouterr().out


def test_synth_check_fails_on_no_records(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    for extra in ([], ["--skip-bad"], ["--json"]):
        _one_line_error(capsys, main(["synth-check", str(empty), *extra]), f"{empty}: no records (the file is empty)")

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "m", "image": ["gone.png"], "conversations": [
        {"from": "human", "value": "<image> what?"}, {"from": "gpt", "value": "A square."}]}) + "\n" + "{oops\n")
    _one_line_error(capsys, main(["synth-check", str(bad), "--skip-bad"]),
                    f"{bad}: no valid records: all 2 skipped (image not found: 1, invalid json: 1)")

    _one_line_error(capsys, main(["synth-check", str(tmp_path / "nothing-here")]), "no such file or directory")
    (tmp_path / "dir").mkdir()
    _one_line_error(capsys, main(["synth-check", str(tmp_path / "dir")]), "a directory without data")


def test_synth_check_accepts_text_only_and_user_assistant_records(tmp_path, capsys):
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    records = [
        {"id": "t", "conversations": [{"from": "human", "value": "2 + 2?"}, {"from": "gpt", "value": "4"}]},
        {"id": "u", "image": "a.png", "conversations": [{"from": "user", "value": "<image> what?"},
                                                         {"from": "assistant", "value": "A square."}]},
        {"id": "o", "image": [], "conversations": [{"role": "user", "content": "Hi"},
                                                   {"role": "assistant", "content": "Hello"}]},
    ]
    (tmp_path / "mine.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert main(["synth-check", str(tmp_path), "--verify-images"]) == 0
    assert f"{tmp_path / 'mine.jsonl'}: 3 records, 3 valid, 0 skipped" in capsys.readouterr().out


def test_synth_check_on_a_saved_dataset(tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (0, 90, 0)).save(buf, format="PNG")
    features = datasets.Features({"id": datasets.Value("string"), "image": datasets.Image(),
                                  "conversations": datasets.List({"from": datasets.Value("string"),
                                                                  "value": datasets.Value("string")})})
    turns = [{"from": "human", "value": "<image> colour?"}, {"from": "gpt", "value": "green"}]
    datasets.Dataset.from_dict({"id": ["a", "b"], "image": [{"bytes": buf.getvalue(), "path": None}, None],
                                "conversations": [turns, [{"from": "human", "value": "Hi"},
                                                          {"from": "gpt", "value": "Hello"}]]},
                               features=features).save_to_disk(str(tmp_path / "hf"))
    assert main(["synth-check", str(tmp_path / "hf"), "--verify-images"]) == 0
    assert f"{tmp_path / 'hf'}: 2 records, 2 valid, 0 skipped" in capsys.readouterr().out
    assert len(list((tmp_path / "hf" / ".mmlink-images").glob("*.png"))) == 1
