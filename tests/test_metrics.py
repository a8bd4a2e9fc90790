"""mmlink.metrics.score agrees with pycocoevalcap called directly; its errors name the problem."""

from __future__ import annotations

import json
import shutil
import string
import warnings

import pytest

pytest.importorskip("pycocoevalcap")
from pycocoevalcap.bleu.bleu import Bleu  # noqa: E402
from pycocoevalcap.cider.cider import Cider  # noqa: E402
from pycocoevalcap.rouge.rouge import Rouge  # noqa: E402
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer  # noqa: E402

from lightimport import run_light  # noqa: E402

from mmlink.metrics import (  # noqa: E402
    METRICS,
    EmptyPredictionWarning,
    JavaNotFoundError,
    read_predictions,
    read_references,
    score,
    score_files,
)

# COCO-style fixture: id -> (prediction, references). Ids are ints here to check they are compared as strings.
FIXTURE = {
    391895: ("A man riding a motorcycle on a dirt road.",
             ["A man with a red helmet on a small moped on a dirt road.",
              "Man riding a motor bike on a dirt road on the countryside.",
              "A man riding on the back of a motorcycle.",
              "A dirt path with a young person on a motor bike rests to the foreground of a verdant area."]),
    522418: ("A woman cutting a cake with a knife.",
             ["A woman wearing a net on her head cutting a cake.",
              "A woman cutting a large white sheet cake.",
              "A woman wearing a hair net cutting a large sheet cake.",
              "there is a woman that is cutting a white cake",
              "A woman marking a cake with the back of a chef's knife."]),
    184613: ("A boy holding an umbrella next to a herd of cattle.",
             ["A child holding a flowered umbrella and petting a yak.",
              "A young man holding an umbrella next to a herd of cattle.",
              "a young boy barefoot holding an umbrella touching the horn of a cow"]),
    318219: ("A young boy using a computer at a desk.",
             ["A young boy standing in front of a computer keyboard.",
              "a little boy wearing headphones and looking at a computer monitor",
              "He is listening intently to the computer at school."]),
    554625: ("A boy sitting at a table with a laptop.",
             ["A child sitting at a desk with a laptop computer.",
              "A boy in a green shirt is looking at a laptop."]),
    397133: ("A man in a kitchen preparing food.",
             ["A man is in a kitchen making pizzas.",
              "Man in apron standing on front of oven with pans and bakeware",
              "A baker is working in the kitchen rolling dough.",
              "A person standing by a stove in a kitchen."]),
    37777: ("A kitchen with wooden cabinets and a white refrigerator.",
            ["The dining table near the kitchen has a bowl of fruit on it.",
             "A small kitchen has various appliances and a table.",
             "The kitchen is clean and ready for us to see.",
             "A kitchen and dining area decorated in white."]),
    252219: ("A group of people standing on a city street.",
             ["A person in a helmet rides a bike past a crowd waiting at a crosswalk.",
              "Several people on a sidewalk near a busy street.",
              "People walking down the sidewalk of a city."]),
    87038: ("A person riding a skateboard down a street.",
            ["A man is doing a trick on a skateboard.",
             "A skateboarder riding down the middle of an empty road.",
             "a person riding a skate board on a city street"]),
    174482: ("A bicycle parked next to a red bus.",
             ["A bike is parked in front of a bus on the side of the road.",
              "A red double decker bus driving past a parked bicycle.",
              "a bicycle leaning against a pole near a bus"]),
    403385: ("A bathroom with a toilet and a sink.",
             ["A small bathroom with a toilet, sink and shower.",
              "A white toilet sitting next to a bathroom sink.",
              "A clean bathroom with white tiles on the wall."]),
    6818: ("A white toilet in a small bathroom.",
           ["A bathroom with a toilet and a trash can.",
            "The toilet is next to the wall in the tiny restroom."]),
    480985: ("A plate of food with broccoli and meat.",
             ["A plate topped with meat and broccoli florets.",
              "Beef and broccoli on a white plate next to a fork.",
              "A dinner plate with steak, vegetables and rice.",
              "some food on a plate on a wooden table"]),
    458054: ("A giraffe standing next to a tree.",
             ["A tall giraffe eating leaves from the top of a tree.",
              "A giraffe standing in a grassy field near trees.",
              "The giraffe is reaching up to the branches."]),
    331352: ("A cat sitting on top of a laptop computer.",
             ["A cat lying on the keyboard of an open laptop.",
              "An orange cat sleeping on a computer keyboard.",
              "The cat is sitting on the laptop on the desk."]),
    296649: ("A dog laying on a bed with a blanket.",
             ["A brown dog sleeping on a bed under a blanket.",
              "A dog curled up on a comforter on a bed.",
              "The dog's head is resting on a pillow."]),
    386164: ("A train traveling down tracks next to a forest.",
             ["A passenger train moving along the tracks through the woods.",
              "A long train is on the railroad tracks near trees.",
              "A yellow and blue train on a track."]),
    209222: ("A baseball player swinging a bat at a ball.",
             ["A batter swinging at a pitch during a baseball game.",
              "A baseball player hits the ball while the catcher watches.",
              "A man in a uniform swings a bat at home plate.",
              "the batter is ready to hit the ball"]),
    232538: ("Two elephants walking in a grassy field.",
             ["Two elephants standing in the tall grass.",
              "An adult elephant and a baby elephant walking in a field.",
              "A pair of elephants roaming across the savanna."]),
    574769: ("A pizza on a table with a glass of wine.",
             ["A large pizza sitting on top of a wooden table.",
              "A pizza with cheese and tomatoes next to a glass of red wine.",
              "A pizza is served on a pan on the table."]),
}  # fmt: skip
PREDS = {k: p for k, (p, _) in FIXTURE.items()}
REFS = {k: r for k, (_, r) in FIXTURE.items()}
HAS_JAVA = shutil.which("java") is not None
_PUNCT = str.maketrans("", "", string.punctuation)


