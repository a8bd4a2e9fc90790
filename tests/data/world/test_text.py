"""Text from scene graphs: every phrase must be true of the graph, and grammatical."""

import re

import numpy as np
import pytest
from textcheck import grammar_problems

from mmlink.data.world.scene import (
    ACCESSORIES,
    COLORS,
    THINGS,
    Character,
    Identity,
    Pose,
    Scene,
    Thing,
    all_identities,
    location,
    relative_position,
    rng_for,
    sample_identity,
    sample_scene,
)
from mmlink.data.world.text import (
    ACCESSORY_NOUNS,
    ACTION_STEMS,
    BODY_ADJECTIVE,
    BODY_WORDS,
    CONTEXT_PHRASES,
    LOCATION_PHRASES,
    PATTERN_STEMS,
    RELATION_PHRASES,
    article,
    caption,
    caption_with_facts,
    count_phrase,
    describe_identity,
    describe_object,
    fix_articles,
    join_list,
    plural,
    refer,
    sentence,
    things_phrase,
    with_article,
)

COLOR_RE = re.compile(r"\b(" + "|".join(COLORS) + r")\b")



def random_scenes(n, split="train", seed=0):
    out = []
    for i in range(n):
        rng = rng_for(split, seed, i, "text-test")
        ids = []
        for _ in range(int(rng.integers(0, 4))):
            ids.append(sample_identity(rng, split, exclude={x.key for x in ids}))
        out.append(sample_scene(rng, ids, n_things=int(rng.integers(0, 4))))
    return out


# ---------------------------------------------------------------------------------------------------------------
# grammar helpers
# ---------------------------------------------------------------------------------------------------------------


def test_article():
    assert article("orange") == "an" and article("orange ball") == "an"
    assert article("red") == "a" and article("umbrella") == "an" and article("unicorn") == "a"
    assert article("one") == "a" and article("hour") == "an"
    assert with_article("orange box") == "an orange box"
    assert fix_articles("a orange ball and an red box. A orange tree") == "an orange ball and a red box. An orange tree"
    with pytest.raises(ValueError):
        article(" ")


def test_plural_and_counts():
    assert [plural(k) for k in THINGS] == ["trees", "houses", "cars", "balls", "flowers", "rocks", "lamps", "boxes"]
    assert plural("red box") == "red boxes" and plural("character") == "characters" and plural("glasses") == "glasses"
    assert plural("fly") == "flies" and plural("toy") == "toys"
    assert count_phrase(0, "tree") == "no trees"
    assert count_phrase(1, "tree") == "one tree"
    assert count_phrase(1, "orange ball", use_article=True) == "an orange ball"
    assert count_phrase(2, "tree") == "two trees"
    assert count_phrase(3, "box") == "three boxes"
    assert count_phrase(25, "box") == "25 boxes"
    with pytest.raises(ValueError):
        count_phrase(-1, "tree")


def test_join_list_and_sentence():
    assert join_list([]) == "" and join_list(["a"]) == "a" and join_list(["a", "b"]) == "a and b"
    assert join_list(["a", "b", "c"]) == "a, b and c"
    assert sentence("  a  red ball , here ") == "A red ball, here."
    assert sentence("is it?") == "Is it?"


def test_things_phrase_groups_identical_things():
    rng = np.random.default_rng(0)
    things = [Thing("rock", "gray", 0.1, 0.6, 0.1), Thing("rock", "gray", 0.5, 0.6, 0.1),
              Thing("ball", "orange", 0.8, 0.6, 0.1)]  # fmt: skip
    assert things_phrase(things, rng) == "two gray rocks and an orange ball"


