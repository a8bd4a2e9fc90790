"""mmlink.train.cli: one flag per TrainConfig field (help from the field), the config file below the flags, and
bad input as one line naming the field (exit 2) before anything loads."""

from __future__ import annotations

import dataclasses
import re

import pytest

from mmlink.cli import build_parser, main
from mmlink.settings import flag_name
from mmlink.train.config import TrainConfig


def test_every_field_is_a_flag_with_its_help_line():
    helps = {a.option_strings[0]: a.help for a in _train_parser()._actions if a.option_strings}
    for f in dataclasses.fields(TrainConfig):
        assert flag_name(f.name) in helps, f.name
        assert helps[flag_name(f.name)].startswith(f.metadata["help"]), f.name
    assert helps["--lr"].endswith("(default: 2e-05)") and helps["--train-data"].endswith("(required)")


def _train_parser():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices["train"]


@pytest.mark.parametrize("argv, message", [
    (["--train-data", "d.jsonl"], r"missing required setting\(s\) \['out_dir'\]"),
    (["--train-data", "d.jsonl", "--out-dir", "o", "--lr", "fast"], "lr: expected a number, got 'fast'"),
    (["--train-data", "d.jsonl", "--out-dir", "o", "--batch-size", "0"], "batch_size must be >= 1, got 0"),
    (["--train-data", "d.jsonl", "--out-dir", "o", "--betas", "0.9"], "betas: expected a list of 2"),
])
def test_bad_flags_are_one_line_errors(argv, message, capsys):
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmlink train: error: ") and err.count("\n") == 1
    assert re.search(message, err), err


def test_flags_override_the_config_file(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("train_data: missing.jsonl\nout_dir: o\nbatch_size: 0\n")
    assert main(["train", "--config", str(config)]) == 2
    assert "batch_size must be >= 1, got 0" in capsys.readouterr().err
    # the flag wins over the file's bad value; the next error is the missing data file, found before any model loads
    assert main(["train", "--config", str(config), "--batch-size", "2"]) == 2
    assert "train_data: missing.jsonl not found" in capsys.readouterr().err