def _simple(text):
    return " ".join(text.lower().translate(_PUNCT).split())


def direct(preds, refs, tokenize="simple"):
    """pycocoevalcap called directly, the way COCOEvalCap (ptb) or SAM's script (simple) calls it."""
    if tokenize == "ptb":
        tok = PTBTokenizer()
        gts = tok.tokenize({k: [{"caption": c} for c in v] for k, v in refs.items()})
        res = tok.tokenize({k: [{"caption": preds[k]}] for k in refs})
    else:
        gts = {k: [_simple(c) for c in v] for k, v in refs.items()}
        res = {k: [_simple(preds[k])] for k in refs}
    bleu, bleu_items = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    return {"BLEU-1": 100 * bleu[0], "BLEU-2": 100 * bleu[1], "BLEU-3": 100 * bleu[2], "BLEU-4": 100 * bleu[3],
            "ROUGE-L": 100 * rouge, "CIDEr": 100 * cider, "bleu4_items": bleu_items[3]}  # fmt: skip


def _assert_agree(ours, ref):
    for key, value in ours.items():
        if key != "n":
            assert value == pytest.approx(ref[key], rel=0, abs=1e-7), key  # 1e-9 of the unscaled score


def test_simple_agrees_with_pycocoevalcap():
    ours = score(PREDS, REFS)
    assert list(ours) == ["BLEU-4", "ROUGE-L", "CIDEr", "n"]
    assert ours["n"] == len(FIXTURE) == 20
    _assert_agree(ours, direct(PREDS, REFS))
    assert 5 < ours["BLEU-4"] < 60 and 20 < ours["ROUGE-L"] < 80 and 10 < ours["CIDEr"] < 200  # sane numbers
    every = score(PREDS, REFS, metrics=list(METRICS))
    assert list(every) == ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr", "n"]
    _assert_agree(every, direct(PREDS, REFS))


@pytest.mark.skipif(not HAS_JAVA, reason="`java` is not on PATH: pycocoevalcap's PTB tokenizer needs Java")
def test_ptb_agrees_with_pycocoevalcap():
    ours = score(PREDS, REFS, tokenize="ptb", metrics="bleu1,bleu2,bleu3,bleu4,rougeL,cider")
    _assert_agree(ours, direct(PREDS, REFS, "ptb"))
    simple = score(PREDS, REFS, tokenize="simple")
    assert ours["CIDEr"] != pytest.approx(simple["CIDEr"], abs=1e-6)  # "chef's", "dog's": the tokenizers differ


