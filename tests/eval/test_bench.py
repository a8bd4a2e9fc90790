"""`mmlink bench` (mmlink.eval.bench) on the tiny preset: rows, ratios, forced token count, errors, JSON, memory."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from mmlink.eval import bench as bench_mod
from mmlink.eval.bench import add_parser, bench, make_images, make_prompt, measure_memory, parse_images, parse_variants

VALID = "valid names: base, sam, none, linear, bsg_mean, bsg_adaptive"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmlink")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def _parse_error(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        _parser().parse_args(["bench", "--model", "tiny", *argv])
    assert exit_.value.code == 2
    return capsys.readouterr().err


def _run_error(capsys, *argv: str) -> str:
    """stderr of `mmlink bench` refusing its settings (exit 2, one line) before anything loads."""
    from mmlink.cli import main

    assert main(["bench", "--model", "tiny", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmlink bench: error: ") and err.count("\n") == 1, err
    return err


def test_one_row_per_variant_and_image_count_with_forced_token_count():
    result = bench("tiny", "base,linear", [2, 1], new_tokens=5, repeats=2, warmup=0, dtype="float32", memory=False)
    rows = result["rows"]
    assert [(r["variant"], r["images"]) for r in rows] == [("base", 1), ("linear", 1), ("base", 2), ("linear", 2)]
    assert [r["sam_mode"] for r in rows[:2]] == ["none", "linear"]
    assert result["reference"] == "base" and result["images"] == [1, 2]
    for r in rows:
        assert len(r["times_s"]) == 2 and all(t > 0 for t in r["times_s"])
        assert r["mean_s"] == pytest.approx(sum(r["times_s"]) / 2)
        assert r["generated_tokens"] == [5, 5]  # every timed answer has exactly new_tokens tokens
        assert r["peak_mib"] is None and r["memory_ratio"] is None  # memory=False
    by_key = {(r["variant"], r["images"]): r for r in rows}
    for n in (1, 2):
        assert by_key[("base", n)]["time_ratio"] == 1.0
        ratio = by_key[("linear", n)]["mean_s"] / by_key[("base", n)]["mean_s"]
        assert by_key[("linear", n)]["time_ratio"] == pytest.approx(ratio)
    assert result["torch_threads"] >= 1 and result["device"] in ("cpu", "cuda")
    assert result["dtype"] == "float32" and result["dtype_choice"]["requested"] == "float32"
    assert result["dtype_choice"]["reason"] == "requested float32" and result["cpu_capability"]


def test_early_stop_is_refused(monkeypatch):
    """A model that stops before new_tokens (min_new_tokens ignored) must not yield comparable-looking times."""
    real_load = bench_mod.load_variant

    def load_short(*args, **kwargs):
        model, processor = real_load(*args, **kwargs)
        generate = model.generate
        model.generate = lambda **kw: generate(**kw)[..., :-1]
        return model, processor

    monkeypatch.setattr(bench_mod, "load_variant", load_short)
    with pytest.raises(RuntimeError, match="min_new_tokens"):
        bench("tiny", "base", [1], new_tokens=4, repeats=1, warmup=0, dtype="float32", memory=False)


def test_bad_variant_lists_valid_names(capsys):
    with pytest.raises(ValueError, match=VALID):
        parse_variants("base,sam_adaptive")
    with pytest.raises(ValueError, match="'foo'.*" + VALID):
        bench("tiny", ["foo"], [1], new_tokens=2, repeats=1, warmup=0, dtype="float32", memory=False)
    with pytest.raises(ValueError, match="twice"):
        parse_variants("sam,sam")
    assert parse_variants(" base , bsg_mean") == [("base", "none"), ("bsg_mean", "bsg_mean")]
    err = _run_error(capsys, "--variants", "base,nope")
    assert "--variants" in err and VALID in err


@pytest.mark.parametrize("bad", ["0", "2,x", "1.5", "-2", ""])
def test_bad_images_names_the_flag(capsys, bad):
    with pytest.raises(ValueError, match="--images"):
        parse_images(bad)
    err = _run_error(capsys, "--images", bad)
    assert "--images" in err and "invalid" not in err  # our message, not argparse's generic one


def test_bad_dtype_lists_valid_names(capsys):
    with pytest.raises(ValueError, match="valid: auto, float32, bfloat16, float16"):
        bench("tiny", "base", [1], new_tokens=2, repeats=1, warmup=0, dtype="bf16", memory=False)
    err = _parse_error(capsys, "--dtype", "fp32")
    assert "--dtype" in err and "'auto'" in err


def test_bad_numbers_are_errors(capsys):
    assert parse_images("4,2,4") == [2, 4]
    with pytest.raises(ValueError, match="--images"):
        bench("tiny", "base", [0], new_tokens=2, repeats=1, warmup=0, dtype="float32", memory=False)
    with pytest.raises(ValueError, match="--new-tokens"):
        bench("tiny", "base", [1], new_tokens=0, repeats=1, warmup=0, dtype="float32", memory=False)
    assert "--repeats: repeats must be >= 1, got 0" in _run_error(capsys, "--repeats", "0")


def test_run_writes_json_and_prints_the_table(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = _parser().parse_args([
        "bench", "--model", "tiny", "--variants", "base,sam", "--images", "1", "--new-tokens", "3",
        "--repeats", "1", "--warmup", "0", "--no-memory", "--out", str(out),
    ])
    assert args.memory is False
    assert args.func(args) == 0
    stdout = capsys.readouterr().out
    assert "peak memory (MiB)" in stdout and "torch thread" in stdout and "noisy" in stdout
    result = json.loads(out.read_text())
    for key in ("model", "variants", "reference", "images", "new_tokens", "repeats", "warmup", "dtype", "device",
                "torch_threads", "memory_method", "rows"):
        assert key in result, key
    from mmlink.runtime import choose_dtype

    auto = choose_dtype("auto", result["device"])  # --dtype auto by default, resolved for this machine
    assert result["model"] == "tiny" and result["dtype"] == auto.name and result["new_tokens"] == 3
    assert result["dtype_choice"] == auto.to_dict() and result["cpu_capability"] == auto.capabilities.cpu_capability
    assert [v["sam_mode"] for v in result["variants"]] == ["none", "bsg_adaptive"]
    assert len(result["rows"]) == 2 and result["rows"][0]["time_ratio"] == 1.0
    assert all(r["generated_tokens"] == [3] for r in result["rows"])


def test_help_describes_the_measurement(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["bench", "--help"])
    text = capsys.readouterr().out
    for phrase in ("Table 4", "min_new_tokens", "fresh subprocess", "--no-memory", "interleaved"):
        assert phrase in text, phrase


def test_inputs_are_deterministic():
    assert make_prompt(2) == "Image 1: <image>\nImage 2: <image>\nDescribe the images."
    a, b = make_images(2), make_images(2)
    assert [x.tobytes() for x in a] == [x.tobytes() for x in b]
    assert a[0].tobytes() != a[1].tobytes() and a[0].size == (224, 224)


def test_sam_modes_match_the_model_config():
    from mmlink.models.qformer.configuration import SAM_MODES

    assert bench_mod.SAM_MODES == tuple(SAM_MODES)


def test_import_is_light():
    code = "import sys, mmlink.eval.bench; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_memory_in_a_fresh_subprocess():
    measured = measure_memory("tiny", "bsg_adaptive", images=2, new_tokens=3, device="cpu")
    assert measured["generated_tokens"] == 3
    assert measured["peak_bytes"] / 2**20 > 1.0  # MiB, whole process: far above one MiB
    assert measured["peak_bytes"] >= measured["after_load_bytes"] > 0
    assert measured["method"]
