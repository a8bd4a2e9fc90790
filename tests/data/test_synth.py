"""mmlink.data.synth: determinism, resume after a torn write / lost image / SIGKILL, workers, parameter checks,
preview, report. Uses a fake task and a fake renderer (registered for the test only), so it tests the writer, not
the world; `test_real_tasks` runs the registered tasks with the real renderer when they exist."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

import mmlink.data.synth as synth
from mmlink.data.formats import read_dataset, to_hf_dataset
from mmlink.data.tasks import TASKS, WorldSample
from mmlink.data.world.scene import COLORS, CONTEXTS, rng_for, sample_identity, sample_scene, scene_from_dict

FAKE_TASKS = ("fake_task", "fake_pixels", "fake_buggy")


def fake_task(rng, split):
    """A fake two-image task: one character in two scenes (tests only)."""
    ident = sample_identity(rng, split)
    a, b = sample_scene(rng, [ident]), sample_scene(rng, [ident])
    delay = float(os.environ.get("MMLINK_TEST_SLOW", "0"))
    if delay:
        time.sleep(delay)
    return WorldSample(
        scenes=[a, b],
        conversations=[
            {"from": "human", "value": "Image 1: <image>\nImage 2: <image>\nWho appears in both images?"},
            {"from": "gpt", "value": f"{ident.name}, the {ident.color} {ident.body} character, in the {a.context} "
             f"and in the {b.context}."},
        ],
        meta={"name": ident.name, "contexts": (a.context, b.context), "n_things": np.int64(len(a.things))},
    )


def fake_pixels(rng, split):
    """A fake one-image task that brings its own pixels (tests only)."""
    pixels = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    return WorldSample(scenes=[], conversations=[{"from": "human", "value": "<image>\nWhat is this?"},
                                                 {"from": "gpt", "value": "Noise."}], images=[pixels])


def fake_buggy(rng, split):
    """A fake task with one placeholder too few (tests only)."""
    sample = fake_task(rng, split)
    sample.conversations[0]["value"] = "Image 1: <image>\nWhat is it?"
    return sample


def fake_render(scene, size=224):
    """Deterministic stand-in for mmlink.data.world.render.render: background per context, boxes per object."""
    rng = np.random.default_rng(scene.seed)
    shade = 60 + 20 * CONTEXTS.index(scene.context)
    base = np.full((size, size, 3), shade, np.uint8) + rng.integers(0, 12, (size, size, 3), dtype=np.uint8)
    img = Image.fromarray(base)
    draw = ImageDraw.Draw(img)
    for obj in scene.objects:
        color = COLORS[obj.identity.color] if hasattr(obj, "identity") else COLORS[obj.color]
        r = obj.size * size / 2
        draw.rectangle([obj.x * size - r / 2, obj.y * size - r, obj.x * size + r / 2, obj.y * size], fill=color)
    return img


@pytest.fixture
def fake(monkeypatch):
    for fn in (fake_task, fake_pixels, fake_buggy):
        monkeypatch.setitem(TASKS.items, fn.__name__, fn)
    monkeypatch.setattr(synth, "_resolve_render", lambda: fake_render)
    monkeypatch.setattr(synth, "_stats_available", lambda: False)
    monkeypatch.delenv("MMLINK_TEST_SLOW", raising=False)


def _tree(root: Path, skip=("preview.png", "report.json")) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in skip}


def _run(out, n=8, split="train", seed=0, **kw):
    kw.setdefault("image_size", 32)
    kw.setdefault("progress", False)
    return synth.synthesize("fake_task", out, n=n, split=split, seed=seed, **kw)


# --------------------------------------------------------------------------------------------- output


def test_writes_a_valid_llava_dataset(fake, tmp_path):
    result = _run(tmp_path / "a", n=5, split="val", seed=7)
    out = tmp_path / "a"
    assert result["records"] == 5 and result["generated"] == 5 and result["resumed_from"] == 0
    assert result["images"] == 10 and result["files"]["report"] is None
    for name in ("data.jsonl", "data.json", "synth.json"):
        assert (out / name).is_file()
    records, report = read_dataset(out / "data.jsonl")
    assert report["kept"] == 5
    assert [r["id"] for r in records] == [f"fake_task-val-s7-{i:06d}" for i in range(5)]
    rec = records[3]
    assert rec["task"] == "fake_task"
    assert rec["image"] == [f"images/fake_task-val-s7-000003_{k}.png" for k in range(2)]
    assert rec["conversations"][0]["value"].startswith("Image 1: <image>\nImage 2: <image>\n")
    assert isinstance(rec["meta"]["n_things"], int) and len(rec["meta"]["contexts"]) == 2
    # the scene graphs the images were drawn from travel with the record (facts are scored against them)
    drawn = fake_task(rng_for("val", 7, 3, stream="fake_task"), "val").scenes
    assert [scene_from_dict(d) for d in rec["meta"]["scenes"]] == drawn
    with Image.open(out / rec["image"][1]) as img:
        assert img.size == (32, 32) and img.mode == "RGB"
    assert read_dataset(out / "data.json")[0] == records
    assert json.loads((out / "synth.json").read_text()) == {
        "format": 1, "task": "fake_task", "split": "val", "seed": 7, "image_size": 32, "n": 5}
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(Path(p).name for r in records
                                                                       for p in r["image"])
    summary = synth.format_summary(result)
    assert "5 records" in summary and "data.jsonl" in summary


def test_same_seed_same_bytes(fake, tmp_path):
    _run(tmp_path / "a", n=6, seed=3)
    _run(tmp_path / "b", n=6, seed=3)
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert a == b and len(a) == 3 + 12


def test_different_seed_or_split_gives_different_samples(fake, tmp_path):
    def texts(out):
        return [json.dumps(r["conversations"]) + json.dumps(r["meta"]) for r in read_dataset(out / "data.jsonl")[0]]

    _run(tmp_path / "a", n=6, seed=0)
    _run(tmp_path / "b", n=6, seed=1)
    _run(tmp_path / "c", n=6, seed=0, split="test")
    a, b, c = texts(tmp_path / "a"), texts(tmp_path / "b"), texts(tmp_path / "c")
    assert len(set(a)) > 1  # samples differ within a run
    assert not set(a) & set(b) and not set(a) & set(c)
    pngs = lambda out: {p.read_bytes() for p in (out / "images").iterdir()}  # noqa: E731
    assert not pngs(tmp_path / "a") & pngs(tmp_path / "b")


def test_images_from_the_sample_are_used(fake, tmp_path, monkeypatch):
    def no_render(scene, size):
        raise AssertionError("must not render")

    monkeypatch.setattr(synth, "_resolve_render", lambda: no_render)
    synth.synthesize("fake_pixels", tmp_path / "p", n=2, split="train", seed=0, image_size=32, progress=False)
    rec = read_dataset(tmp_path / "p" / "data.jsonl")[0][1]
    with Image.open(tmp_path / "p" / rec["image"][0]) as img:
        assert img.size == (30, 20)
    assert "scenes" not in rec["meta"]  # no graphs were drawn: none are claimed


def test_a_generator_may_not_set_meta_scenes(fake, tmp_path, monkeypatch):
    def claims_scenes(rng, split):
        sample = fake_task(rng, split)
        sample.meta["scenes"] = []
        return sample

    monkeypatch.setitem(TASKS.items, "fake_task", claims_scenes)
    with pytest.raises(ValueError, match="field 'meta.scenes' is reserved"):
        _run(tmp_path / "x", n=1)


def test_generator_bug_is_reported(fake, tmp_path):
    with pytest.raises(ValueError, match=r"task 'fake_buggy'.*record 0.*2 image\(s\) but 1 <image>"):
        synth.synthesize("fake_buggy", tmp_path / "x", n=2, split="train", seed=0, image_size=32, progress=False)


def test_bad_arguments(fake, tmp_path):
    with pytest.raises(ValueError, match=r"unknown task 'nope'; valid names: .*fake_task"):
        synth.synthesize("nope", tmp_path / "x", n=2, split="train", seed=0)
    with pytest.raises(ValueError, match="split must be one of train, val, test"):
        _run(tmp_path / "x", split="dev")
    for kw, word in (({"n": 0}, "n must"), ({"seed": -1}, "seed must"), ({"workers": 0}, "workers must")):
        with pytest.raises(ValueError, match=word):
            _run(tmp_path / "x", **kw)
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------------------------- resume


def test_resume_after_torn_line_and_lost_images(fake, tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "out"
    _run(ref, n=10)
    _run(out, n=10)
    # A crash mid-write: the last line is cut in half, and two images are gone (one of a complete record).
    jsonl = out / "data.jsonl"
    data = jsonl.read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    jsonl.write_bytes(data[: last_start + (len(data) - last_start) // 2])
    (out / "images" / "fake_task-train-s0-000004_1.png").unlink()
    (out / "images" / "fake_task-train-s0-000009_0.png").unlink()
    (out / "images" / "fake_task-train-s0-000002_0.png.tmp").write_bytes(b"half an image")
    (out / "data.json").unlink()

    result = _run(out, n=10)
    assert result["resumed_from"] == 9 and result["generated"] == 1
    assert result["dropped_tail"] is True and result["repaired"] == 1
    assert _tree(out) == _tree(ref)

    again = _run(out, n=10)  # nothing left to do
    assert again["generated"] == 0 and again["repaired"] == 0 and not again["dropped_tail"]
    assert _tree(out) == _tree(ref)


def test_resume_drops_only_a_torn_tail(fake, tmp_path):
    out = tmp_path / "out"
    _run(out, n=4)
    jsonl = out / "data.jsonl"
    lines = jsonl.read_bytes().splitlines(keepends=True)
    jsonl.write_bytes(lines[0] + b"garbage\n" + b"".join(lines[2:]))  # damage in the middle is not a crash
    with pytest.raises(ValueError, match=r"data.jsonl: line 2 holds no valid record.*new --out"):
        _run(out, n=4)
    jsonl.write_bytes(b"".join(lines[:3]) + b"\x00" * 40)  # zero-filled tail (power loss)
    assert _run(out, n=4)["resumed_from"] == 3


def test_grow_n_equals_one_run(fake, tmp_path):
    _run(tmp_path / "ref", n=9)
    _run(tmp_path / "grow", n=4)
    result = _run(tmp_path / "grow", n=9)
    assert result["resumed_from"] == 4 and result["generated"] == 5
    assert _tree(tmp_path / "grow") == _tree(tmp_path / "ref")


def test_refuses_other_parameters_and_shrinking(fake, tmp_path):
    out = tmp_path / "out"
    _run(out, n=5, seed=0)
    before = _tree(out)
    with pytest.raises(ValueError, match=r"made by mmlink synth with seed=0, this run asks seed=1.*new --out"):
        _run(out, n=5, seed=1)
    with pytest.raises(ValueError, match=r"image_size=32, this run asks image_size=48"):
        _run(out, n=5, image_size=48)
    with pytest.raises(ValueError, match=r"split='train', this run asks split='val'"):
        _run(out, n=5, split="val")
    with pytest.raises(ValueError, match=r"task='fake_task', this run asks task='fake_pixels'"):
        synth.synthesize("fake_pixels", out, n=5, split="train", seed=0, image_size=32, progress=False)
    with pytest.raises(ValueError, match=r"already holds 5 records; --n 3"):
        _run(out, n=3)
    assert _tree(out) == before


def test_refuses_a_foreign_directory(fake, tmp_path):
    out = tmp_path / "foreign"
    out.mkdir()
    (out / "data.jsonl").write_text('{"id": "mine"}\n')
    with pytest.raises(ValueError, match="not made by mmlink synth"):
        _run(out)


def test_refuses_a_concurrent_writer(fake, tmp_path):
    fcntl = pytest.importorskip("fcntl")
    out = tmp_path / "out"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(ValueError, match="another mmlink synth is writing"):
            _run(out)
    finally:
        os.close(fd)
    _run(out, n=2)


KILL_SCRIPT = """
import os, sys
sys.path.insert(0, {test_dir!r})
os.environ["MMLINK_TEST_SLOW"] = "0.01"
import mmlink.data.synth as synth
from mmlink.data.tasks import TASKS
import test_synth as t
TASKS.register("fake_task")(t.fake_task)
synth._resolve_render = lambda: t.fake_render
synth._stats_available = lambda: False
synth.synthesize("fake_task", {out!r}, n={n}, split="train", seed=5, image_size=32, progress=False)
print("finished")
"""


def test_resume_after_sigkill(fake, tmp_path):
    n = 120
    out, ref = tmp_path / "killed", tmp_path / "ref"
    script = KILL_SCRIPT.format(test_dir=str(Path(__file__).parent), out=str(out), n=n)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    jsonl = out / "data.jsonl"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if jsonl.exists() and jsonl.read_bytes().count(b"\n") >= 8:
                break
            time.sleep(0.01)
        assert proc.poll() is None, proc.communicate()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    written = jsonl.read_bytes().count(b"\n")
    assert 8 <= written < n

    result = _run(out, n=n, seed=5)
    assert result["resumed_from"] >= 8 and result["records"] == n
    ids = [r["id"] for r in read_dataset(out / "data.jsonl")[0]]
    assert len(ids) == len(set(ids)) == n
    _run(ref, n=n, seed=5)
    assert _tree(out) == _tree(ref)


# --------------------------------------------------------------------------------------------- workers, extras


def test_workers_give_the_same_bytes(fake, tmp_path):
    _run(tmp_path / "one", n=12, workers=1)
    result = _run(tmp_path / "two", n=12, workers=2)
    assert result["workers"] == 2 and result["records"] == 12
    assert _tree(tmp_path / "two") == _tree(tmp_path / "one")


def test_preview(fake, tmp_path):
    result = _run(tmp_path / "p", n=8, preview=True)
    path = tmp_path / "p" / "preview.png"
    assert result["files"]["preview"] == str(path)
    with Image.open(path) as img:
        assert img.width == 1100 and 6 * 100 < img.height < 6 * 600
        # Not blank: thumbnails and text make many colours.
        assert len(img.convert("RGB").getcolors(maxcolors=1 << 20)) > 50
    assert "preview.png" in synth.format_summary(result)


def test_report_gets_every_sample_even_after_resume(fake, tmp_path, monkeypatch):
    seen = []

    def task_report(task, samples):
        seen.append(samples)
        return {"task": task, "n": len(samples), "names": [s.meta["name"] for s in samples]}

    monkeypatch.setitem(sys.modules, "mmlink.data.tasks.stats", types.SimpleNamespace(task_report=task_report))
    monkeypatch.setattr(synth, "_stats_available", lambda: True)
    _run(tmp_path / "a", n=6)
    _run(tmp_path / "b", n=3)
    result = _run(tmp_path / "b", n=6)
    assert result["files"]["report"] == str(tmp_path / "b" / "report.json")
    a = json.loads((tmp_path / "a" / "report.json").read_text())
    assert a == json.loads((tmp_path / "b" / "report.json").read_text())
    assert a["n"] == 6 and all(isinstance(s, WorldSample) for s in seen[-1])


def test_broken_report_keeps_the_data(fake, tmp_path, monkeypatch, capsys):
    def task_report(task, samples):
        raise KeyError(task)

    monkeypatch.setitem(sys.modules, "mmlink.data.tasks.stats", types.SimpleNamespace(task_report=task_report))
    monkeypatch.setattr(synth, "_stats_available", lambda: True)
    result = _run(tmp_path / "a", n=2)
    assert result["files"]["report"] is None and "KeyError" in result["report_error"]
    assert "report.json not written" in capsys.readouterr().err
    assert read_dataset(tmp_path / "a" / "data.json")[1]["kept"] == 2


@pytest.mark.parametrize("name", ["data.jsonl", "data.json"])
def test_datasets_reads_the_output(fake, tmp_path, name):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "out"
    _run(out, n=5)
    ds = datasets.load_dataset("json", data_files=str(out / name), split="train", cache_dir=str(tmp_path / "cache"))
    assert ds["id"] == [f"fake_task-train-s0-{i:06d}" for i in range(5)]
    assert ds["image"][2] == [f"images/fake_task-train-s0-000002_{k}.png" for k in range(2)]
    hf = to_hf_dataset(read_dataset(out / name)[0], out)
    assert all(Path(p).is_file() for row in hf["images"] for p in row)


# --------------------------------------------------------------------------------------------- the real world


def _real_tasks() -> list[str]:
    return [t for t in TASKS.names() if t not in FAKE_TASKS]


@pytest.mark.parametrize("task", _real_tasks() or [pytest.param("none", marks=pytest.mark.skip("no real tasks yet"))])
def test_real_tasks(task, tmp_path):
    if not (Path(synth.__file__).parent / "world" / "render.py").exists():
        pytest.skip("mmlink.data.world.render does not exist yet")
    one = synth.synthesize(task, tmp_path / "one", n=3, split="test", seed=0, image_size=64, progress=False)
    two = synth.synthesize(task, tmp_path / "two", n=3, split="test", seed=0, image_size=64, progress=False,
                           workers=2)
    assert one["records"] == two["records"] == 3
    assert _tree(tmp_path / "one", skip=()) == _tree(tmp_path / "two", skip=())
    records, report = read_dataset(tmp_path / "one" / "data.json", verify_images=True)
    assert report["kept"] == 3 and all(r["task"] == task for r in records)
