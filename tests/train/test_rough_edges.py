"""Training and checkpoints, the rough edges (issue 15): Ctrl-C says how to resume, config paths mean the config
file's directory, finished runs are not retrained and can be extended, deltas survive moving their base,
`mmlink export` writes a standalone model, and failed runs leave no empty out_dir."""

import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from mmlink.cli import main
from mmlink.data.synth import synthesize
from mmlink.models import family, load
from mmlink.models.loading import DELTA_CONFIG, DELTA_WEIGHTS, resolve_base, save_trainable, weights_fingerprint
from mmlink.train import TrainConfig, train
from mmlink.settings import read_config_file
from mmlink.train.config import INPUT_PATHS
from mmlink.train.data import ConversationCollator, ConversationDataset
from mmlink.train.loop import list_checkpoints

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}

pytestmark = pytest.mark.usefixtures("one_thread", "fresh_accelerate_state")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("edges")
    synthesize("mmlink_pair", root / "train", 8, "train", 0, image_size=32, progress=False)
    return root


def cfg(data, out, **kw) -> TrainConfig:
    base = dict(train_data=str(data / "train" / "data.jsonl"), out_dir=str(out), model="tiny", lr=1e-2,
                warmup_steps=1, max_steps=2, batch_size=2, mixed_precision="no", eval_every=0, sample_every=0,
                save_every=0, progress=False, log_every=1)
    return TrainConfig(**{**base, **kw})


def write_config(path: Path, config: TrainConfig | dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config.to_dict() if isinstance(config, TrainConfig) else config))
    return path


@torch.no_grad()
def logits(model, processor, data) -> torch.Tensor:
    batch = ConversationCollator(processor)([ConversationDataset(data / "train" / "data.jsonl")[0]])
    return model(**batch).logits


# ---------------------------------------------------------------- 1. Ctrl-C

INTERRUPTED_RUN = """
import sys, time
from pathlib import Path
import mmlink.train.loop as loop
real = loop.save_checkpoint
def save_then_wait(*args, **kwargs):
    real(*args, **kwargs)
    if args[6] == 2:  # step 2 is on disk: wait there for Ctrl-C
        Path({marker!r}).write_text("saved")
        time.sleep(600)
loop.save_checkpoint = save_then_wait
from mmlink.cli import main
sys.exit(main(["train", "--config", {config!r}]))
"""


def test_ctrl_c_prints_the_checkpoint_and_the_resume_command(data, tmp_path):
    out = tmp_path / "run"
    config = write_config(tmp_path / "run.yaml", cfg(data, out, max_steps=4, save_every=1))
    marker = tmp_path / "saved"
    script = INTERRUPTED_RUN.format(marker=str(marker), config=str(config))
    proc = subprocess.Popen([sys.executable, "-c", script], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.time() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "the run never wrote its step-2 checkpoint"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("mmlink train:")]
    assert lines == [f"mmlink train: interrupted; last checkpoint {out / 'checkpoints' / 'step-000002'} (step 2); "
                     f"to resume run: mmlink train --config {config} --resume"], err
    # The printed command does resume.
    words = shlex.split(lines[0].split("to resume run: ", 1)[1])
    assert main(words[1:]) == 0
    assert json.loads((out / "train_summary.json").read_text())["resumed_from_step"] == 2


def test_ctrl_c_before_the_first_step_leaves_no_out_dir(data, tmp_path, monkeypatch, capsys):
    import mmlink.models

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mmlink.models, "load", interrupted)
    out = tmp_path / "run"
    config = write_config(tmp_path / "run.yaml", cfg(data, out))
    assert main(["train", "--config", str(config), "--max-steps", "3"]) == 130
    err = capsys.readouterr().err.strip()
    assert err == (f"mmlink train: interrupted before the first checkpoint, nothing to resume; to start again run: "
                   f"mmlink train --config {config} --max-steps 3")
    assert not out.exists()


# ---------------------------------------------------------------- 2. paths in a config file