# ---------------------------------------------------------------------------------------------------------------
# descriptions
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_describe_identity_names_every_trait_and_nothing_else(split):
    idents = all_identities()
    rng = np.random.default_rng(1)
    for k in rng.permutation(len(idents))[:400]:
        ident = idents[int(k)]
        d = describe_identity(ident, rng)
        assert d.startswith(("a ", "an ")), d
        assert not grammar_problems(sentence(d)), (d, grammar_problems(sentence(d)))
        # colours: exactly the body colour and (when patterned) the pattern colour
        expected = {ident.color} | ({ident.pattern_color} if ident.pattern != "plain" else set())
        assert set(COLOR_RE.findall(d)) == expected, d
        # body shape
        assert any(w in d for w in BODY_WORDS[ident.body]), d
        for body, words in BODY_WORDS.items():
            if body != ident.body:
                assert not any(re.search(rf"\b{re.escape(w)}\b", d) for w in words), d
        # pattern
        if ident.pattern == "plain":
            assert not any(s in d for stems in PATTERN_STEMS.values() for s in stems), d
        else:
            assert any(s in d for s in PATTERN_STEMS[ident.pattern]), d
        # accessory: its noun, and no other accessory noun
        for acc in ACCESSORIES[1:]:
            present = re.search(rf"\b{ACCESSORY_NOUNS[acc]}\b", d) is not None
            assert present == (acc == ident.accessory), (acc, d)


def test_describe_identity_varies_wording_but_is_deterministic():
    ident = Identity("tall", "blue", "striped", "white", "hat")
    texts = {describe_identity(ident, np.random.default_rng(s)) for s in range(40)}
    assert len(texts) > 5
    assert describe_identity(ident, np.random.default_rng(3)) == describe_identity(ident, np.random.default_rng(3))
    example = "a tall blue character with white stripes wearing a hat"
    assert any(t == example for t in texts) or all("blue" in t and "white" in t and "hat" in t for t in texts)


def test_describe_object():
    rng = np.random.default_rng(0)
    ident = Identity("round", "orange", "plain", "none", "none")
    for action in ACTION_STEMS:
        c = Character(ident, Pose(action=action), 0.5, 0.6, 0.3)
        for _ in range(10):
            d = describe_object(c, rng)
            assert d.startswith("a ") and "orange" in d and not grammar_problems(sentence(d))
            assert any(s in d for s in ACTION_STEMS[action]), d
            assert all(not any(s in d for s in st) for a, st in ACTION_STEMS.items() if a != action), d
    t = Thing("box", "orange", 0.5, 0.6, 0.1)
    assert describe_object(t, rng) == "an orange box"


# ---------------------------------------------------------------------------------------------------------------
# referring expressions
# ---------------------------------------------------------------------------------------------------------------

_SIDE_WORDS = {"on the left": "left", "in the centre": "centre", "on the right": "right"}


def _matches(expr: str, obj) -> bool:
    """Whether every word of a referring expression is true of ``obj`` (independent of text.refer)."""
    e = expr.removeprefix("the ")
    for phrase, side in _SIDE_WORDS.items():
        if e.endswith(" " + phrase):
            if location(obj)[0] != side:
                return False
            e = e[: -len(phrase) - 1]
    words = e.split()
    if "character" in words:
        if not isinstance(obj, Character):
            return False
        ident = obj.identity
        for w in words:
            if w in COLORS and ident.color != w:
                return False
            if w in BODY_ADJECTIVE.values() and BODY_ADJECTIVE[ident.body] != w:
                return False
            if w in ACCESSORY_NOUNS.values() and ACCESSORY_NOUNS.get(ident.accessory) != w:
                return False
        return True
    if not isinstance(obj, Thing):
        return False
    return obj.kind == words[-1] and all(w == obj.color for w in words[:-1])


def test_refer_is_true_and_unique():
    n_refs = n_none = 0
    for scene in random_scenes(300):
        for obj in scene.objects:
            r = refer(obj, scene)
            if r is None:
                n_none += 1
                twins = [o for o in scene.objects if o is not obj and _matches(
                    f"the {obj.kind} {dict((v, k) for k, v in _SIDE_WORDS.items())[location(obj)[0]]}", o)
                    and isinstance(obj, Thing) and o.color == obj.color]  # fmt: skip
                assert twins, "refer gave up on an object that has no look-alike"
                continue
            n_refs += 1
            assert r.startswith("the ")
            assert _matches(r, obj), (r, obj)
            others = [o for o in scene.objects if o is not obj]
            assert not any(_matches(r, o) for o in others), (r, scene)
    assert n_refs > 500 and n_none < n_refs / 20


