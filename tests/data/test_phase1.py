"""CaD-VI Phase 1 on user data (mmlink.data.phase1): pairing levels, LLM summaries kept or replaced by the template
summary, the record format of the world's `cad` task, the retrieval turn, resuming, and `mmlink synth cad
--captions`. Nouns and caption facts on their own: tests/data/test_nouns.py, tests/data/test_caption_facts.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmlink.cli import main as cli_main
from mmlink.data.caption_facts import template_summary
from mmlink.data.formats import read_dataset
from mmlink.data.nouns import jaccard
from mmlink.data.phase1 import (
    CAD_PROMPT,
    PairingSettings,
    Phase1Config,
    pair_images,
    read_captions,
    summarize,
    synthesize_cad,
)
from mmlink.data.tasks.pairs import CAD_INSTRUCTIONS, format_cad
from mmlink.textllm import TemplateLLM, TextLLM, TextLLMError

CAPTIONS = {
    "a": "A brown dog and a white cat are sleeping on a sofa.",
    "b": "A brown dog and a black cat are sitting on a bed.",
    "c": "Two dogs are running in a park with a red ball.",
    "d": "A white cat is playing with a red ball next to a tree.",
    "e": "A blue car is parked on a city street.",
    "h": "A dog sits beside a ball under a tree near a bench.",
}


@pytest.fixture
def captions(tmp_path: Path) -> Path:
    """Generated images (flat colours with a square) and their captions; relative paths, as users write them."""
    (tmp_path / "img").mkdir()
    rows = []
    for k, (name, caption) in enumerate(CAPTIONS.items()):
        img = Image.new("RGB", (32, 32), (40 * k, 200 - 30 * k, 90))
        img.paste((255, 255, 255), (8, 8, 20, 20))
        img.save(tmp_path / "img" / f"{name}.png")
        rows.append({"image": f"img/{name}.png", "caption": caption})
    path = tmp_path / "captions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# --------------------------------------------------------------------------- pairing


def test_pairs_fall_into_levels_by_noun_jaccard(captions: Path) -> None:
    items = read_captions(captions)
    settings = PairingSettings()
    pairs, candidates = pair_images(items, 100, settings, seed=0)
    names = list(CAPTIONS)
    by_names = {(names[p.first], names[p.second]): p for p in pairs}
    assert by_names[("a", "b")].level == "high" and by_names[("a", "b")].jaccard == 0.5
    assert by_names[("c", "h")].level == "medium" and by_names[("c", "h")].shared == ("ball", "dog")
    assert by_names[("a", "c")].level == "low"
    assert not any("e" in key for key in by_names)  # the car shares no noun with anything
    for p in pairs:
        assert p.jaccard == pytest.approx(jaccard(items[p.first].nouns, items[p.second].nouns), abs=1e-4)
        assert p.level == settings.level(p.jaccard) and p.first < p.second
    assert candidates["high"] == 1 and candidates["medium"] == 2 and sum(candidates.values()) == 10
    again, _ = pair_images(items, 100, settings, seed=0)
    assert again == pairs  # deterministic for a seed
    first3, _ = pair_images(items, 3, settings, seed=0)
    assert [p.level for p in first3] == ["high", "medium", "low"]  # the levels take turns


def test_pairing_settings_are_validated() -> None:
    for bad in ({"levels": (("a", 0.2), ("b", 0.5))}, {"levels": (("a", 0.5), ("a", 0.2))}, {"levels": ()},
                {"levels": (("a", 0.0),)}, {"min_shared": 0}, {"max_pairs_per_image": 0}):
        with pytest.raises(ValueError):
            PairingSettings(**bad)


def test_read_captions_errors(tmp_path: Path, captions: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "img/a.png"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1: expected"):
        read_captions(bad)
    bad.write_text('{"image": "img/zzz.png", "caption": "A dog."}\n')
    with pytest.raises(FileNotFoundError, match="bad.jsonl:1: image 'img/zzz.png' not found"):
        read_captions(bad)


# --------------------------------------------------------------------------- records


def _world_cad_record(tmp_path: Path) -> dict:
    from mmlink.data.synth import synthesize

    synthesize("cad", tmp_path / "world", 1, "train", 0, image_size=32, progress=False)
    return json.loads((tmp_path / "world" / "data.jsonl").read_text().splitlines()[0])


def test_records_have_the_world_cad_format_and_a_correct_retrieval_turn(tmp_path: Path, captions: Path) -> None:
    out = tmp_path / "out"
    result = synthesize_cad(Phase1Config(captions=str(captions), out=str(out), n=8, seed=0, progress=False))
    assert result["records"] == 8 and result["summary_sources"] == {"template": 8}
    assert set(result["levels"]) == {"high", "medium", "low"}
    records, check = read_dataset(out / "data.json")  # the repository's own validator, image files included
    assert check["kept"] == 8
    world = _world_cad_record(tmp_path)
    answers = set()
    by_path = {str((captions.parent / f"img/{name}.png").resolve()): c for name, c in CAPTIONS.items()}
    for k, rec in enumerate(json.loads(line) for line in (out / "data.jsonl").read_text().splitlines()):
        assert rec["id"] == f"cad-user-s0-{k:06d}" and rec["task"] == world["task"] == "cad"
        assert set(rec) == set(world)
        assert [t["from"] for t in rec["conversations"]] == [t["from"] for t in world["conversations"]]
        first = rec["conversations"][0]["value"]
        assert first.startswith("Image 1: <image>\nImage 2: <image>\n") and first.split("\n")[2] in CAD_INSTRUCTIONS
        assert set(world["meta"]) - {"scenes"} <= set(rec["meta"])
        # images: relative to the output directory, the input's images
        paths = [str((out / p).resolve()) for p in rec["image"]]
        captions_of = [by_path[p] for p in paths]
        assert rec["meta"]["captions"] == captions_of
        # retrieval: the quoted caption is the answer image's own
        j = rec["meta"]["retrieval_answer"]
        assert rec["conversations"][3]["value"] == f"Image {j}"
        assert f'"{captions_of[j - 1]}"' in rec["conversations"][2]["value"]
        assert rec["meta"]["retrieval_caption"] == captions_of[j - 1] != captions_of[2 - j]
        answers.add(j)
        summary = rec["conversations"][1]["value"]
        assert summary == template_summary(*captions_of) == format_cad(rec["meta"]["summary"])
        assert rec["meta"]["axes"] == {s: list(rec["meta"]["summary"][s]) for s in ("commonalities", "differences")}
        assert rec["meta"]["backend"] == "template" and rec["meta"]["prompt_version"] == "cad_summary_v1"
    assert answers == {1, 2}
    report = json.loads((out / "report.json").read_text())
    assert report["pairs"] == 8 and report["axes"]["commonalities"]["object types"] == 8


class ScriptedLLM(TextLLM):
    name = "fake:scripted"

    def __init__(self, reply):
        self.reply, self.prompts = reply, []

    def complete(self, prompt, system=None):
        self.prompts.append((system, prompt))
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


def test_llm_summaries_are_kept_only_in_format_and_grounded() -> None:
    good = ("Commonalities:\n- Object types: Both images show a dog and a cat.\nDifferences:\n"
            "- Attributes: The cat is white in the first image and black in the second.")
    llm = ScriptedLLM(good)
    facts, source, rejected = summarize(llm, CAPTIONS["a"], CAPTIONS["b"])
    assert source == "llm" and format_cad(facts) == good and rejected is None
    system, prompt = llm.prompts[0]
    assert prompt == CAD_PROMPT.render(caption1=CAPTIONS["a"], caption2=CAPTIONS["b"]) and system
    assert f"Image 1: {CAPTIONS['a']}\nImage 2: {CAPTIONS['b']}" in prompt
    template = template_summary(CAPTIONS["a"], CAPTIONS["b"])
    for reply, reason in (("They are both cute.", "unparseable"),
                          (good.replace("a dog and a cat", "a dog and a giraffe"), "ungrounded"),
                          (TextLLMError("HTTP 503"), "error")):
        facts, source, rejected = summarize(ScriptedLLM(reply), CAPTIONS["a"], CAPTIONS["b"])
        assert source == f"fallback:{reason}" and format_cad(facts) == template and rejected == str(reply)
    facts, source, rejected = summarize(TemplateLLM(), CAPTIONS["a"], CAPTIONS["b"])
    assert source == "template" and format_cad(facts) == template and rejected is None


def test_a_backend_in_the_writer_and_its_report(tmp_path: Path, captions: Path) -> None:
    result = synthesize_cad(Phase1Config(captions=str(captions), out=str(tmp_path / "o"), n=4, progress=False),
                            llm=ScriptedLLM("no format at all"))
    assert result["summary_sources"] == {"fallback:unparseable": 4} and result["backend"] == "fake:scripted"
    record = json.loads((tmp_path / "o" / "data.jsonl").read_text().splitlines()[0])
    assert record["meta"]["rejected_summary"] == "no format at all"  # what the LLM wrote, to see why


def test_resume_grow_and_refuse(tmp_path: Path, captions: Path) -> None:
    out = tmp_path / "o"
    config = Phase1Config(captions=str(captions), out=str(out), n=3, seed=1, progress=False)
    synthesize_cad(config)
    first = (out / "data.jsonl").read_text()
    (out / "data.jsonl").write_text(first + '{"id": "cad-user-s1-000003", "ta')  # a torn write
    grown = synthesize_cad(Phase1Config(captions=str(captions), out=str(out), n=6, seed=1, progress=False))
    assert grown["resumed_from"] == 3 and grown["records"] == 6
    text = (out / "data.jsonl").read_text()
    assert text.startswith(first)
    fresh = tmp_path / "fresh"
    synthesize_cad(Phase1Config(captions=str(captions), out=str(fresh), n=6, seed=1, progress=False))
    assert (fresh / "data.jsonl").read_text() == text  # resumed == uninterrupted
    with pytest.raises(ValueError, match="backend"):
        synthesize_cad(Phase1Config(captions=str(captions), out=str(out), n=6, seed=1, progress=False),
                       llm=ScriptedLLM("x"))


def test_world_captions_of_rendered_scenes(tmp_path: Path) -> None:
    """Captions the world writes for its own rendered pairs, through the whole pipeline."""
    from mmlink.data.tasks.pairs import cad_pair
    from mmlink.data.world.render import render
    from mmlink.data.world.text import caption

    r = np.random.default_rng(3)
    rows = []
    for k, level in enumerate(("high", "medium", "low")):
        for m, scene in enumerate(cad_pair(r, "train", level)):
            render(scene, 32).save(tmp_path / f"{k}_{m}.png")
            rows.append({"image": str(tmp_path / f"{k}_{m}.png"), "caption": caption(scene, r)})
    path = tmp_path / "world.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in rows))
    result = synthesize_cad(Phase1Config(captions=str(path), out=str(tmp_path / "o"), n=6, progress=False))
    assert result["records"] >= 3 and len(result["levels"]) >= 2
    assert read_dataset(tmp_path / "o" / "data.json")[1]["kept"] == result["records"]


# --------------------------------------------------------------------------- command line


def test_cli(tmp_path: Path, captions: Path, capsys) -> None:
    out = tmp_path / "cli"
    assert cli_main(["synth", "cad", "--captions", str(captions), "--out", str(out), "--n", "3", "--seed", "0",
                     "--backend", "template", "--no-progress"]) == 0
    assert "synth cad from captions: 3 records" in capsys.readouterr().out
    assert len((out / "data.jsonl").read_text().splitlines()) == 3
    for argv, message in (
        (["synth", "group_caption", "--captions", str(captions), "--out", str(out), "--n", "3", "--seed", "0"],
         "task cad"),
        (["synth", "cad", "--out", str(tmp_path / "w"), "--n", "3", "--seed", "0"], "needs --split"),
        (["synth", "cad", "--out", str(tmp_path / "w"), "--n", "3", "--seed", "0", "--split", "train",
          "--backend", "local"], "--backend applies to --captions"),
        (["synth", "cad", "--captions", str(captions), "--out", str(out), "--n", "3", "--seed", "0",
          "--backend", "gpt"], "valid: template, local"),
    ):
        assert cli_main(argv) == 2
        assert message in capsys.readouterr().err
