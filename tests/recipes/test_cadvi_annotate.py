"""mmlink.recipes.cadvi_annotate: the annotator's prompts per source, the pairs it reads (world or user files, errors
naming record and field), the claim that keeps one annotator per output, resuming without a model, and the rows
read back. Generation itself runs end to end in tests/recipes/test_cadvi.py."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from mmlink.data.tasks.pairs import CAD_INSTRUCTIONS
from mmlink.eval.harness import PredictionStore
from mmlink.recipes import cadvi_annotate as ca
from mmlink.recipes.cadvi_annotate import Pair, prompt_turns, read_annotations, read_pairs


def _pair(change="The ball has turned blue.", pid="p0") -> Pair:
    return Pair(pid, ("/a.png", "/b.png"), change, None)


def test_scratch_asks_with_the_phase1_instruction_verbatim():
    (turn,) = prompt_turns("scratch", _pair())
    assert turn == {"from": "human", "value": f"Image 1: <image>\nImage 2: <image>\n{CAD_INSTRUCTIONS[0]}"}
    assert ca.SCRATCH_INSTRUCTION == CAD_INSTRUCTIONS[0]


def test_refine_quotes_the_difference_only_annotation():
    (turn,) = prompt_turns("refine", _pair("  The ball has turned blue. \n"))
    assert turn["value"] == ("Image 1: <image>\nImage 2: <image>\n"
                             'The differences between the two images have been described as: "The ball has turned '
                             'blue."\nSummarize the commonalities and differences between the two images.')
    assert ca.PROMPT_VERSIONS == {"scratch": "phase1-instruction-0", "refine": "cadvi_phase2_refine_v1"}
    with pytest.raises(ValueError, match="pair 'p0' has no difference-only annotation to refine"):
        prompt_turns("refine", _pair(None))
    with pytest.raises(ValueError, match="unknown annotation source 'rewrite' \\(expected one of scratch, refine\\)"):
        prompt_turns("rewrite", _pair())


def _write(path: Path, records) -> Path:
    (path.parent / "img").mkdir(parents=True, exist_ok=True)
    for name in ("a.png", "b.png"):
        Image.new("RGB", (8, 8)).save(path.parent / "img" / name)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _rec(rid, images=("img/a.png", "img/b.png"), gpt="Only the ball changed.", **meta):
    prompt = "".join(f"Image {k + 1}: <image>\n" for k in range(len(images))) + "What changed?"
    return {"id": rid, "image": list(images), "conversations": [{"from": "human", "value": prompt},
                                                               {"from": "gpt", "value": gpt}], "meta": meta}


def test_read_pairs_of_a_user_file(tmp_path):
    path = _write(tmp_path / "pairs" / "data.jsonl", [_rec("u1"), _rec("u2", images=("img/b.png", "img/a.png"),
                                                                        gpt="The cat left.")])
    first, second = read_pairs(path)
    a, b = str(tmp_path / "pairs" / "img" / "a.png"), str(tmp_path / "pairs" / "img" / "b.png")  # beside the file
    assert first == Pair("u1", (a, b), "Only the ball changed.", None)  # no meta.scenes: no fact check
    assert second == Pair("u2", (b, a), "The cat left.", None)


def test_read_pairs_errors_name_the_record_and_field(tmp_path):
    path = _write(tmp_path / "one.jsonl", [_rec("u1"), _rec("solo", images=("img/a.png",))])
    with pytest.raises(ValueError, match=r"one\.jsonl: record 1 \(id 'solo'\): field 'image' holds 1 images; a pair "
                                         r"needs exactly 2"):
        read_pairs(path)
    path = _write(tmp_path / "scenes.jsonl", [_rec("w1", scenes=[{}])])
    with pytest.raises(ValueError, match=r"record 0 \(id 'w1'\): field 'meta.scenes' must be a list of 2 scene graphs"):
        read_pairs(path)


def test_world_pairs_carry_their_change_caption_and_scene_graphs(tmp_path):
    path = ca.world_pairs(tmp_path, 2, "train", 5, 32, progress=False)
    assert path == tmp_path / ca.PAIRS_DIR / "data.jsonl"
    pairs = read_pairs(path)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [p.id for p in pairs] == [r["id"] for r in records] and len(pairs) == 2
    for pair, rec in zip(pairs, records):
        assert pair.change == rec["conversations"][1]["value"] and pair.scenes == tuple(rec["meta"]["scenes"])
        assert all(Path(p).is_file() and Path(p).is_absolute() for p in pair.images)


def test_the_claim_refuses_another_annotator(tmp_path):
    claim = tmp_path / "annotate.json"
    run = {"model": "m1", "dtype": "auto", "max_new_tokens": 12}
    ca._claim(claim, run)
    assert json.loads(claim.read_text()) == run
    ca._claim(claim, dict(run))  # the same settings: fine
    with pytest.raises(ValueError, match=r"annotate\.json: this directory holds annotations made with other settings "
                                         r"\(dtype: 'auto' then, 'float32' now; model: 'm1' then, 'm2' now\)"):
        ca._claim(claim, {**run, "model": "m2", "dtype": "float32"})


@pytest.fixture
def no_model(monkeypatch):
    """Loading a model fails the test: these paths must not need one."""
    import mmlink.models

    monkeypatch.setattr(mmlink.models, "load", lambda *a, **k: pytest.fail("the annotator was loaded"))


def test_annotate_resumes_a_finished_file_without_loading_the_model(tmp_path, no_model):
    pairs = [_pair(pid="p0"), _pair(None, pid="p1")]
    store = PredictionStore(tmp_path / ca.ANNOTATIONS)
    store.append([{"task": s, "id": p, "source": s, "text": "x"} for s, p in (("scratch", "p0"), ("scratch", "p1"),
                                                                             ("refine", "p0"))])
    summary = ca.annotate(pairs, tmp_path, "tiny", ["scratch", "refine"], 2, 12)
    assert summary == {"rows": 3, "resumed": 3, "generated": 0, "no_annotation_to_refine": 1,
                       "file": str(tmp_path / ca.ANNOTATIONS)}
    claim = json.loads((tmp_path / ca.ANNOTATE_CLAIM).read_text())
    assert claim == {"model": "tiny", "dtype": "auto", "max_new_tokens": 12, "prompts": ca.PROMPT_VERSIONS,
                     "decoding": "greedy"}


def test_annotate_refuses_refine_when_no_pair_has_a_change(tmp_path, no_model):
    with pytest.raises(ValueError, match="source 'refine' needs difference-only annotations, and no pair has one"):
        ca.annotate([_pair(None)], tmp_path, "tiny", ["refine"], 2, 12)
    assert not (tmp_path / ca.ANNOTATE_CLAIM).exists()  # refused before anything was written


def test_read_annotations_gives_complete_rows(tmp_path):
    with pytest.raises(FileNotFoundError, match="no annotations yet; run the annotate stage first"):
        read_annotations(tmp_path)
    rows = [{"task": "scratch", "id": "p0", "text": "a"}, {"task": "refine", "id": "p0", "text": "b"}]
    (tmp_path / ca.ANNOTATIONS).write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"task": "scr')
    assert read_annotations(tmp_path) == rows  # the torn last line is dropped


@pytest.mark.parametrize("model_eos, tokenizer_eos, expected", [
    ([2, 7], 2, {2, 7}), (5, None, {5}), (None, 3, {3}), (None, None, set()),
])
def test_eos_ids_from_the_generation_config_and_the_tokenizer(model_eos, tokenizer_eos, expected):
    model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=model_eos))
    processor = SimpleNamespace(tokenizer=SimpleNamespace(eos_token_id=tokenizer_eos))
    assert ca._eos_ids(model, processor) == expected
