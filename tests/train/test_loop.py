"""The training loop on `tiny`: it learns, trains only what it should, resumes bit-exactly after SIGKILL (also
mid-epoch with grad accumulation), 2 processes equal 1 with the same global batch, checkpoints are atomic and
pruned, and `mmlink train` works from the CLI."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from torch.testing import assert_close
from safetensors.torch import load_file

from mmlink.cli import main
from mmlink.data.synth import synthesize
from mmlink.models import load
from mmlink.train import TrainConfig, train
from mmlink.train.data import ConversationCollator, ConversationDataset
from mmlink.train.loop import SUMMARY_KEYS, list_checkpoints

# One thread here and in the subprocesses: tiny matrices run fastest that way, and bit-exact comparisons need the
# same float reduction order in every process.
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


# one thread, and a fresh accelerate state per test: tests/conftest.py
pytestmark = pytest.mark.usefixtures("one_thread", "fresh_accelerate_state")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("traindata")
    synthesize("mmlink_pair", root / "train", 8, "train", 0, image_size=32, progress=False)
    synthesize("mmlink_pair", root / "two", 2, "train", 1, image_size=32, progress=False)
    synthesize("mmlink_pair", root / "val", 2, "val", 0, image_size=32, progress=False)
    return root


def cfg(data, out, **kw):
    base = dict(train_data=str(data / "train" / "data.jsonl"), out_dir=str(out), model="tiny", lr=1e-2,
                warmup_steps=1, max_steps=4, batch_size=2, mixed_precision="no", eval_every=0, sample_every=0,
                save_every=0, progress=False, log_every=1)
    return TrainConfig(**{**base, **kw})


def final_weights(out) -> dict:
    return load_file(Path(out) / "final" / "trainable.safetensors")


def assert_same(a: dict, b: dict, exact=True):
    assert a.keys() == b.keys()
    for k in a:
        if exact:
            assert torch.equal(a[k], b[k]), k
        else:
            torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6, msg=k)


def test_loss_halves_when_overfitting_a_fixed_batch(data, tmp_path):
    summary = train(cfg(data, tmp_path / "o", train_data=str(data / "two" / "data.jsonl"), trainable="all",
                        max_steps=30, warmup_steps=0))
    assert summary["final_train_loss"] < 0.5 * summary["initial_train_loss"], summary


def test_only_trainable_parameters_change(data, tmp_path):
    out = tmp_path / "o"
    train(cfg(data, out, max_steps=3, save_every=2))
    trained, _ = load(out / "final")  # base tiny + the trainable-only delta
    fresh, _ = load("tiny")
    names = set(final_weights(out))
    assert names and all(n.startswith(("sam.", "language_projection.")) for n in names)
    fresh_params = dict(fresh.named_parameters())
    changed = [n for n, p in trained.named_parameters() if not torch.equal(p, fresh_params[n])]
    assert changed and set(changed) <= names  # frozen parameters are bit-identical
    assert "language_projection.weight" in changed
    opt = torch.load(out / "checkpoints" / "step-000002" / "optimizer.pt", weights_only=True)
    held = [i for g in opt["param_groups"] for i in g["params"]]
    assert len(held) == len(names) == len(opt["state"])  # the optimizer holds only trainable parameters
    assert sum(s["exp_avg"].numel() for s in opt["state"].values()) == sum(v.numel() for v in final_weights(out).values())


KILLED_RUN = """
import sys, time
from pathlib import Path
import mmlink.train.loop as loop
real = loop.save_checkpoint
def save_then_hang(*args, **kwargs):
    step = args[6]
    if step > {k}:  # steps k+1.. ran in memory but are never saved: the kill loses them
        Path({marker!r}).write_text(str(step))
        time.sleep(600)
    real(*args, **kwargs)
