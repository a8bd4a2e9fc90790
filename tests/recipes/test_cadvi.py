"""CaD-VI Phase 2 (`mmlink.recipes.cadvi`) end to end on `tiny-llava`: a 3-step Phase-1 LoRA run, then annotate →
filter → mix → train from it; resume after an interrupted annotate; settings errors that name their field; the
CLI. The filter's own decisions: tests/recipes/test_cadvi_filter.py."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mmlink.data.formats import read_dataset
from mmlink.data.synth import synthesize
from mmlink.data.tasks.pairs import CAD_INSTRUCTIONS
from mmlink.models import load
from mmlink.recipes import cadvi_annotate
from mmlink.recipes.cadvi import Phase2Settings, main, phase2_train_config, run
from mmlink.recipes.cadvi_annotate import SCRATCH_INSTRUCTION, read_annotations
from mmlink.recipes.cadvi_filter import FilterRules
from mmlink.train import TrainConfig, train

# Rules that keep whatever `tiny-llava` (random weights: byte noise) writes, so the later stages have data; the
# default rules are tested on hand-made summaries in tests/recipes/test_cadvi_filter.py.
KEEP_ALL = {"min_fact_precision": 0.0, "min_facts": 0, "min_words": 0, "max_repeat": 1.0, "drop_truncated": False,
            "require_sections": False}


# one thread, and a fresh accelerate state per test: tests/conftest.py
pytestmark = pytest.mark.usefixtures("one_thread", "fresh_accelerate_state")


@pytest.fixture(scope="module")
def phase1(tmp_path_factory) -> Path:
    """A finished Phase-1 run: LoRA (r 2) + projector on `tiny-llava`, 3 steps on 4 world CaD records."""
    root = tmp_path_factory.mktemp("phase1")
    synthesize("cad", root / "cad_train", 4, "train", 0, image_size=32, progress=False)
    synthesize("cad", root / "cad_val", 2, "val", 0, image_size=32, progress=False)
    config = TrainConfig(train_data=str(root / "cad_train" / "data.jsonl"), val_data=str(root / "cad_val" / "data.jsonl"),
                         out_dir=str(root / "run"), model="tiny-llava", trainable="projection",
                         lora={"r": 2, "alpha": 4.0, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
                         lr=1e-2, warmup_steps=0, max_steps=3, batch_size=2, mixed_precision="no", eval_every=0,
                         sample_every=0, save_every=0, progress=False)
    train(config)
    return root / "run"


def settings(phase1: Path, out: Path, **kw) -> Phase2Settings:
    base = dict(phase1_run=str(phase1), out=str(out), n=3, image_size=32, batch_size=4, max_new_tokens=12,
                dtype="float32", filter=KEEP_ALL, train_sources=["scratch", "refine"],
                train={"max_steps": 2, "lr": 1e-6, "save_every": 1}, progress=False)
    return Phase2Settings(**{**base, **kw})


def llm_and_projector(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().float().clone() for n, p in model.named_parameters()
            if "multi_modal_projector" in n or n.endswith(("q_proj.weight", "v_proj.weight"))}


def max_diff(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


# ------------------------------------------------------------------------------------------------------- end to end


def test_phase2_annotates_filters_mixes_and_trains_from_the_phase1_model(phase1, tmp_path):
    out = tmp_path / "phase2"
    s = settings(phase1, out)
    summary = run(s)

    # 1. annotate: each of the 3 new pairs from scratch and by refining its change caption
    rows = read_annotations(out)
    assert sorted((r["source"], r["id"]) for r in rows) == sorted(
        (src, f"change_caption-train-s1-{i:06d}") for src in ("scratch", "refine") for i in range(3))
    pairs = {r["id"]: r for r in read_dataset(out / "pairs" / "data.jsonl")[0]}
    for r in rows:
        assert r["prompt"].startswith("Image 1: <image>\nImage 2: <image>\n")
        assert r["prompt"].endswith(SCRATCH_INSTRUCTION)  # the Phase-1 instruction, verbatim, in both prompts
        change = pairs[r["id"]]["conversations"][1]["value"]
        assert (change in r["prompt"]) == (r["source"] == "refine")
        assert isinstance(r["text"], str) and isinstance(r["ended"], bool)
    assert summary["annotate"]["generated"] == 6

    # 2. filter: every decision written and counted per source
    report = json.loads((out / "filter" / "report.json").read_text())
    assert report["world"] is True and report["annotations"] == 6
    assert {k: v["annotations"] for k, v in report["by_source"].items()} == {"scratch": 3, "refine": 3}
    decisions = [json.loads(line) for line in (out / "filter" / "decisions.jsonl").read_text().splitlines()]
    assert len(decisions) == 6 and sum(d["keep"] for d in decisions) == report["kept"]
    assert all(d["facts"] is not None for d in decisions)  # world pairs: every summary fact-checked

    # 3. mix: Phase 1 twice (the second copy under its own ids), then the kept Phase-2 summaries
    mix, _ = read_dataset(out / "data" / "train.jsonl")  # validates every record and that its images exist
    phase1_ids = [r["id"] for r in read_dataset(phase1.parent / "cad_train" / "data.jsonl")[0]]
    ids = [r["id"] for r in mix]
    assert ids[: 2 * len(phase1_ids)] == phase1_ids + [f"{i}-copy2" for i in phase1_ids]
    assert [r["image"] for r in mix[:4]] == [r["image"] for r in mix[4:8]]
    phase2 = mix[2 * len(phase1_ids):]
    assert len(phase2) == report["kept"] > 0 and {r["meta"]["source"] for r in phase2} <= {"scratch", "refine"}
    for r in phase2:  # the plain CaD question, never the refine prompt, and the annotation as the answer
        assert r["conversations"][0]["value"].split("\n")[-1] in CAD_INSTRUCTIONS
        assert r["meta"]["phase"] == 2 and len(r["meta"]["scenes"]) == 2
    assert len(read_dataset(out / "data" / "val.jsonl")[0]) == 2

    # 4. train: Phase 1's config on the mix, starting from the Phase-1 model, to the end
    trained = json.loads((out / "train" / "train_summary.json").read_text())
    assert trained["steps"] == 2 and (out / "train" / "final").is_dir()
    assert trained["config"]["model"] == str((phase1 / "final").resolve())
    assert trained["config"]["lora"]["r"] == 2 and trained["config"]["train_data"] == str(out / "data" / "train.jsonl")
    delta = json.loads((out / "train" / "final" / "mmlink_delta.json").read_text())
    assert delta["base_absolute"] == str((phase1 / "final").resolve())
    assert (out / "train" / "final" / delta["base"]).resolve() == (phase1 / "final").resolve()
    # lr 1e-6 for 2 steps: Phase 2's weights are Phase 1's within a few 1e-6, and far from the untrained base's
    base, _ = load("tiny-llava")
    one, _ = load(phase1 / "final")
    two, _ = load(out / "train" / "final")
    w0, w1, w2 = (llm_and_projector(m) for m in (base, one, two))
    assert max_diff(w1, w0) > 1e-3
    assert max_diff(w2, w1) < 1e-4

    # a re-run finds every stage done: nothing annotated or trained again
    again = run(s)
    assert again["annotate"]["generated"] == 0 and again["annotate"]["resumed"] == 6
    assert again["train"]["steps"] == 2
    assert json.loads((out / "train" / "train_summary.json").read_text())["time_s"] == trained["time_s"]
    with pytest.raises(ValueError, match="a finished Phase-2 run with other settings \\(max_steps\\)"):
        run(settings(phase1, out, train={"max_steps": 3, "lr": 1e-6, "save_every": 1}), ["train"])

    # killed after the step-1 checkpoint (the last step writes final/, not a checkpoint): the train stage resumes
    # from it and finishes the same run
    import shutil

    files = ("trainable.safetensors", "adapter/adapter_model.safetensors")
    before = [load_file(out / "train" / "final" / f) for f in files]
    shutil.rmtree(out / "train" / "final")
    (out / "train" / "train_summary.json").unlink()
    resumed = run(s, ["train"])["train"]
    assert resumed["steps"] == 2
    assert json.loads((out / "train" / "train_summary.json").read_text())["resumed_from_step"] == 1
    after = [load_file(out / "train" / "final" / f) for f in files]
    for a, b in zip(before, after):  # the same mix and config again: the resumed run ends where the first one did
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    # more pairs change the mix: the finished run is not taken for one trained on it
    with pytest.raises(ValueError, match="changed since .* was trained on it"):
        run(settings(phase1, out, n=4))


def test_an_interrupted_annotate_resumes_without_duplicates(phase1, tmp_path, monkeypatch):
    out = tmp_path / "phase2"
    s = settings(phase1, out, n=5, batch_size=2)
    real, calls, crash = cadvi_annotate.generate, [], [True]

    class Killed(Exception):
        pass

    def crash_on_third_batch(*args, **kw):
        calls.append(len(args[2]))
        if crash[0] and len(calls) == 3:
            raise Killed  # the process dies while the third batch decodes
        return real(*args, **kw)

    monkeypatch.setattr(cadvi_annotate, "generate", crash_on_third_batch)
    with pytest.raises(Killed):
        run(s, ["annotate"])
    first = (out / "annotations.jsonl").read_text().splitlines()
    assert len(first) == 4  # two batches of 2 written and fsynced before the crash
    with open(out / "annotations.jsonl", "a") as f:
        f.write('{"task": "scratch", "id": "torn')  # and a torn line, as a kill mid-write leaves

    calls.clear()
    crash[0] = False
    summary = run(s, ["annotate"])
    assert summary["annotate"]["resumed"] == 4 and summary["annotate"]["generated"] == 6
    assert sum(calls) == 6  # only the missing rows were generated
    lines = (out / "annotations.jsonl").read_text().splitlines()
    assert lines[:4] == first  # kept as they were
    keys = [(json.loads(line)["source"], json.loads(line)["id"]) for line in lines]
    assert len(keys) == len(set(keys)) == 10


def test_another_annotator_cannot_append_to_the_same_output(phase1, tmp_path):
    out = tmp_path / "phase2"
    run(settings(phase1, out, n=1, sources=["scratch"], train_sources=["scratch"]), ["annotate"])
    with pytest.raises(ValueError, match="max_new_tokens: 12 then, 20 now"):
        run(settings(phase1, out, n=1, sources=["scratch"], train_sources=["scratch"], max_new_tokens=20),
            ["annotate"])


def test_pairs_phase1_trained_on_are_refused(phase1, tmp_path):
    """The Phase-1 data are `cad` train seed 0 records: given as the pairs file, they are not new pairs."""
    with pytest.raises(ValueError, match="are Phase-1 training samples"):
        run(settings(phase1, tmp_path / "p2", pairs=str(phase1.parent / "cad_train" / "data.jsonl"),
                     sources=["scratch"], train_sources=["scratch"]), ["annotate"])


# ------------------------------------------------------------------------------------------------------- settings, CLI


@pytest.mark.parametrize("kw, message", [
    ({"n": "3"}, "n: expected an integer"),
    ({"sources": ["scratch", "rewrite"]}, "sources must list some of"),
    ({"sources": ["scratch"], "train_sources": ["refine"]}, r"train_sources \['refine'\] are not annotated"),
    ({"filter": {"min_word": 3}}, r"filter: unknown key\(s\) \['min_word'\]"),
    ({"filter": {"min_fact_precision": 2}}, r"filter.min_fact_precision must be in \[0, 1\]"),
    ({"split": "test"}, "split: test is where the CaD-VI tables are measured"),
    ({"split": "dev"}, r"split: expected one of \['train', 'val'\]"),
    ({"train": {"train_data": "x.jsonl"}}, "are set by the recipe"),
])
def test_bad_settings_are_errors_naming_the_field(kw, message):
    with pytest.raises(ValueError, match=message):
        Phase2Settings(**{"phase1_run": "a", "out": "b", **kw})


def test_train_overrides_are_checked_by_trainconfig(phase1, tmp_path):
    with pytest.raises(ValueError, match="train: unknown key 'max_step'"):
        phase2_train_config(settings(phase1, tmp_path, train={"max_step": 2}))
    config = phase2_train_config(settings(phase1, tmp_path, train={"max_steps": "7", "mixed_precision": "no"}))
    assert config.max_steps == 7 and config.lr == 1e-2 and config.lora.r == 2  # the rest is Phase 1's
    assert config.model == str((phase1 / "final").resolve())
    assert phase2_train_config(settings(phase1, tmp_path, init="base")).model == "tiny-llava"


def test_the_cli_reads_the_yaml_then_flags_and_reports_errors_in_one_line(phase1, tmp_path, capsys):
    import yaml

    cfg = tmp_path / "p2.yaml"
    cfg.write_text(yaml.safe_dump({"phase1_run": str(phase1), "out": str(tmp_path / "o"), "n": 2, "image_size": 32,
                                   "max_new_tokens": 4, "dtype": "float32", "progress": False,
                                   "filter": KEEP_ALL}))
    assert main(["annotate", "--config", str(cfg), "--n", "1", "--sources", "scratch", "--train-sources", "scratch",
                 "--filter", "min_words=0"]) == 0
    assert len(read_annotations(tmp_path / "o")) == 1
    assert main(["filter", "--config", str(cfg), "--n", "1", "--sources", "scratch",
                 "--train-sources", "scratch"]) == 0
    assert "filter: kept" in capsys.readouterr().out
    assert main(["annotate", "--config", str(cfg), "--filter", "min_wordz=1"]) == 2
    assert "filter: unknown key 'min_wordz'" in capsys.readouterr().err
    assert main(["train", "--phase1-run", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2
    assert "train_summary.json: not found" in capsys.readouterr().err


def test_the_mmlink_command_wiring_runs_a_stage(phase1, tmp_path):
    """What the `mmlink` command does with `add_parser`: ``mmlink cadvi <stage> ...`` → ``args.func(args)``."""
    import argparse

    from mmlink.recipes import cadvi

    parser = argparse.ArgumentParser(prog="mmlink")
    cadvi.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["cadvi", "annotate", "--phase1-run", str(phase1), "--out", str(tmp_path / "o"),
                              "--n", "1", "--image-size", "32", "--max-new-tokens", "2", "--sources", "scratch",
                              "--train-sources", "scratch", "--progress", "false"])
    assert args.command == "cadvi" and args.stage == "annotate"
    assert args.func(args) == 0
    assert len(read_annotations(tmp_path / "o")) == 1


def test_the_yaml_in_configs_is_valid():
    from mmlink.settings import from_mapping, read_config_file

    path = Path(__file__).parents[2] / "configs" / "recipes" / "cadvi_phase2.yaml"
    s = from_mapping(Phase2Settings, read_config_file(path), str(path))
    assert s.sources == ("scratch", "refine") and s.phase1_copies == 2 and s.filter == FilterRules()
