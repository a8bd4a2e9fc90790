"""Scene graphs as JSON (`scene_to_dict` / `scene_from_dict`): what world records carry in ``meta.scenes``."""

import json

import pytest

from mmlink.data.tasks import TASKS
from mmlink.data.world.scene import (
    Character,
    Identity,
    Pose,
    Scene,
    Thing,
    rng_for,
    scene_from_dict,
    scene_to_dict,
)


def test_round_trip_through_json_is_exact_for_every_task_scene():
    seen = 0
    for task in ("caption", "group_caption", "storytelling", "change_caption", "bison", "nlvr2", "cad"):
        for i in range(8):
            for scene in TASKS.get(task)(rng_for("val", 3, i, task), "val").scenes:
                back = scene_from_dict(json.loads(json.dumps(scene_to_dict(scene))))
                assert back == scene and hash(back) == hash(scene)
                seen += 1
    assert seen > 50


def test_the_dict_names_every_fact_and_the_name():
    ident = Identity("tall", "blue", "striped", "white", "hat")
    scene = Scene("night", (Character(ident, Pose("waving", 3.5, "left"), 0.25, 0.6, 0.3),
                            Thing("lamp", "yellow", 0.8, 0.7, 0.4)), lighting=0.55, seed=7)
    d = scene_to_dict(scene)
    assert d == {
        "context": "night", "lighting": 0.55, "seed": 7,
        "objects": [
            {"kind": "character", "x": 0.25, "y": 0.6, "size": 0.3,
             "identity": {"body": "tall", "color": "blue", "pattern": "striped", "pattern_color": "white",
                          "accessory": "hat", "name": ident.name},
             "pose": {"action": "waving", "rotation": 3.5, "facing": "left"}},
            {"kind": "lamp", "color": "yellow", "x": 0.8, "y": 0.7, "size": 0.4},
        ],
    }  # fmt: skip
    assert scene_from_dict(d) == scene


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda d: d.pop("context"), "'context' is missing"),
        (lambda d: d.update(context="moon"), "'context': expected one of"),
        (lambda d: d["objects"][0]["identity"].update(body="hexagon"), "'objects[0].identity.body'"),
        (lambda d: d["objects"][0]["identity"].update(name="Nobody"), "'objects[0].identity.name'"),
        (lambda d: d["objects"][0]["pose"].pop("action"), "'objects[0].pose.action' is missing"),
        (lambda d: d["objects"][1].update(x="left"), "'objects[1].x': expected"),
        (lambda d: d["objects"][1].update(kind="unicorn"), "'objects[1].kind'"),
        (lambda d: d.update(seed=True), "'seed': expected int"),
    ],
)
def test_errors_name_the_field(edit, field):
    ident = Identity("round", "red", "plain", "none", "none")
    d = scene_to_dict(Scene("park", (Character(ident, Pose(), 0.5, 0.6, 0.3), Thing("ball", "red", 0.2, 0.7, 0.1))))
    edit(d)
    with pytest.raises(ValueError, match=field.replace("[", "\\[").replace("]", "\\]")):
        scene_from_dict(d)