def test_relative_paths_mean_the_config_files_directory_when_they_exist_there(data, tmp_path, monkeypatch):
    project = tmp_path / "project"
    shutil.copytree(data / "train", project / "data")
    (project / "base").mkdir()
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "val").mkdir(parents=True)
    (elsewhere / "val" / "data.jsonl").write_text("")
    config = write_config(project / "cfg" / "run.yaml", {
        "train_data": "../data/data.jsonl",  # beside the config file only
        "val_data": "val/data.jsonl",  # in the working directory only
        "image_root": "../data",
        "model": "../base",
        "out_dir": "out",
    })
    monkeypatch.chdir(elsewhere)
    c = TrainConfig.from_file(config)
    assert c.train_data == str(project / "data" / "data.jsonl")
    assert c.image_root == str(project / "data") and c.model == str(project / "base")
    assert c.val_data == "val/data.jsonl"  # as written: the working directory
    assert c.out_dir == "out"  # an output: always the working directory
    # Flags are typed in the shell: the working directory, never the config file's.
    assert TrainConfig.from_file(config, {"train_data": "../data/data.jsonl"}).train_data == "../data/data.jsonl"
    # In both places: the config file's directory wins.
    (elsewhere / "../data").resolve().mkdir(exist_ok=True)
    assert TrainConfig.from_file(config).image_root == str(project / "data")

    # Missing everywhere: the error names both places looked.
    write_config(config, {**read_config_file(config), "train_data": "missing.jsonl"})
    c = TrainConfig.from_file(config)
    with pytest.raises(FileNotFoundError) as err:
        c.check_inputs()
    assert str(err.value) == (f"train_data: missing.jsonl not found: looked for {project / 'cfg' / 'missing.jsonl'} "
                              f"(beside the config file) and {elsewhere / 'missing.jsonl'} (the working directory)")
    assert main(["train", "--config", str(config)]) == 2
    assert not (elsewhere / "out").exists()  # checked before out_dir is made


def test_a_config_beside_its_data_trains_from_any_directory(data, tmp_path, monkeypatch, capsys):
    project = tmp_path / "project"
    shutil.copytree(data / "train", project / "data")
    config = write_config(project / "run.yaml", {**cfg(data, tmp_path / "out").to_dict(),
                                                 "train_data": "data/data.jsonl", "max_steps": 1})
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--config", str(config)]) == 0
    summary = json.loads((tmp_path / "out" / "train_summary.json").read_text())
    assert summary["config"]["train_data"] == str(project / "data" / "data.jsonl")


def test_every_shipped_config_loads_with_its_paths_as_written():
    configs = sorted((ROOT / "configs" / "train").glob("*.yaml"))
    assert configs
    for path in configs:
        raw = read_config_file(path)
        c = TrainConfig.from_file(path)
        for name in INPUT_PATHS:  # written relative to the repository root: nothing of that is under configs/train
            assert getattr(c, name) == raw.get(name, getattr(c, name)), (path.name, name)


# ---------------------------------------------------------------- 3. finished runs, extending a run


def test_resume_on_a_finished_run_trains_nothing_and_a_larger_max_steps_extends_it(data, tmp_path, capsys):
    out = tmp_path / "run"
    config = write_config(tmp_path / "run.yaml", cfg(data, out, max_steps=4, save_every=2))
    assert main(["train", "--config", str(config)]) == 0
    capsys.readouterr()
    final = out / "final" / DELTA_WEIGHTS
    stamp, summary = final.stat().st_mtime_ns, (out / "train_summary.json").read_text()

    assert main(["train", "--config", str(config), "--resume"]) == 0
    said = capsys.readouterr().out
    assert f"{out}: the run already finished (4 steps" in said and "nothing trained" in said
    assert f"mmlink train --config {config} --max-steps N --resume" in said
    assert final.stat().st_mtime_ns == stamp and (out / "train_summary.json").read_text() == summary

    # Longer: from the newest checkpoint (step 2), the cosine schedule now ending at step 6.
    assert main(["train", "--config", str(config), "--max-steps", "6", "--resume"]) == 0
    said = capsys.readouterr().out
    assert "note: max_steps 4 → 6: the learning-rate schedule changes (cosine decay now reaches 0 at step 6)" in said
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 6 and summary["resumed_from_step"] == 2
    opt = torch.load(out / "checkpoints" / "step-000004" / "optimizer.pt", weights_only=True)
    cosine = 1e-2 * 0.5 * (1 + math.cos(math.pi * (4 - 1) / (6 - 1)))  # warm-up 1, then cosine to step 6
    assert opt["param_groups"][0]["lr"] == pytest.approx(cosine)

    assert train(cfg(data, out, max_steps=3, save_every=2), resume=True)["already_finished"]
    (out / "train_summary.json").unlink()  # as if interrupted after step 4: a shorter run cannot end before it
    with pytest.raises(ValueError, match="max_steps 3 is below the checkpoint's step 4"):
        train(cfg(data, out, max_steps=3, save_every=2), resume=True)