loop.save_checkpoint = save_then_hang
from mmlink.cli import main
sys.exit(main(["train", "--config", {config!r}]))
"""


def run_and_kill(config: TrainConfig, k: int, tmp_path: Path) -> Path:
    """Run ``mmlink train`` on ``config`` in a subprocess and SIGKILL it once it is past step k+1 with nothing saved
    after step k. Returns the config file (for ``--resume``)."""
    marker, path = tmp_path / "hanging", tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    script = KILLED_RUN.format(k=k, marker=str(marker), config=str(path))
    proc = subprocess.Popen([sys.executable, "-c", script], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.time() < deadline, "the run never reached step k+2"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return path


def test_resume_after_sigkill_gives_the_same_weights(data, tmp_path):
    n, k = 8, 4
    ref = tmp_path / "ref"
    train(cfg(data, ref, max_steps=n, save_every=2, keep_last=2))
    assert [p.name for p in list_checkpoints(ref)] == ["step-000004", "step-000006"]  # keep-last-K (none at N)

    out = tmp_path / "killed"
    config = run_and_kill(cfg(data, out, max_steps=n, save_every=2, keep_last=2), k, tmp_path)
    assert [p.name for p in list_checkpoints(out)] == ["step-000002", "step-000004"]
    assert not (out / "final").exists()
    # A torn checkpoint write (temp dir) must be ignored and cleaned up.
    torn = out / "checkpoints" / ".tmp-step-000099"
    torn.mkdir()
    (torn / "trainer_state.json").write_text("{")

    assert main(["train", "--config", str(config), "--resume"]) == 0
    assert not torn.exists()
    assert json.loads((out / "train_summary.json").read_text())["resumed_from_step"] == k
    assert_same(final_weights(out), final_weights(ref))


def test_resume_mid_epoch_with_grad_accumulation(data, tmp_path):
    # 8 samples, batch 2, accumulation 2 → 2 optimizer steps per epoch; step 3 ends mid-epoch (micro-batch 6 of 8).
    ref = tmp_path / "ref"
    train(cfg(data, ref, max_steps=5, grad_accum=2, save_every=1, keep_last=10))
    ckpt = ref / "checkpoints" / "step-000003"
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert (state["epoch"], state["micro_batch_in_epoch"], state["micro_batches_consumed"]) == (1, 2, 6)

    out = tmp_path / "resumed"
    shutil.copytree(ckpt, out / "checkpoints" / ckpt.name)
    summary = train(cfg(data, out, max_steps=5, grad_accum=2, save_every=1, keep_last=10), resume=True)
    assert summary["resumed_from_step"] == 3 and summary["steps"] == 5
    assert_same(final_weights(out), final_weights(ref))
    with pytest.raises(ValueError, match="already holds checkpoints"):
        train(cfg(data, out, max_steps=5, grad_accum=2))
    with pytest.raises(ValueError, match="cannot resume: seed"):
        train(cfg(data, out, max_steps=5, grad_accum=2, seed=1), resume=True)


def test_two_processes_equal_one_process_with_the_same_global_batch(data, tmp_path):
    one = tmp_path / "one"
    train(cfg(data, one, max_steps=3, batch_size=4))
    two = tmp_path / "two"
    config = tmp_path / "two.yaml"
    config.write_text(yaml.safe_dump(cfg(data, two, max_steps=3, batch_size=2).to_dict()))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "mmlink.cli", "train", "--config", str(config)]
    res = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summary = json.loads((two / "train_summary.json").read_text())
    assert summary["num_processes"] == 2 and summary["global_batch_size"] == 4
    assert_same(final_weights(two), final_weights(one), exact=False)
    ref = json.loads((one / "train_summary.json").read_text())
    assert summary["final_train_loss"] == pytest.approx(ref["final_train_loss"], rel=1e-5)


def test_cli_train_writes_summary_samples_and_tensorboard(data, tmp_path, capsys):
    out = tmp_path / "cli"
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**cfg(data, out).to_dict(), "val_data": str(data / "val" / "data.jsonl"),
                                      "mixed_precision": "bf16", "eval_every": 2, "sample_every": 2,
                                      "num_samples": 2, "max_new_tokens": 4}))
    assert main(["train", "--config", str(config), "--max-steps", "3"]) == 0
    summary = json.loads((out / "train_summary.json").read_text())
    assert set(SUMMARY_KEYS) <= set(summary)
    assert summary["steps"] == 3 and summary["samples_seen"] == 6 and summary["mixed_precision"] == "bf16"
    choice = summary["mixed_precision_choice"]  # an explicit bf16 is honoured, on any CPU
    assert choice["requested"] == "bf16" and choice["mixed_precision"] == "bf16" and choice["name"] == "bfloat16"
    assert choice["reason"].startswith("requested bf16 autocast") and choice["device"] == "cpu"
    assert choice["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert 0 < summary["trainable_fraction"] < 1
    assert summary["trainable_fraction"] == summary["trainable_params"] / summary["total_params"]
    assert summary["final_val_loss"] is not None and summary["samples_per_s"] > 0
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert {s["step"] for s in samples} == {2, 3} and all({"id", "prediction", "reference"} <= set(s) for s in samples)
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert "trained 3 steps" in capsys.readouterr().out
    load(out / "final")  # loadable by the model loader


@pytest.mark.parametrize("bf16_units, want", [(False, "no"), (True, "bf16")], ids=["avx2", "amx"])
def test_auto_autocast_follows_the_hardware_and_is_recorded(data, tmp_path, monkeypatch, bf16_units, want):
    from mmlink import runtime

    fake = runtime.Capabilities(device="cpu", cpu_capability="AVX512" if bf16_units else "AVX2",
                                avx512_bf16=bf16_units, amx=bf16_units)
    monkeypatch.setattr(runtime.Capabilities, "detect", classmethod(lambda cls, device="cpu": fake))
    assert TrainConfig(train_data="d.jsonl", out_dir="o").mixed_precision == "auto"  # the default
    summary = train(cfg(data, tmp_path / "run", mixed_precision="auto", max_steps=1))
    assert summary["mixed_precision"] == want
    choice = summary["mixed_precision_choice"]
    assert choice["requested"] == "auto" and choice["mixed_precision"] == want and choice["amx"] is bf16_units
    assert choice["reason"].startswith("auto: CPU (")
    assert choice["reason"].endswith("-> bf16 autocast" if bf16_units else "-> no autocast (float32)")
    on_disk = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert on_disk["mixed_precision_choice"] == choice and on_disk["config"]["mixed_precision"] == "auto"


def test_cli_bad_config_is_one_line_exit_2(data, tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text(f"train_data: {data / 'train' / 'data.jsonl'}\nout_dir: {tmp_path / 'o'}\nlearning_rate: 1\n")
    assert main(["train", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mmlink train: error: unknown key") and "\n" not in err
    assert main(["train", "--config", str(config).replace("bad", "none")]) == 2


def test_bf16_final_and_a_train_limit(data, tmp_path):
    out = tmp_path / "o"
    summary = train(cfg(data, out, max_steps=3, save_dtype="bfloat16", train_limit=4, save_every=2))
    final = final_weights(out)
    assert final and all(v.dtype == torch.bfloat16 for v in final.values())
    ckpt = load_file(out / "checkpoints" / "step-000002" / "trainable.safetensors")
    assert all(v.dtype == torch.float32 for v in ckpt.values())  # resumable checkpoints keep full precision
    assert summary["epochs"] == pytest.approx(3 * 2 / 4)  # 3 steps of batch 2 over the 4 kept records
    trained, _ = load(out / "final")  # a bf16 delta loads into the fp32 model
    params = dict(trained.named_parameters())
    for name, value in final.items():
        assert params[name].dtype == torch.float32 and torch.equal(params[name].to(torch.bfloat16), value)


def test_the_llava_family_trains_its_projector_and_the_final_delta_reloads(data, tmp_path):
    """LLaVA's Stage 1 on `tiny-llava`: only the projector trains (the `projection` policy resolves to its prefix),
    the loss falls, and `load(final/)` computes what the trained model computed."""
    out = tmp_path / "o"
    summary = train(cfg(data, out, model="tiny-llava", trainable="projection", max_steps=20, warmup_steps=0,
                        train_data=str(data / "two" / "data.jsonl"), save_every=20))
    # tiny's frozen random lm_head bounds its logits to about ±0.6: a projector alone moves the loss a little only
    assert summary["final_train_loss"] < summary["initial_train_loss"] - 0.01, summary
    weights = final_weights(out)
    assert set(weights) == {f"model.multi_modal_projector.linear_{i}.{p}" for i in (1, 2) for p in ("weight", "bias")}
    model, processor = load(out / "final")
    base, _ = load("tiny-llava")
    records = ConversationDataset(data / "two" / "data.jsonl")
    batch = ConversationCollator(processor)([records[0]])
    with torch.no_grad():
        trained = model(**batch).loss
        untrained = base(**batch).loss
    assert float(trained) < float(untrained) - 0.01
    assert_close(model.model.multi_modal_projector.linear_1.weight.float(), weights["model.multi_modal_projector.linear_1.weight"].float())
