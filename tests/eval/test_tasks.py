"""`mmlink.eval.tasks`: EvalTask validation, the record → item builders (vqa, pair_match's two round orders), YAML
tasks and the built-ins that gain a released-data reader."""

import pytest

from mmlink.eval.tasks import EVAL_TASKS, EvalTask, pair_match_items, task_from_dict, vqa_items


def _reader(root, split, cache):
    return []


@pytest.mark.parametrize("kw, needle", [
    (dict(name="a b", kind="rank"), "task name must be"),
    (dict(name="t", kind="ranked"), "kind must be one of"),
    (dict(name="t", kind="generate", metric="auc"), "other than accuracy only for rank tasks"),
    (dict(name="t", kind="rank", option_scoring="vote"), "option_scoring must be one of"),
    (dict(name="t", kind="rank", reader=_reader), "a reader needs its splits"),
    (dict(name="t", kind="rank", reader="not callable", splits=("x",)), "reader must be callable"),
])
def test_bad_task_definitions_name_the_field(kw, needle):
    with pytest.raises(ValueError, match=needle):
        EvalTask(**kw)


def _record(**meta):
    return {"id": "r1", "image": ["/i1.png", "/i2.png"], "meta": meta,
            "conversations": [{"from": "human", "value": "Image 1: <image>\nImage 2: <image>\nQ?"},
                              {"from": "gpt", "value": "ref"}]}


def test_vqa_items_carry_every_human_answer():
    (item,) = vqa_items(_record(answers=["2", "two", "2"], category="count"))
    assert item.refs == ["2", "two", "2"] and item.category == "count" and item.question == "Q?"
    with pytest.raises(ValueError, match="meta.answers"):
        vqa_items(_record(answers=[]))


def test_pair_match_asks_per_image_or_in_caption_rounds():
    texts = {"A": "a dog on grass", "B": "a dog on sand"}
    per_image = pair_match_items(_record(texts=texts, answer="1-B, 2-A"))
    assert [it.answer for it in per_image] == ["B", "A"] and "Which text goes with Image 2?" in per_image[1].turns[0][
        "value"]
    rounds = pair_match_items(_record(texts=texts, answer="1-B, 2-A", rounds="caption",
                                      round_prompts=["about image 1's caption", "about image 2's caption"]))
    assert [(it.turns[0]["value"], it.answer) for it in rounds] == [("about image 1's caption", "A"),
                                                                     ("about image 2's caption", "B")]
    assert {it.sample for it in rounds} == {"r1"} and [it.part for it in rounds] == [1, 2]
    with pytest.raises(ValueError, match="meta.rounds"):
        pair_match_items(_record(texts=texts, answer="1-B, 2-A", rounds="both"))


def test_yaml_fields_are_checked():
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['kindd'\]"):
        task_from_dict({"name": "x", "kindd": "rank"}, "my.yaml")


def test_world_tasks_that_have_a_release_keep_their_kind_and_gain_the_reader():
    for name in ("bison", "svo", "nlvr2", "eqben", "cola", "cad_qa"):
        task = EVAL_TASKS.get(name)
        assert task.world_task == name and task.reader is not None and task.splits
    assert EVAL_TASKS.get("eqben").kind == "pair_match" and EVAL_TASKS.get("cad_qa").kind == "judge"
    assert EVAL_TASKS.get("vist").world_task is None and EVAL_TASKS.get("vist").splits[0] == "test"