def test_a_finished_run_without_checkpoints_cannot_be_extended(data, tmp_path):
    out = tmp_path / "run"
    train(cfg(data, out))
    with pytest.raises(ValueError, match="kept no checkpoint to continue from"):
        train(cfg(data, out, max_steps=3), resume=True)


# ---------------------------------------------------------------- 4. a delta's base


def _delta_of(base: Path, delta: Path, seed: int = 0):
    model, processor = load(base)
    model.set_trainable()
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed)
        for p in model.language_projection.parameters():
            p.add_(torch.randn(p.shape, generator=gen))
    save_trainable(model, delta)
    return model, processor


def test_a_delta_finds_its_base_after_moves_and_says_where_it_looked(data, tmp_path):
    runs = tmp_path / "runs"
    tiny, processor = load("tiny")
    tiny.save_pretrained(runs / "base")
    processor.save_pretrained(runs / "base")
    model, processor = _delta_of(runs / "base", runs / "delta")
    want = logits(model, processor, data)
    meta = json.loads((runs / "delta" / DELTA_CONFIG).read_text())
    assert meta["base"] == "../base" and meta["base_absolute"] == str((runs / "base").resolve())
    assert meta["base_fingerprint"] == weights_fingerprint(runs / "base")

    # Both moved together: the relative path.
    moved = tmp_path / "moved"
    runs.rename(moved)
    assert torch.equal(logits(*load(moved / "delta"), data), want)
    # The delta alone moved (the base back where it was written): the absolute path.
    moved.rename(runs)
    shutil.move(runs / "delta", tmp_path / "delta")
    assert resolve_base(tmp_path / "delta", meta) == str((runs / "base").resolve())
    assert torch.equal(logits(*load(tmp_path / "delta"), data), want)
    assert family(tmp_path / "delta") == "qformer"

    # The base gone: the error names the checkpoint given, both places looked and the fix.
    shutil.move(runs / "base", tmp_path / "elsewhere")
    with pytest.raises(FileNotFoundError) as err:
        load(tmp_path / "delta")
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'delta'}: its base is missing: looked for {tmp_path / 'delta' / '../base'} "
                              f"and {(runs / 'base').resolve()}")
    assert f'set "base" in {tmp_path / "delta" / DELTA_CONFIG}' in message

    # Other weights at the base's path: refused, not silently combined.
    shutil.copytree(tmp_path / "elsewhere", runs / "base")
    weights = next((runs / "base").glob("*.safetensors"))
    state = load_file(weights)
    name = next(iter(state))
    state[name] = state[name] + 1
    save_file(state, weights, metadata={"format": "pt"})
    with pytest.raises(ValueError, match="holds other weights than the model this checkpoint was trained from"):
        load(tmp_path / "delta")
    # Pointing "base" at the right place by hand works.
    meta["base"] = str(tmp_path / "elsewhere")
    (tmp_path / "delta" / DELTA_CONFIG).write_text(json.dumps(meta))
    assert torch.equal(logits(*load(tmp_path / "delta"), data), want)


def test_older_deltas_still_load(data, tmp_path):
    tiny, processor = load("tiny")
    tiny.save_pretrained(tmp_path / "base")
    processor.save_pretrained(tmp_path / "base")
    model, processor = _delta_of(tmp_path / "base", tmp_path / "delta")
    meta = json.loads((tmp_path / "delta" / DELTA_CONFIG).read_text())
    for key in ("base_absolute", "base_fingerprint"):  # the form written before: an absolute base only
        del meta[key]
    meta["base"] = str((tmp_path / "base").resolve())
    (tmp_path / "delta" / DELTA_CONFIG).write_text(json.dumps(meta))
    assert torch.equal(logits(*load(tmp_path / "delta"), data), logits(model, processor, data))
    shutil.move(tmp_path / "base", tmp_path / "gone")
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path / 'delta'}: its base is missing: looked for "
                                                          f"{(tmp_path / 'base').resolve()} (")):
        load(tmp_path / "delta")
    # The shipped deltas name presets or a sibling (../stage1): each resolves.
    shipped = sorted((ROOT / "src" / "mmlink" / "models" / "weights").glob(f"*/*/{DELTA_CONFIG}"))
    assert shipped
    for path in shipped:
        base = resolve_base(path.parent, json.loads(path.read_text()))
        assert Path(base).is_dir() or "/" not in base, path