# ---------------------------------------------------------------------------------------------------------------
# captions
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_caption_facts_are_true_and_stated(split):
    n_relations = n_multi = 0
    for i, scene in enumerate(random_scenes(250, split)):
        rng = np.random.default_rng(i)
        text, facts = caption_with_facts(scene, rng)
        low = text.lower()
        assert not grammar_problems(text), (text, grammar_problems(text))
        n_sent = len(re.findall(r"[.!?](\s|$)", text))
        assert 1 <= n_sent <= 3, text
        ctx = [f for f in facts if f["fact"] == "context"]
        assert len(ctx) == 1 and ctx[0]["context"] == scene.context
        assert ctx[0]["phrase"] in CONTEXT_PHRASES[scene.context] and ctx[0]["phrase"] in low
        obj_facts = [f for f in facts if f["fact"] == "object"]
        assert [f["index"] for f in obj_facts] == list(range(len(scene.objects)))
        for f in obj_facts:
            obj = scene.objects[f["index"]]
            p = f["phrase"].lower()
            assert p in low, (p, text)
            assert f["location"] == location(obj)
            assert any(lp in p for lp in LOCATION_PHRASES[location(obj)]), (p, location(obj))
            if isinstance(obj, Character):
                ident = obj.identity
                assert ident.color in COLOR_RE.findall(p)
                assert any(s in p for s in ACTION_STEMS[obj.pose.action]), p
                if ident.accessory != "none":
                    assert ACCESSORY_NOUNS[ident.accessory] in p
            else:
                assert f"{obj.color} {obj.kind}" in p, p
        rels = [f for f in facts if f["fact"] == "relation"]
        assert len(rels) <= 1
        if len(scene.objects) >= 2:
            n_multi += 1
        for f in rels:
            n_relations += 1
            a, b = scene.objects[f["a"]], scene.objects[f["b"]]
            assert f["relation"] == relative_position(a, b)
            assert f["phrase"].lower() in low
            assert any(rp in f["phrase"] for rp in RELATION_PHRASES[f["relation"]]), f
            ra, rb = refer(a, scene), refer(b, scene)
            assert f["phrase"].lower().startswith(ra) and f["phrase"].endswith(rb)
    assert n_relations >= 0.9 * n_multi  # a relative position whenever two objects can be named


def test_caption_mentions_a_relative_position_when_objects_are_distinct():
    ident = Identity("round", "red", "plain", "none", "hat")
    scene = Scene("park", (Character(ident, Pose("waving"), 0.2, 0.6, 0.3), Thing("tree", "green", 0.8, 0.62, 0.4)))
    for s in range(30):
        text = caption(scene, np.random.default_rng(s)).lower()
        assert "park" in text and "red" in text and "green tree" in text and "hat" in text
        assert "waving" in text
        assert any(p in text for p in ("left of", "right of")), text
        assert ("the character is to the left of the tree" in text or "the character is on the left of the tree" in text
                or "the tree is to the right of the character" in text
                or "the tree is on the right of the character" in text), text


def test_caption_handles_empty_and_single_object_scenes():
    for s in range(20):
        rng = np.random.default_rng(s)
        t = caption(Scene("snow"), rng)
        assert not grammar_problems(t) and ("snow" in t.lower())
        t = caption(Scene("indoor", (Thing("box", "orange", 0.5, 0.6, 0.1),)), rng)
        assert "an orange box" in t.lower() and not grammar_problems(t)


def test_caption_deterministic_and_varied():
    scene = random_scenes(1)[0]
    assert caption(scene, np.random.default_rng(5)) == caption(scene, np.random.default_rng(5))
    assert len({caption(scene, np.random.default_rng(s)) for s in range(20)}) > 10


def test_grammar_of_many_generated_strings():
    texts = []
    for i, scene in enumerate(random_scenes(300, "val", seed=3)):
        rng = np.random.default_rng(i)
        texts.append(caption(scene, rng))
        texts.extend(sentence(describe_object(o, rng)) for o in scene.objects)
    assert len(texts) > 300
    bad = [(t, grammar_problems(t)) for t in texts if grammar_problems(t)]
    assert not bad, bad[:5]
    assert grammar_problems("This is a orange ball.") and grammar_problems("the ball.") and grammar_problems("a  b.")