def test_bleu_is_corpus_level():
    ours = score(PREDS, REFS, metrics="bleu4")
    per_sentence = direct(PREDS, REFS)["bleu4_items"]
    mean_sentence = 100 * sum(per_sentence) / len(per_sentence)
    assert abs(ours["BLEU-4"] - mean_sentence) > 1.0  # not the mean of sentence BLEU


def test_cider_depends_on_the_evaluated_set():
    whole = score(PREDS, REFS, metrics="cider")["CIDEr"]
    ids = sorted(PREDS)[:12]
    sub_p, sub_r = {k: PREDS[k] for k in ids}, {k: REFS[k] for k in ids}
    subset_cider = score(sub_p, sub_r, metrics="cider")["CIDEr"]
    # Same predictions scored over a different set: the per-item scores change, not just their average.
    _, items_whole = Cider().compute_score(*_simple_dicts(PREDS, REFS))
    _, items_sub = Cider().compute_score(*_simple_dicts(sub_p, sub_r))
    order = sorted(PREDS)
    assert any(abs(items_whole[order.index(k)] - items_sub[i]) > 1e-6 for i, k in enumerate(ids))
    assert subset_cider != pytest.approx(whole, abs=1e-3)
    assert subset_cider == pytest.approx(direct(sub_p, sub_r)["CIDEr"], abs=1e-7)


def _simple_dicts(preds, refs):
    ids = sorted(refs)
    return {k: [_simple(c) for c in refs[k]] for k in ids}, {k: [_simple(preds[k])] for k in ids}


def test_cider_refuses_meaningless_sets():
    k = next(iter(FIXTURE))
    with pytest.raises(ValueError, match=r"1 item.*IDF|IDF.*1 item"):
        score({k: PREDS[k]}, {k: REFS[k]})
    with pytest.raises(ValueError, match="at least 10"):
        score({i: PREDS[i] for i in list(PREDS)[:5]}, {i: REFS[i] for i in list(PREDS)[:5]})
    # one item repeated under 20 ids: every n-gram's IDF is 0
    with pytest.raises(ValueError, match="same references"):
        score({i: PREDS[k] for i in range(20)}, {i: REFS[k] for i in range(20)})
    # without cider, or with the check overridden, small sets are scored
    assert set(score({k: PREDS[k]}, {k: REFS[k]}, metrics="bleu4,rougeL")) == {"BLEU-4", "ROUGE-L", "n"}
    few = list(PREDS)[:5]
    out = score({i: PREDS[i] for i in few}, {i: REFS[i] for i in few}, min_cider_set=5)
    assert out["n"] == 5 and out["CIDEr"] == pytest.approx(direct({i: PREDS[i] for i in few},
                                                                   {i: REFS[i] for i in few})["CIDEr"], abs=1e-7)
    assert score({k: PREDS[k]}, {k: REFS[k]}, min_cider_set=None)["CIDEr"] == 0.0  # why it is refused


def test_ids_compared_as_strings_and_empty_predictions():
    preds = {str(k): v for k, v in PREDS.items()}
    assert score(preds, REFS) == score(PREDS, REFS)
    with pytest.raises(ValueError, match="duplicate id '1'"):
        score({1: "a", "1": "b"}, {1: ["a"]}, metrics="bleu4")
    empty = dict(PREDS)
    empty[6818] = "   "
    with pytest.warns(EmptyPredictionWarning, match="6818"):
        out = score(empty, REFS)
    _assert_agree(out, direct(empty, REFS))
    assert out["n"] == 20 and out["BLEU-4"] < score(PREDS, REFS)["BLEU-4"]


