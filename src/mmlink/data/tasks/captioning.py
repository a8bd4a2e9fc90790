"""Captioning tasks: multi-image (SAM's evaluation formats: group captioning, storytelling, change captioning) and
the single-image `caption` (Stage-1 alignment data).

The scene-editing machinery (`apply_random_change` and its helpers) is in `mmlink.data.world.edit`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from mmlink.data.tasks import TASKS, WorldSample
from mmlink.data.world.edit import apply_random_change, fresh_identities, other_value, replace_object, thing_size
from mmlink.data.world.scene import (
    ACTIONS,
    COLORS,
    CONTEXT_THINGS,
    CONTEXTS,
    THINGS,
    Character,
    Thing,
    sample_identity,
    sample_pose,
    sample_scene,
)
from mmlink.data.world.text import (
    action_phrase,
    caption,
    choose,
    context_phrase,
    conversation,
    describe_identity,
    image_prompt,
    join_list,
    plural,
    sentence,
    short_caption,
    thing_noun,
    things_phrase,
    with_article,
)

# ---------------------------------------------------------------------------------------------------------------
# group_caption
# ---------------------------------------------------------------------------------------------------------------

GROUP_INSTRUCTIONS = (
    "What do these images have in common?",
    "Write a caption shared by all the images.",
    "Describe what all of these images share in one sentence.",
    "Give one caption that fits every image.",
    "What is common to all the pictures?",
    "Summarize this group of images in a single sentence.",
)
CONCEPT_TYPES = ("character", "context", "thing", "action")


def _group_character(rng, split, n):
    ident = sample_identity(rng, split)
    exclude = {ident.key}
    contexts = [str(c) for c in rng.choice(CONTEXTS, n, replace=False)]
    scenes = []
    for ctx in contexts:
        distractors = fresh_identities(rng, split, int(rng.integers(0, 2)), exclude)
        scenes.append(sample_scene(rng, [ident, *distractors], ctx))
    actions = [s.objects[0].pose.action for s in scenes]
    desc = describe_identity(ident, rng)
    bare = describe_identity(ident, rng, article_form=False)
    if len(set(actions)) == 1:
        act = action_phrase(actions[0], rng)
        text = choose(rng, (f"{desc} {act} in different places", f"every image shows {desc} {act}, each time in a "
                            f"different setting", f"the same {bare} is {act} in every picture"))  # fmt: skip
    else:
        text = choose(rng, (f"{desc} in different places", f"the same {bare} appears in every image",
                            f"every image shows {desc}, each time in a different setting",
                            f"{desc} doing different things in different places"))  # fmt: skip
    meta = {"concept": ident.key, "concept_type": "character", "shared_action": actions[0] if len(set(actions)) == 1
            else None}  # fmt: skip
    return scenes, sentence(text), meta


def _group_context(rng, split, n):
    ctx = str(choose(rng, CONTEXTS))
    exclude: set[str] = set()
    scenes = [sample_scene(rng, fresh_identities(rng, split, int(rng.integers(1, 3)), exclude), ctx) for _ in range(n)]
    p = context_phrase(ctx, rng)
    text = choose(rng, (f"different characters {p}", f"all the images are taken {p}",
                        f"every picture is set {p}, each with different characters", f"scenes {p}"))  # fmt: skip
    return scenes, sentence(text), {"concept": ctx, "concept_type": "context"}


def _group_thing(rng, split, n):
    kind = str(choose(rng, THINGS))
    fitting = [c for c in CONTEXTS if kind in CONTEXT_THINGS[c]]
    contexts = [str(c) for c in rng.choice(fitting, n, replace=len(fitting) < n)]
    color = str(choose(rng, list(COLORS))) if rng.random() < 0.5 else None
    exclude: set[str] = set()
    scenes = []
    for ctx in contexts:
        chars = fresh_identities(rng, split, int(rng.integers(0, 2)), exclude)
        s = sample_scene(rng, chars, ctx, n_things=int(rng.integers(1, 3)))
        i = len(s.characters)  # first thing
        t = s.objects[i]
        tcolor = color or t.color
        s = replace_object(s, i, Thing(kind, tcolor, t.x, t.y, thing_size(rng, kind)))
        scenes.append(s)
    noun = f"{color} {thing_noun(kind, rng)}" if color else thing_noun(kind, rng)
    a = with_article(noun)
    options = [f"{a} appears in every image", f"each picture contains {a}", f"there is {a} in every picture",
               f"{plural(noun)} in different scenes"]  # fmt: skip
    if len(set(contexts)) == len(contexts):
        options.append(f"{plural(noun)} in different places")
    text = choose(rng, options)
    return scenes, sentence(text), {"concept": f"{color} {kind}" if color else kind, "concept_type": "thing"}


def _group_action(rng, split, n):
    action = str(choose(rng, ACTIONS))
    exclude: set[str] = set()
    scenes = []
    for ident in fresh_identities(rng, split, n, exclude):
        pose = replace(sample_pose(rng), action=action)
        scenes.append(sample_scene(rng, [ident], poses=[pose]))
    act = action_phrase(action, rng)
    acts = action_phrase(action, rng, plural_subject=True)
    text = choose(rng, (f"characters {acts}", f"in every image a character is {act}",
                        f"each picture shows a different character {act}",
                        f"different characters all {acts}"))  # fmt: skip
    return scenes, sentence(text), {"concept": action, "concept_type": "action"}


_GROUP_BUILDERS = {"character": _group_character, "context": _group_context, "thing": _group_thing,
                   "action": _group_action}  # fmt: skip


@TASKS.register("group_caption")
def group_caption(rng: np.random.Generator, split: str) -> WorldSample:
    """3–5 images sharing one concept (a character, a context, a thing or an action); target = one sentence naming
    what they have in common."""
    n = int(rng.integers(3, 6))
    ctype = str(choose(rng, CONCEPT_TYPES))
    scenes, text, meta = _GROUP_BUILDERS[ctype](rng, split, n)
    human = image_prompt(len(scenes), str(choose(rng, GROUP_INSTRUCTIONS)))
    return WorldSample(scenes, conversation(human, text), meta)


# ---------------------------------------------------------------------------------------------------------------
# storytelling
# ---------------------------------------------------------------------------------------------------------------

STORY_INSTRUCTIONS = (
    "Tell a story about {names} from these images.",
    "Write a short story about {names} based on the images, in order.",
    "These pictures show {names}. Tell their story.",
    "Use the images to tell a story featuring {names}.",
)
_FIRST = ("once upon a time,", "one day,", "it all began when")
_MIDDLE = ("then", "later,", "after that,", "next,", "soon", "the next day,")
_LAST = ("finally,", "in the end,", "at last,")


def _subject_sentence(connector, present, actions, phrases, ctx, descs):
    """'One day, Pip, a tall red character, was jumping at the beach while Luna was sitting.'"""

    def who(name):
        return f"{name}, {descs[name]}," if name in descs else name

    if len(present) == 1:
        n = present[0]
        core = f"{who(n)} was {phrases[n]} {ctx}"
    else:
        a, b = present
        if actions[a] == actions[b]:
            core = f"{who(a)} and {who(b)} were both {phrases[a].replace('its arm', 'their arms')} {ctx}"
        else:
            core = f"{who(a)} was {phrases[a]} {ctx} while {who(b)} was {phrases[b]}"
    return sentence(f"{connector} {core}")


@TASKS.register("storytelling")
def storytelling(rng: np.random.Generator, split: str) -> WorldSample:
    """3–5 images of 1–2 named characters in different contexts; target = one or two sentences per image, in
    order."""
    n = int(rng.integers(3, 6))
    n_chars = int(rng.integers(1, 3))
    idents = fresh_identities(rng, split, n_chars)
    names = [i.name for i in idents]
    contexts = [str(c) for c in rng.choice(CONTEXTS, n, replace=False)]
    # Connectors: "once upon a time" … distinct "then"/"later" … "finally" (never the same one twice in a story).
    first_c, last_c = choose(rng, _FIRST), choose(rng, _LAST)
    middles = [_MIDDLE[k] for k in rng.permutation(len(_MIDDLE))]
    last_action: dict[str, str] = {}
    introduced: set[str] = set()
    scenes, per_image, texts = [], [], []
    for k, ctx in enumerate(contexts):
        if n_chars == 2 and k > 0 and rng.random() < 0.25:
            present_idx = [int(rng.integers(2))]
        else:
            present_idx = list(range(n_chars))
        poses = []
        for j in present_idx:
            nm = names[j]
            action = other_value(rng, ACTIONS, last_action[nm]) if nm in last_action else str(choose(rng, ACTIONS))
            last_action[nm] = action
            poses.append(replace(sample_pose(rng), action=action))
        scene = sample_scene(rng, [idents[j] for j in present_idx], ctx, poses=poses)
        scenes.append(scene)
        present = [names[j] for j in present_idx]
        actions = {names[j]: p.action for j, p in zip(present_idx, poses)}
        phrases = {nm: action_phrase(a, rng) for nm, a in actions.items()}
        descs = {names[j]: describe_identity(idents[j], rng) for j in present_idx if names[j] not in introduced}
        introduced |= set(present)
        connector = first_c if k == 0 else last_c if k == n - 1 else middles[k - 1]
        sents = [_subject_sentence(connector, present, actions, phrases, context_phrase(ctx, rng), descs)]
        things = scene.things
        if things:
            tp = things_phrase(things, rng)
            subj = present[0] if len(present) == 1 else choose(rng, (join_list(present), "they"))
            many = len(things) > 1
            sents.append(
                sentence(
                    choose(
                        rng,
                        (f"{subj} {choose(rng, ('saw', 'noticed', 'found'))} {tp} nearby",
                         f"there {'were' if many else 'was'} {tp} {choose(rng, ('nearby', 'close by', 'around'))}"),
                    )  # fmt: skip
                )
            )
        text = " ".join(sents)
        texts.append(text)
        per_image.append(
            {"context": ctx, "characters": present, "actions": actions,
             "things": [t.kind for t in things], "text": text}  # fmt: skip
        )
    instruction = choose(rng, STORY_INSTRUCTIONS).format(names=join_list(names))
    human = image_prompt(n, instruction)
    return WorldSample(scenes, conversation(human, " ".join(texts)), {"characters": names, "per_image": per_image})


# ---------------------------------------------------------------------------------------------------------------
# change_caption
# ---------------------------------------------------------------------------------------------------------------

CHANGE_INSTRUCTIONS = (
    "What has changed between the two images?",
    "Describe the difference between Image 1 and Image 2.",
    "What is different in the second image?",
    "Spot the difference between these two pictures.",
    "Describe what changed from the first image to the second.",
)
NO_CHANGE_TEXTS = ("There is no difference.", "Nothing has changed.", "The two images are the same.")
NO_CHANGE_RATE = 0.08


@TASKS.register("change_caption")
def change_caption(rng: np.random.Generator, split: str) -> WorldSample:
    """Two nearly identical scenes with one or two changes (or, at a small rate, none); target = the change(s)."""
    chars = fresh_identities(rng, split, int(rng.integers(1, 3)))
    before = sample_scene(rng, chars, n_things=int(rng.integers(1, 4)))
    if rng.random() < NO_CHANGE_RATE:
        after, changes, texts = before, [], [str(choose(rng, NO_CHANGE_TEXTS))]
    else:
        n_changes = 1 if rng.random() < 0.7 else 2
        after, changes, texts = apply_random_change(rng, before, split, n_changes)
        if not changes:  # cannot happen in practice (add always applies); keep the sample valid anyway
            texts = [str(choose(rng, NO_CHANGE_TEXTS))]
    human = image_prompt(2, str(choose(rng, CHANGE_INSTRUCTIONS)))
    target = " ".join(texts)
    return WorldSample([before, after], conversation(human, target), {"changes": changes, "answer_parts": texts})


# ---------------------------------------------------------------------------------------------------------------
# caption (single image; alignment data for Stage 1, like InstructBLIP's captioning instructions)
# ---------------------------------------------------------------------------------------------------------------

CAPTION_INSTRUCTIONS = (
    "Describe the image.",
    "What is in this picture?",
    "Write a caption for the image.",
    "Describe this picture in detail.",
    "What does the image show?",
    "Tell me what you see in this image.",
    "Give a description of the scene.",
)
SHORT_CAPTION_INSTRUCTIONS = (
    "Describe the image briefly.",
    "Write a short caption for the image.",
    "Describe this picture in one sentence.",
)
SHORT_CAPTION_RATE = 0.25


@TASKS.register("caption")
def caption_task(rng: np.random.Generator, split: str) -> WorldSample:
    """One image of 0–2 characters and 1–3 things; target = its caption (context, every object with its attributes,
    action and location), or at a quarter of the rate a one-sentence short caption."""
    n_chars = int(rng.integers(0, 3))
    scene = sample_scene(rng, fresh_identities(rng, split, n_chars))
    short = rng.random() < SHORT_CAPTION_RATE
    if short:
        instruction = str(choose(rng, SHORT_CAPTION_INSTRUCTIONS))
        text = short_caption(scene, rng)
    else:
        instruction = str(choose(rng, CAPTION_INSTRUCTIONS))
        text = caption(scene, rng)
    meta = {"style": "short" if short else "full", "context": scene.context,
            "objects": [o.identity.key if isinstance(o, Character) else f"{o.color} {o.kind}" for o in scene.objects]}
    return WorldSample([scene], conversation(image_prompt(1, instruction), text), meta)


__all__ = ["caption_task", "change_caption", "group_caption", "storytelling"]
