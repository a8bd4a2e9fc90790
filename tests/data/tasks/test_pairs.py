"""mmlink_pair, cad, cad_qa: answers and CaD axes recomputed from the scene graphs."""

import re
from collections import Counter

import pytest
from textcheck import action_in, grammar_problems, has_any, task_samples

from mmlink.data.tasks import TASKS, WorldSample
from mmlink.data.tasks.pairs import AXES, caption_signature
from mmlink.data.world.scene import COLORS, Character, location, relative_position, rng_for
from mmlink.data.world.text import (
    ACCESSORY_NOUNS,
    BODY_WORDS,
    CONTEXT_PHRASES,
    LOCATION_PHRASES,
    NUMBER_WORDS,
)

SPLITS = ("train", "val", "test")
TASK_NAMES = ("mmlink_pair", "cad", "cad_qa")
N = 200


def samples(task, split, n=N):
    return task_samples(task, split, n)


# ---------------------------------------------------------------------------------------------------------------
# shared properties
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("task", TASK_NAMES)
def test_format_placeholders_and_split_pool(task, split):
    for s in samples(task, split):
        assert isinstance(s, WorldSample) and len(s.scenes) == 2
        roles = [t["from"] for t in s.conversations]
        assert roles == ["human", "gpt"] * (len(roles) // 2)
        assert s.conversations[0]["value"].startswith("Image 1: <image>\nImage 2: <image>\n")
        assert s.conversations[0]["value"].count("<image>") == 2
        assert all("<image>" not in t["value"] for t in s.conversations[1:])
        for scene in s.scenes:
            assert all(c.identity.split == split for c in scene.characters)
        for t in s.conversations:
            assert not grammar_problems(t["value"]), (t["value"], grammar_problems(t["value"]))


@pytest.mark.parametrize("task", TASK_NAMES)
def test_deterministic(task):
    fn = TASKS.get(task)
    for i in range(20):
        a, b = fn(rng_for("test", 4, i, task), "test"), fn(rng_for("test", 4, i, task), "test")
        assert a.scenes == b.scenes and a.conversations == b.conversations and a.meta == b.meta


# ---------------------------------------------------------------------------------------------------------------
# mmlink_pair
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", SPLITS)
def test_mmlink_pair_shared_character(split):
    qtypes = Counter()
    for s in samples("mmlink_pair", split):
        s1, s2 = s.scenes
        k1 = {c.identity.key for c in s1.characters}
        k2 = {c.identity.key for c in s2.characters}
        assert k1 & k2 == {s.meta["main"]}  # exactly one shared character: the main one
        assert 2 <= len(s1.characters) <= 3 and 2 <= len(s2.characters) <= 3  # one or two distractors each
        assert s1.context != s2.context
        mains = [next(c for c in sc.characters if c.identity.key == s.meta["main"]) for sc in s.scenes]
        assert s.meta["locations"] == [list(location(m)) for m in mains]
        assert s.meta["actions"] == [m.pose.action for m in mains]
        answer = s.conversations[1]["value"]
        low = answer.lower()
        ident = mains[0].identity
        qtypes[s.meta["qtype"]] += 1
        assert re.search(rf"\b{ident.color}\b", low) and has_any(low, BODY_WORDS[ident.body])
        if ident.accessory != "none":
            assert ACCESSORY_NOUNS[ident.accessory] in low
        if s.meta["qtype"] in ("describe", "where"):
            # the main character's place in each image, in image order
            i1 = min(low.index(p) for p in LOCATION_PHRASES[location(mains[0])] if p in low)
            i2 = max(low.rindex(p) for p in LOCATION_PHRASES[location(mains[1])] if p in low)
            assert i1 < i2 or (location(mains[0]) == location(mains[1]))
        if s.meta["qtype"] in ("describe", "action"):
            assert action_in(low, mains[0].pose.action) and action_in(low, mains[1].pose.action)
        if s.meta["qtype"] == "context":
            assert has_any(low, CONTEXT_PHRASES[s1.context]) and has_any(low, CONTEXT_PHRASES[s2.context])
    assert set(qtypes) == {"describe", "where", "action", "context"}


# ---------------------------------------------------------------------------------------------------------------
# cad: the axes listed are exactly those with content (recomputed here from the documented rules)
# ---------------------------------------------------------------------------------------------------------------


def kinds(scene):
    return Counter("character" if isinstance(o, Character) else o.kind for o in scene.objects)


def expected_axes(s1, s2):
    com, dif = set(), set()
    n1, n2 = kinds(s1), kinds(s2)
    shared = set(n1) & set(n2)
    if shared:
        com |= {"object types"}
    if set(n1) != set(n2):
        dif |= {"object types"}
    # paired entities
    pairs = []
    keys2 = {c.identity.key: c for c in s2.characters}
    same = [(c, keys2[c.identity.key]) for c in s1.characters if c.identity.key in keys2]
    pairs += [("same", a, b) for a, b in same]
    left1 = [c for c in s1.characters if c.identity.key not in keys2]
    left2 = [c for c in s2.characters if c.identity.key not in {x.identity.key for x in s1.characters}]
    if len(left1) == 1 == len(left2):
        pairs.append(("single", left1[0], left2[0]))
    for k in n1:
        if k != "character" and n1[k] == 1 == n2[k]:
            t1 = next(t for t in s1.things if t.kind == k)
            t2 = next(t for t in s2.things if t.kind == k)
            pairs.append(("thing", t1, t2))
    # attributes
    for kind, a, b in pairs:
        if kind == "same":
            com.add("attributes")
        elif kind == "thing":
            (com if a.color == b.color else dif).add("attributes")
        else:
            ia, ib = a.identity, b.identity
            same_pattern = ia.pattern != "plain" and (ia.pattern, ia.pattern_color) == (ib.pattern, ib.pattern_color)
            same_acc = ia.accessory != "none" and ia.accessory == ib.accessory
            if ia.color == ib.color or ia.body == ib.body or same_pattern or same_acc:
                com.add("attributes")
            dif.add("attributes")  # different identities differ in at least one trait
    for k in shared:  # kinds not once in each image: colour multisets
        if k != "character" and not (n1[k] == 1 == n2[k]):
            c1 = sorted(t.color for t in s1.things if t.kind == k)
            c2 = sorted(t.color for t in s2.things if t.kind == k)
            (com if c1 == c2 else dif).add("attributes")
    # counts
    for k in shared:
        (com if n1[k] == n2[k] else dif).add("counts")
    # actions
    for kind, a, b in pairs:
        if kind in ("same", "single"):
            (com if a.pose.action == b.pose.action else dif).add("actions")
    used1 = {id(a) for kind, a, _ in pairs if kind != "thing"}
    used2 = {id(b) for kind, _, b in pairs if kind != "thing"}
    u1 = {c.pose.action for c in s1.characters if id(c) not in used1}
    u2 = {c.pose.action for c in s2.characters if id(c) not in used2}
    if u1 and u2:
        if u1 & u2:
            com.add("actions")
        if u1 != u2:
            dif.add("actions")
    # locations: the setting always, then each paired entity's side
    (com if s1.context == s2.context else dif).add("locations")
    for _, a, b in pairs:
        (com if location(a)[0] == location(b)[0] else dif).add("locations")
    # relative positions between paired entities
    for i in range(len(pairs)):
        for j in range(i + 1, len(pairs)):
            r1 = relative_position(pairs[i][1], pairs[j][1])
            r2 = relative_position(pairs[i][2], pairs[j][2])
            (com if r1 == r2 else dif).add("relative positions")
    order = list(AXES)
    return sorted(com, key=order.index), sorted(dif, key=order.index)


def parse_summary(text):
    sections, current = {"Commonalities": [], "Differences": []}, None
    for line in text.split("\n"):
        m = re.match(r"^(Commonalities|Differences):( none\.)?$", line)
        if m:
            current = m.group(1)
            continue
        m = re.match(r"^- ([A-Z][a-z ]+): (.+)$", line)
        assert m and current, line
        sections[current].append(m.group(1).lower())
    return sections


@pytest.mark.parametrize("split", SPLITS)
def test_cad_axes_are_exactly_those_with_content(split):
    sims = Counter()
    for s in samples("cad", split, 300):
        s1, s2 = s.scenes
        com, dif = expected_axes(s1, s2)
        assert s.meta["axes"] == {"commonalities": com, "differences": dif}, (s.meta["axes"], com, dif)
        summary = s.conversations[1]["value"]
        parsed = parse_summary(summary)
        assert parsed["Commonalities"] == com and parsed["Differences"] == dif
        assert summary.startswith("Commonalities:") and "\nDifferences:" in summary
        assert dif, "the two images of a pair always differ"
        # facts named in the summary are true: the settings
        if s1.context == s2.context:
            assert has_any(summary, CONTEXT_PHRASES[s1.context])
        else:
            assert has_any(summary, CONTEXT_PHRASES[s1.context]) and has_any(summary, CONTEXT_PHRASES[s2.context])
        # similarity levels
        sim = s.meta["similarity"]
        sims[sim] += 1
        k1 = {c.identity.key for c in s1.characters}
        k2 = {c.identity.key for c in s2.characters}
        if sim in ("high", "medium"):
            assert s1.context == s2.context
        if sim == "high":
            assert s1.seed == s2.seed
        if sim == "low":
            assert s1.context != s2.context and not (k1 & k2)
    assert set(sims) == {"high", "medium", "low"}


@pytest.mark.parametrize("split", SPLITS)
def test_cad_retrieval_points_to_the_captioned_image(split):
    answers = Counter()
    for s in samples("cad", split, 300):
        j = s.meta["retrieval_answer"]
        answers[j] += 1
        cap = s.meta["retrieval_caption"]
        assert s.conversations[2]["from"] == "human" and cap in s.conversations[2]["value"]
        assert s.conversations[3]["value"] == f"Image {j}"
        scene, other = s.scenes[j - 1], s.scenes[2 - j]
        assert has_any(cap, CONTEXT_PHRASES[scene.context])
        low = cap.lower()
        for o in scene.objects:
            color = o.identity.color if isinstance(o, Character) else o.color
            assert re.search(rf"\b{color}\b", low)
            if not isinstance(o, Character):
                assert f"{o.color} {o.kind}" in low
        for c in scene.characters:
            assert action_in(low, c.pose.action)
        assert caption_signature(scene) != caption_signature(other)
    assert abs(answers[1] - answers[2]) < 0.16 * 300


def test_cad_two_turns_and_instructions():
    for s in samples("cad", "train")[:50]:
        assert len(s.conversations) == 4
        instruction = s.conversations[0]["value"].lower()
        assert any(w in instruction for w in ("commonalities", "similarities", "in common"))
        assert any(w in instruction for w in ("differences", "differ"))


# ---------------------------------------------------------------------------------------------------------------
# cad_qa
# ---------------------------------------------------------------------------------------------------------------


def count_word(n):
    return NUMBER_WORDS[n]


@pytest.mark.parametrize("split", SPLITS)
def test_cad_qa_answers_are_right(split):
    about = Counter()
    for s in samples("cad_qa", split, 300):
        s1, s2 = s.scenes
        meta = s.meta
        q, ans = s.conversations[0]["value"].split("\n")[-1], s.conversations[1]["value"]
        assert meta["answer"] == ans and meta["question"] == q
        assert 1 <= len(re.findall(r"[.!?](\s|$)", ans)) <= 4 and len(ans.split()) <= 60
        about[meta["about"]] += 1
        # high overlap: shared kinds, and mostly the same setting
        assert set(kinds(s1)) & set(kinds(s2))
        assert s1.context == s2.context
        f, qt = meta["facts"], meta["qtype"]
        low = ans.lower()
        if meta["about"] != "both":
            k = 1 if meta["about"] == "image1" else 2
            assert q.startswith(f"In the {'first' if k == 1 else 'second'} image")
            scene = s.scenes[k - 1]
            if qt == "action_one":
                c = scene.objects[f["object_index"]]
                assert isinstance(c, Character) and f["action"] == c.pose.action and action_in(low, c.pose.action)
                assert has_any(low, LOCATION_PHRASES[location(c)])
            elif qt == "color_one":
                t = scene.objects[f["object_index"]]
                assert sum(o.kind == t.kind for o in scene.things) == 1 and t.kind in q
                assert re.search(rf"\b{t.color}\b", low)
                assert not any(re.search(rf"\b{c}\b", low) for c in COLORS if c != t.color)
            elif qt == "count_one":
                assert f["count"] == kinds(scene)[f["kind"]]
                assert re.search(rf"\b{count_word(f['count'])}\b", low)
            elif qt == "where_one":
                o = scene.objects[f["object_index"]]
                assert has_any(low, LOCATION_PHRASES[location(o)])
            else:
                raise AssertionError(qt)
            continue
        if qt == "count":
            n1, n2 = kinds(s1)[f["kind"]], kinds(s2)[f["kind"]]
            assert f["counts"] == [n1, n2]
            assert re.search(rf"\b{count_word(n1)}\b", low) and re.search(rf"\b{count_word(n2)}\b", low)
        elif qt == "thing_color":
            t1 = [t for t in s1.things if t.kind == f["kind"]]
            t2 = [t for t in s2.things if t.kind == f["kind"]]
            assert len(t1) == len(t2) == 1 and f["colors"] == [t1[0].color, t2[0].color]
            assert re.search(rf"\b{t1[0].color}\b", low) and re.search(rf"\b{t2[0].color}\b", low)
            if q.startswith("Is"):
                assert low.startswith("yes") == (t1[0].color == t2[0].color)
        elif qt == "char_action":
            a = next(c for c in s1.characters if c.identity.key == f["identities"][0])
            b = next(c for c in s2.characters if c.identity.key == f["identities"][1])
            assert f["actions"] == [a.pose.action, b.pose.action]
            assert action_in(low, a.pose.action) and action_in(low, b.pose.action)
            assert ("both" in low) == (a.pose.action == b.pose.action)
        elif qt == "context":
            assert low.startswith("yes") == (s1.context == s2.context)
            assert has_any(low, CONTEXT_PHRASES[s1.context])
        elif qt in ("common", "differ"):
            com, dif = expected_axes(s1, s2)
            assert f["axes"] and set(f["axes"]) <= set(com if qt == "common" else dif)
        else:
            raise AssertionError(qt)
    n = sum(about.values())
    assert 0.22 < (about["image1"] + about["image2"]) / n < 0.45  # about a third about one image
    assert about["image1"] > 0.1 * n and about["image2"] > 0.1 * n