def test_input_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"in the predictions but not in the references: '999'"):
        score({**PREDS, 999: "a cat"}, REFS)
    refs = dict(REFS)
    del refs[6818], refs[37777]
    with pytest.raises(ValueError, match=r"2 id\(s\) in the references but not in the predictions: '37777', '6818'"):
        score({k: PREDS[k] for k in refs}, REFS)
    with pytest.raises(ValueError, match="no predictions"):
        score({}, REFS)
    with pytest.raises(ValueError, match="empty list"):
        score(PREDS, {**REFS, 6818: []})
    with pytest.raises(ValueError, match="reference 1 of id '6818' is empty"):
        score(PREDS, {**REFS, 6818: ["a toilet", " "]})
    with pytest.raises(ValueError, match=r"unknown metric\(s\) 'meteor'.*valid metrics: bleu1, .*rougeL, cider"):
        score(PREDS, REFS, metrics="bleu4,meteor")
    with pytest.raises(ValueError, match="unknown tokenization 'nltk'"):
        score(PREDS, REFS, tokenize="nltk")
    assert list(score(PREDS, REFS, metrics="CIDER, rougel,cider")) == ["ROUGE-L", "CIDEr", "n"]


def test_java_missing_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no java
    with pytest.raises(JavaNotFoundError, match=r"needs Java.*no `java` is on PATH.*--tokenize simple"):
        score(PREDS, REFS, tokenize="ptb")
    assert isinstance(JavaNotFoundError("x"), FileNotFoundError)  # the CLI turns it into exit 2
    assert score(PREDS, REFS)["n"] == 20  # simple does not need java


def write_fixture(tmp_path, preds=PREDS, refs=REFS):
    pred, ref = tmp_path / "pred.jsonl", tmp_path / "ref.jsonl"
    pred.write_text("".join(json.dumps({"id": k, "text": v}) + "\n" for k, v in preds.items()))
    ref.write_text("".join(json.dumps({"id": k, "refs": v}) + "\n" for k, v in refs.items()))
    return pred, ref


def test_read_files_and_score_files(tmp_path):
    pred, ref = write_fixture(tmp_path)
    assert read_predictions(pred) == {str(k): v for k, v in PREDS.items()}
    assert read_references(ref) == {str(k): v for k, v in REFS.items()}
    assert score_files(pred, ref) == score(PREDS, REFS)


@pytest.mark.parametrize(
    "which, content, pattern",
    [
        ("pred", "", r"pred\.jsonl: empty file"),
        ("ref", "\n\n", r"ref\.jsonl: empty file"),
        ("pred", '{"id": 1, "text": "a"}\n{"id": 2, "text": "b"\n', r"pred\.jsonl line 2: not valid JSON"),
        ("pred", '{"id": 1, "text": "a"}\n{"id": 2, "txt": "b"}\n', r"pred\.jsonl line 2: missing field 'text'"),
        ("ref", '{"refs": ["a"]}\n', r"ref\.jsonl line 1: missing field 'id'"),
        ("ref", '{"id": 1, "refs": []}\n', r"ref\.jsonl line 1: field 'refs' is an empty list"),
        ("ref", '{"id": 1, "refs": "a dog"}\n', r"ref\.jsonl line 1: field 'refs' must be a list"),
        ("pred", '{"id": 1, "text": null}\n', r"pred\.jsonl line 1: field 'text' must be a string"),
        ("pred", '[1, "a"]\n', r"pred\.jsonl line 1: expected a JSON object"),
        ("pred", '{"id": 1.5, "text": "a"}\n', r"pred\.jsonl line 1: field 'id' must be a string or an integer"),
        ("pred", '{"id": 1, "text": "a"}\n\n{"id": "1", "text": "b"}\n',
         r"pred\.jsonl line 3: duplicate id '1' \(first on line 1"),
    ],
)
def test_file_errors_name_file_line_and_field(tmp_path, which, content, pattern):
    pred, ref = write_fixture(tmp_path)
    (pred if which == "pred" else ref).write_text(content)
    with pytest.raises(ValueError, match=pattern):
        score_files(pred, ref)


def test_file_id_mismatch_names_ids_and_files(tmp_path):
    preds = {k: v for k, v in PREDS.items() if k != 6818}
    pred, ref = write_fixture(tmp_path, preds=preds)
    with pytest.raises(ValueError, match=r"1 id\(s\) in .*ref\.jsonl but not in .*pred\.jsonl: '6818'"):
        score_files(pred, ref)
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        score_files(tmp_path / "nope.jsonl", ref)


def test_importing_mmlink_eval_is_light():
    run_light("import mmlink.eval, mmlink.metrics", heavy=("torch", "transformers", "pycocoevalcap"))


def test_no_warning_without_empty_predictions():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        score(PREDS, REFS)