def test_a_run_from_a_directory_records_its_base_relative_to_the_delta(data, tmp_path):
    first, second = tmp_path / "runs" / "first", tmp_path / "runs" / "second"
    train(cfg(data, first, max_steps=1))
    train(cfg(data, second, model=str(first / "final"), max_steps=2, save_every=1))
    assert json.loads((second / "final" / DELTA_CONFIG).read_text())["base"] == "../../first/final"
    ckpt = list_checkpoints(second)[0]
    assert json.loads((ckpt / DELTA_CONFIG).read_text())["base"] == "../../../first/final"
    want = logits(*load(second / "final"), data)
    (tmp_path / "runs").rename(tmp_path / "moved")
    assert torch.equal(logits(*load(tmp_path / "moved" / "second" / "final"), data), want)


# ---------------------------------------------------------------- 5. mmlink export


@pytest.mark.parametrize("lora", [None, {"r": 4, "alpha": 8}], ids=["delta", "lora"])
def test_export_writes_a_standalone_model_with_the_same_logits(data, tmp_path, monkeypatch, capsys, lora):
    out = tmp_path / "run"
    train(cfg(data, out, **({"lora": lora, "trainable": "projection"} if lora else {})))
    want = logits(*load(out / "final"), data)
    standalone = tmp_path / "standalone"
    assert main(["export", str(out / "final"), "--out", str(standalone)]) == 0
    assert f"wrote {standalone}: standalone mmlink_qformer model" in capsys.readouterr().out
    assert (standalone / "config.json").exists() and not (standalone / DELTA_CONFIG).exists()
    assert not list(tmp_path.glob(".tmp-*"))

    shutil.rmtree(out)  # no base run, and no peft: neither is needed any more
    monkeypatch.setitem(sys.modules, "peft", None)
    model, processor = load(standalone)
    assert processor is not None
    assert torch.equal(logits(model, processor, data), want)


def test_export_refuses_what_it_cannot_do(data, tmp_path, capsys):
    out = tmp_path / "run"
    train(cfg(data, out, max_steps=1))
    assert main(["export", str(out), "--out", str(tmp_path / "x")]) == 2
    assert f"did you mean {out / 'final'}?" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    assert main(["export", str(out / "final"), "--out", str(tmp_path / "full")]) == 0  # an empty directory is fine
    assert main(["export", str(out / "final"), "--out", str(tmp_path / "full")]) == 2
    assert "already exists and is not an empty directory" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "full"), "--out", str(tmp_path / "y")]) == 2
    assert "it is already standalone" in capsys.readouterr().err


# ---------------------------------------------------------------- 6. failed runs


def test_a_run_that_fails_before_its_first_step_leaves_no_out_dir(data, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    out = tmp_path / "run"
    with pytest.raises(ValueError):
        train(cfg(data, out, train_data=str(bad)))
    assert not out.exists()
    with pytest.raises(FileNotFoundError, match="train_data: .*missing.jsonl not found"):
        train(cfg(data, out, train_data=str(tmp_path / "missing.jsonl")))
    assert not out.exists()
    out.mkdir()  # not created by the run: kept
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError):
        train(cfg(data, out, train_data=str(bad)))
    assert (out / "notes.txt").read_text() == "mine"


def test_extra_trackers_go_through_accelerate(data, tmp_path):
    """trackers: accelerate's experiment trackers beside the TensorBoard log (wandb & co. are not installed here; its
    own tensorboard tracker stands in for them)."""
    out = tmp_path / "tracked"
    train(cfg(data, out, trackers=["tensorboard"]))
    events = [p for p in out.rglob("events.out.tfevents.*") if "tensorboard" not in p.relative_to(out).parts[:1]]
    assert events, sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    with pytest.raises(ValueError, match=r"trackers: unknown \['tensorbored'\]"):
        cfg(data, out, trackers=["tensorbored"])
    with pytest.raises(ValueError, match="not installed"):
        cfg(data, out, trackers=["wandb"])
