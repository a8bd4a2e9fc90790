"""The ``mmlink`` command: help text, generation with the tiny preset, and one-line errors (exit 2)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from mmlink.cli import main

PROMPT = r"Image 1: <image>\nImage 2: <image>\nWhat is common?"


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    paths = {"a": tmp_path / "a.png", "b": tmp_path / "b.png", "corrupt": tmp_path / "corrupt.png"}
    Image.new("RGB", (40, 30), (220, 30, 30)).save(paths["a"])
    Image.new("RGB", (24, 48), (30, 30, 220)).save(paths["b"])
    paths["corrupt"].write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    return paths


def _generate(files, *extra, model="tiny", prompt=PROMPT, images=("a", "b")):
    argv = ["generate", "--model", str(model), "--prompt", prompt, "--max-new-tokens", "5"]
    for name in images:
        argv += ["--image", str(files.get(name, name))]
    return main([*argv, *extra])


def _ok(capsys, code) -> str:
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.endswith("\n") and out.strip(), repr(out)
    return out


def test_generate_help_mentions_untrained_mini_and_placeholders(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "mini" in out
    assert "not trained" in out or "untrained" in out
    assert "<image>" in out and "--image" in out and "--prompt" in out


def test_top_level_help_and_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0 and "generate" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and "mmlink 0.1.0" in capsys.readouterr().out


def test_generate_greedy_two_images(files, capsys):
    _ok(capsys, _generate(files))


def test_generate_beam_search(files, capsys):
    _ok(capsys, _generate(files, "--num-beams", "2"))


def test_generate_sampling_is_reproducible_with_a_seed(files, capsys):
    first = _ok(capsys, _generate(files, "--sample", "--seed", "1"))
    second = _ok(capsys, _generate(files, "--sample", "--seed", "1"))
    assert first == second


def test_generate_optimize_instruction_prints_every_aio_step(files, capsys):
    out = _ok(capsys, _generate(files, "--optimize-instruction"))
    _, err = capsys.readouterr()
    assert out  # the answer on stdout
    code = _generate(files, "--optimize-instruction", "--aio-rewrites", "2")
    out, err = capsys.readouterr()
    assert code == 0 and out.strip()
    assert err.count("aio: IAS") >= 2 and "aio: optimized" in err  # the instruction and its rewrites, scored
    assert _generate(files, "--aio-rewrites", "2") == 2
    assert "need --optimize-instruction" in capsys.readouterr().err
    assert _generate(files, "--optimize-instruction", prompt="<image> <image>") == 2  # nothing to optimize
    assert "instruction" in capsys.readouterr().err


def test_generate_from_a_saved_checkpoint_matches_the_preset(files, capsys, tmp_path):
    from mmlink.models import load

    model, processor = load("tiny")
    model.save_pretrained(tmp_path / "ckpt")
    processor.save_pretrained(tmp_path / "ckpt")
    from_preset = _ok(capsys, _generate(files))
    from_dir = _ok(capsys, _generate(files, model=tmp_path / "ckpt"))
    assert from_dir == from_preset


def _one_line_error(capsys, code, *needles) -> str:
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, repr(err)
    assert err.startswith("mmlink generate: error: "), err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def test_missing_image_file(files, capsys, tmp_path):
    missing = tmp_path / "missing.png"
    _one_line_error(capsys, _generate(files, images=("a", str(missing))), str(missing), "not found")


def test_corrupt_image(files, capsys):
    _one_line_error(capsys, _generate(files, images=("a", "corrupt")), str(files["corrupt"]), "not a readable image")


def test_placeholder_and_image_count_mismatch(files, capsys):
    _one_line_error(capsys, _generate(files, images=("a",)), "2 <image> placeholder(s) but 1 image(s)")


def test_unknown_preset(files, capsys):
    _one_line_error(capsys, _generate(files, model="no-such-preset"), "no-such-preset", "tiny", "mini")


def test_directory_that_is_not_a_checkpoint(files, capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    _one_line_error(capsys, _generate(files, model=tmp_path / "empty"), str(tmp_path / "empty"), "not a checkpoint")


@pytest.mark.parametrize("prompt", ["", "   "])
def test_empty_prompt(files, capsys, prompt):
    _one_line_error(capsys, _generate(files, prompt=prompt), "prompt is empty")


def test_no_image(files, capsys):
    _one_line_error(capsys, _generate(files, images=()), "--image")


def test_max_new_tokens_zero(files, capsys):
    _one_line_error(capsys, _generate(files, "--max-new-tokens", "0"), "max_new_tokens", "greater than 0")


@pytest.mark.parametrize(
    "flags, needle",
    [(["--num-beams", "0"], "num_beams"), (["--sample", "--top-p", "0"], "top_p"),
     (["--sample", "--temperature", "0"], "temperature"), (["--temperature", "0.7"], "apply only when sampling"),
     (["--top-p", "0.9"], "add --sample")],
)
def test_bad_decoding_settings(files, capsys, flags, needle):
    _one_line_error(capsys, _generate(files, *flags), needle)


def test_missing_required_argument_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "--model", "tiny"])
    assert exit_.value.code == 2 and "--prompt" in capsys.readouterr().err


def test_generate_dtype_defaults_to_auto(files, capsys):
    from mmlink.runtime import choose_dtype

    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "{auto,float32,bfloat16,float16}" in text and "auto (default)" in text and "AVX512-BF16 or AMX" in text
    # the default computes in what auto resolves to on this machine, and prints only the answer
    assert _ok(capsys, _generate(files)) == _ok(capsys, _generate(files, "--dtype", choose_dtype("auto").name))
    with pytest.raises(SystemExit) as exit_:
        _generate(files, "--dtype", "bf16")
    assert exit_.value.code == 2 and "'auto'" in capsys.readouterr().err


def test_console_script_runs_help():
    script = shutil.which("mmlink") or shutil.which("mmlink", path=str(Path(sys.executable).parent))
    cmd = [script, "--help"] if script else [sys.executable, "-m", "mmlink.cli", "--help"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert "generate" in result.stdout and "usage: mmlink" in result.stdout


def test_generate_plain_generate_and_quantized(files, capsys):
    default = _ok(capsys, _generate(files, "--dtype", "float32"))
    assert _ok(capsys, _generate(files, "--dtype", "float32", "--plain-generate")) == default
    for scheme in ("int8", "int4"):
        _ok(capsys, _generate(files, "--quantize", scheme))
    with pytest.raises(SystemExit):
        main(["generate", "--model", "tiny", "--image", str(files["a"]), "--prompt", "x", "--quantize", "int3"])
