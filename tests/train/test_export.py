"""mmlink.train.export (``mmlink export``): its command line, what it refuses (each error says what the directory is
and what to do), and the atomic write of the merged model — with the merge itself faked, so no training runs here;
tests/train/test_rough_edges.py exports real runs end to end."""

import argparse
import json

import pytest
import torch

from mmlink.models.loading import DELTA_CONFIG
from mmlink.train import export


def _parser():
    parser = argparse.ArgumentParser(prog="mmlink")
    export.add_parser(parser.add_subparsers(dest="command"))
    return parser


def _args(checkpoint, out, dtype=None):
    return argparse.Namespace(checkpoint=str(checkpoint), out=str(out), dtype=dtype)


def test_the_command_line():
    args = _parser().parse_args(["export", "runs/x/final", "--out", "models/x", "--dtype", "bfloat16"])
    assert (args.checkpoint, args.out, args.dtype, args.func) == ("runs/x/final", "models/x", "bfloat16", export.run)
    assert _parser().parse_args(["export", "c", "--out", "o"]).dtype is None
    with pytest.raises(SystemExit):
        _parser().parse_args(["export", "c"])  # --out is required
    with pytest.raises(SystemExit):
        _parser().parse_args(["export", "c", "--out", "o", "--dtype", "int8"])
    assert export.DTYPES == ("float32", "bfloat16", "float16")


def _delta(path, adapter=None):
    path.mkdir(parents=True)
    (path / DELTA_CONFIG).write_text(json.dumps({"base": "tiny", **({"adapter": adapter} if adapter else {})}))
    return path


def test_refusals_say_what_the_directory_is(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint directory not found: .*missing"):
        export.run(_args(tmp_path / "missing", tmp_path / "out"))
    run_dir = tmp_path / "run"
    _delta(run_dir / "final")
    with pytest.raises(ValueError, match=rf"{run_dir} is not a trainable-only save \(no {DELTA_CONFIG}\); did you mean "
                                         rf"{run_dir / 'final'}\?"):
        export.run(_args(run_dir, tmp_path / "out"))
    full = tmp_path / "standalone"
    full.mkdir()
    (full / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"no mmlink_delta\.json\): it is already standalone"):
        export.run(_args(full, tmp_path / "out"))
    (tmp_path / "bare").mkdir()
    with pytest.raises(ValueError, match=r"bare is not a trainable-only save \(no mmlink_delta\.json\)$"):
        export.run(_args(tmp_path / "bare", tmp_path / "out"))
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("")
    (tmp_path / "file").write_text("")
    for out in ("taken", "file"):
        with pytest.raises(ValueError, match="already exists and is not an empty directory; choose another --out"):
            export.run(_args(run_dir / "final", tmp_path / out))


@pytest.fixture
def merged(monkeypatch):
    """A fake `export_merged`: records its calls and writes a config, and a tokenizer file unless the save's path
    says "plain" (a model-only save)."""
    import mmlink.train.lora as lora

    calls = []

    def fake(source, tmp, dtype):
        calls.append((source, tmp.name, dtype))
        (tmp / "config.json").write_text(json.dumps({"model_type": "mmlink_qformer"}))
        if "plain" not in str(source):
            (tmp / "tokenizer.json").write_text("{}")

    monkeypatch.setattr(lora, "export_merged", fake)
    return calls


def test_export_writes_atomically_and_says_what_it_wrote(tmp_path, merged, capsys):
    calls = merged
    source = _delta(tmp_path / "run" / "final", adapter="adapter")
    out = tmp_path / "models" / "x"
    assert export.run(_args(source, out, "bfloat16")) == 0
    assert calls == [(source, ".tmp-x", torch.bfloat16)]  # written into a temporary directory, then renamed
    assert json.loads((out / "config.json").read_text()) == {"model_type": "mmlink_qformer"}
    assert not (tmp_path / "models" / ".tmp-x").exists()
    said = capsys.readouterr().out
    assert said == (f"wrote {out}: standalone mmlink_qformer model (LoRA adapter {source / 'adapter'} merged); "
                    f"load it with mmlink.models.load({str(out)!r}) or --model {out}\n")
    (tmp_path / "empty").mkdir()  # an empty directory is a fine --out
    plain = _delta(tmp_path / "plain" / "final")
    assert export.run(_args(plain, tmp_path / "empty")) == 0
    assert calls[-1] == (plain, ".tmp-empty", None)  # no --dtype: as loaded
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'empty'}: standalone mmlink_qformer model, "
                                              "model only; load it")
