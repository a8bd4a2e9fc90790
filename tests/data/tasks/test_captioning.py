"""group_caption, storytelling, change_caption: targets recomputed from the scene graphs."""

import re
from collections import Counter

import pytest
from textcheck import action_in, grammar_problems, has_any, task_samples

from mmlink.data.tasks import TASKS, WorldSample
from mmlink.data.tasks.captioning import NO_CHANGE_TEXTS
from mmlink.data.world.edit import apply_random_change
from mmlink.data.world.scene import COLORS, Character, Thing, location, rng_for, sample_identity, sample_scene
from mmlink.data.world.text import (
    ACCESSORY_NOUNS,
    ACTION_STEMS,
    BODY_WORDS,
    CONTEXT_NOUNS,
    CONTEXT_PHRASES,
    HORIZONTAL_NOUNS,
    LOCATION_PHRASES,
    plural,
)

SPLITS = ("train", "val", "test")
TASK_NAMES = ("group_caption", "storytelling", "change_caption")
N = 200


def samples(task, split, n=N):
    return task_samples(task, split, n)


def target(s: WorldSample) -> str:
    return s.conversations[1]["value"]


# ---------------------------------------------------------------------------------------------------------------
# properties shared by every task
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASK_NAMES)
def test_registered(task):
    assert task in TASKS


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("task", TASK_NAMES)
def test_format_placeholders_and_split_pool(task, split):
    for s in samples(task, split):
        assert isinstance(s, WorldSample) and s.images is None
        roles = [t["from"] for t in s.conversations]
        assert roles == ["human", "gpt"] * (len(roles) // 2) and roles
        human = s.conversations[0]["value"]
        assert human.count("<image>") == len(s.scenes)
        assert human.startswith("\n".join(f"Image {i}: <image>" for i in range(1, len(s.scenes) + 1)) + "\n")
        for t in s.conversations[1:]:
            assert "<image>" not in t["value"]
        for scene in s.scenes:
            for c in scene.characters:
                assert c.identity.split == split, (task, split, c.identity.key)
        assert not grammar_problems(target(s)), (target(s), grammar_problems(target(s)))
        assert not grammar_problems(human.split("\n")[-1])


@pytest.mark.parametrize("task", TASK_NAMES)
def test_deterministic(task):
    fn = TASKS.get(task)
    for i in range(20):
        a, b = fn(rng_for("val", 7, i, task), "val"), fn(rng_for("val", 7, i, task), "val")
        assert a.scenes == b.scenes and a.conversations == b.conversations and a.meta == b.meta
    outs = {target(fn(rng_for("val", 7, i, task), "val")) for i in range(20)}
    assert len(outs) > 10


# ---------------------------------------------------------------------------------------------------------------
# group_caption
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", SPLITS)
def test_group_caption_concept_is_shared_and_named(split):
    types = Counter()
    for s in samples("group_caption", split):
        text, meta = target(s), s.meta
        ctype, concept = meta["concept_type"], meta["concept"]
        types[ctype] += 1
        assert 3 <= len(s.scenes) <= 5
        assert len(re.findall(r"[.!?](\s|$)", text)) == 1, text  # one sentence
        low = text.lower()
        if ctype == "character":
            for scene in s.scenes:
                assert concept in [c.identity.key for c in scene.characters]
            # the concept is the only character shared by all images
            shared = set.intersection(*({c.identity.key for c in sc.characters} for sc in s.scenes))
            assert shared == {concept}
            body, color, pattern, pcolor, acc = concept.split("/")
            assert re.search(rf"\b{color}\b", low) and has_any(low, BODY_WORDS[body])
            if pattern != "plain":
                assert re.search(rf"\b{pcolor}\b", low)
            if acc != "none":
                assert ACCESSORY_NOUNS[acc] in low
            assert len({sc.context for sc in s.scenes}) == len(s.scenes)  # "in different places/settings"
            mains = [next(c for c in sc.characters if c.identity.key == concept) for sc in s.scenes]
            actions = {m.pose.action for m in mains}
            for a in ACTION_STEMS:
                if action_in(low, a):  # an action is named only when every image shows it
                    assert actions == {a}, (text, actions)
            if "different things" in low:
                assert len(actions) > 1
        elif ctype == "context":
            assert all(sc.context == concept for sc in s.scenes)
            assert has_any(low, CONTEXT_PHRASES[concept])
            keys = [c.identity.key for sc in s.scenes for c in sc.characters]
            assert len(keys) == len(set(keys))  # "different characters"
        elif ctype == "thing":
            parts = concept.split()
            kind, color = parts[-1], parts[0] if len(parts) == 2 else None
            for sc in s.scenes:
                assert any(t.kind == kind and (color is None or t.color == color) for t in sc.things)
            assert kind in low or plural(kind) in low
            if color:
                assert re.search(rf"\b{color}\b", low)
            else:
                assert not any(re.search(rf"\b{c}\b", low) for c in COLORS)
            if "different places" in low:
                assert len({sc.context for sc in s.scenes}) == len(s.scenes)
        elif ctype == "action":
            for sc in s.scenes:
                assert len(sc.characters) == 1 and sc.characters[0].pose.action == concept
            assert action_in(low, concept)
            keys = [sc.characters[0].identity.key for sc in s.scenes]
            assert len(set(keys)) == len(keys)
        else:
            raise AssertionError(ctype)
    assert set(types) == {"character", "context", "thing", "action"}
    assert min(types.values()) > N / 10


def test_group_caption_instructions_vary():
    instr = {s.conversations[0]["value"].split("\n")[-1] for s in samples("group_caption", "train")}
    assert len(instr) >= 4 and "What do these images have in common?" in instr


# ---------------------------------------------------------------------------------------------------------------
# storytelling
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", SPLITS)
def test_story_follows_images_in_order(split):
    n_two = 0
    for s in samples("storytelling", split):
        story, meta = target(s), s.meta
        names = meta["characters"]
        assert 1 <= len(names) <= 2 and len(set(names)) == len(names)
        n_two += len(names) == 2
        instruction = s.conversations[0]["value"].split("\n")[-1]
        assert all(nm in instruction for nm in names)
        assert 3 <= len(s.scenes) <= 5 and len(meta["per_image"]) == len(s.scenes)
        assert story == " ".join(p["text"] for p in meta["per_image"])
        for nm in names:
            assert nm in story
        # characters of the scenes are exactly the named ones
        by_name = {}
        for scene in s.scenes:
            for c in scene.characters:
                by_name.setdefault(c.identity.name, set()).add(c.identity.key)
        assert set(by_name) <= set(names) and all(len(v) == 1 for v in by_name.values())
        assert set(by_name) == set(names)
        # each image: one or two sentences with its context, its characters' names and actions, its things
        pos = -1
        last_action = {}
        for scene, part in zip(s.scenes, meta["per_image"]):
            text = part["text"]
            n_sent = len(re.findall(r"[.!?](\s|$)", text))
            assert 1 <= n_sent <= 2, text
            assert has_any(text, CONTEXT_PHRASES[scene.context]), (scene.context, text)
            for c in scene.characters:
                nm = c.identity.name
                assert nm in text
                assert action_in(text, c.pose.action), (c.pose.action, text)
                # varied actions: a character never repeats its previous action
                assert last_action.get(nm) != c.pose.action
                last_action[nm] = c.pose.action
            for other in set(names) - {c.identity.name for c in scene.characters}:
                assert other not in text
            for t in scene.things:
                assert t.kind in text or plural(t.kind) in text
                assert t.color in text
            new_pos = story.index(text)
            assert new_pos > pos
            pos = new_pos
        # first mention of each character describes it (its colour appears in the first image's text)
        first = meta["per_image"][0]["text"]
        for scene_char in s.scenes[0].characters:
            assert re.search(rf"\b{scene_char.identity.color}\b", first)
        assert len({sc.context for sc in s.scenes}) == len(s.scenes)
    assert 0.25 * N < n_two < 0.75 * N


# ---------------------------------------------------------------------------------------------------------------
# change_caption: the changes are exactly the differences between the two graphs (recomputed here)
# ---------------------------------------------------------------------------------------------------------------


def graph_diff(a, b) -> set[tuple]:
    """Differences between two scene graphs, matching objects by their (y, size), which edits never touch."""
    out = set()
    if a.context != b.context:
        out.add(("context", "scene", a.context, b.context))
    if a.lighting != b.lighting:
        out.add(("lighting", "scene", "darker" if b.lighting < a.lighting else "brighter"))
    key = lambda o: (round(o.y, 9), round(o.size, 9))  # noqa: E731
    ma, mb = {key(o): o for o in a.objects}, {key(o): o for o in b.objects}
    assert len(ma) == len(a.objects) and len(mb) == len(b.objects)
    for k, o in ma.items():
        if k not in mb:
            out.add(("remove", o.kind, f"{o.color} {o.kind}", None))
            continue
        p = mb[k]
        if isinstance(o, Thing):
            assert isinstance(p, Thing) and p.kind == o.kind and (p.x, p.y) == (o.x, o.y)
            if o.color != p.color:
                out.add(("color", o.kind, o.color, p.color))
        else:
            assert isinstance(p, Character)
            if o.pose.action != p.pose.action:
                out.add(("action", o.identity.key, o.pose.action, p.pose.action))
            if location(o)[0] != location(p)[0]:
                out.add(("move", o.identity.key, location(o)[0], location(p)[0]))
            else:
                assert o.x == p.x
            if o.identity != p.identity:
                oi, pi = o.identity, p.identity
                look = lambda i: (i.body, i.color, i.pattern, i.pattern_color)  # noqa: E731
                assert look(oi) == look(pi)
                out.add(("accessory", oi.key, oi.accessory, pi.accessory))
    for k, p in mb.items():
        if k not in ma:
            out.add(("add", p.kind, None, f"{p.color} {p.kind}"))
    return out


def meta_diff(changes) -> set[tuple]:
    out = set()
    for c in changes:
        if c["type"] == "lighting":
            out.add(("lighting", "scene", "darker" if c["after"] < c["before"] else "brighter"))
        else:
            out.add((c["type"], c["object"], c["before"], c["after"]))
    return out


def _text_states(change, text) -> bool:
    low = text.lower()
    t, before, after = change["type"], change["before"], change["after"]
    if t == "color":
        return change["object"] in low and re.search(rf"\b{after}\b", low) is not None
    if t == "add":
        color, kind = after.split()
        return f"{color} {kind}" in low and has_any(low, ("appeared", "now", "added"))
    if t == "remove":
        return change["object"] in low and has_any(low, ("disappeared", "gone", "removed"))
    if t == "action":
        return action_in(low, before) and action_in(low, after)
    if t == "move":
        return HORIZONTAL_NOUNS[after] in low or any(p in low for v in ("top", "middle", "bottom")
                                                     for p in LOCATION_PHRASES[(after, v)])  # fmt: skip
    if t == "accessory":
        nouns = [ACCESSORY_NOUNS[x] for x in (before, after) if x != "none"]
        return all(n in low for n in nouns)
    if t == "lighting":
        return has_any(low, ("darker", "dimmed")) if after < before else has_any(low, ("brighter",))
    if t == "context":
        return has_any(low, CONTEXT_PHRASES[after] + CONTEXT_NOUNS[after])
    raise AssertionError(t)


@pytest.mark.parametrize("split", SPLITS)
def test_change_caption_states_exactly_the_changes(split):
    n_none, types = 0, Counter()
    for s in samples("change_caption", split, 300):
        a, b = s.scenes
        text, changes = target(s), s.meta["changes"]
        assert graph_diff(a, b) == meta_diff(changes), (graph_diff(a, b), changes)
        assert a.seed == b.seed
        if not changes:
            n_none += 1
            assert a == b and text in NO_CHANGE_TEXTS
            continue
        assert 1 <= len(changes) <= 2
        parts = s.meta["answer_parts"]
        assert len(parts) == len(changes) and text == " ".join(parts)
        for c, part in zip(changes, parts):
            types[c["type"]] += 1
            assert _text_states(c, part), (c, part)
            # the words about one change never leak into the other's sentence
        for c in changes:
            if c["type"] in ("color", "remove"):  # the object is named by its colour before the change
                color = c["before"] if c["type"] == "color" else c["before"].split()[0]
                assert re.search(rf"\b{color}\b", text.lower())
    assert 0.02 * 300 < n_none < 0.16 * 300
    assert set(types) == {"color", "add", "remove", "action", "move", "accessory", "lighting", "context"}


def test_apply_random_change_keeps_identities_in_split():
    for split in SPLITS:
        for i in range(100):
            rng = rng_for(split, 3, i, "changes")
            ids = [sample_identity(rng, split)]
            scene = sample_scene(rng, ids, n_things=2)
            after, changes, texts = apply_random_change(rng, scene, split, 2, ("accessory", "action", "color"))
            assert len(changes) == len(texts) == 2
            assert all(c.identity.split == split for c in after.characters)
            assert graph_diff(scene, after) == meta_diff(changes)
