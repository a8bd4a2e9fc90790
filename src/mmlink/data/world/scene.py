"""Scene graphs of the embedded world: characters with a stable identity, objects, contexts.

Every image mmlink renders comes from a `Scene`, and every text target is derived from scene graphs, so labels
are correct by construction. A character's **identity** (body shape, colours, pattern, accessory, name) never
changes; its **pose** (action, rotation, scale, facing) and its place in a scene do.

Splits are disjoint twice over: by seed (each split draws from its own random stream) and by identity — every
identity combination belongs to exactly one split (a stable hash), so a test identity is never seen in training.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_SHARES = {"train": 0.8, "val": 0.1, "test": 0.1}

# Colour names → RGB. Names are what the text says, so they must be distinguishable when rendered.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (210, 40, 40),
    "orange": (240, 140, 30),
    "yellow": (240, 210, 40),
    "green": (50, 160, 60),
    "blue": (40, 90, 210),
    "purple": (130, 60, 170),
    "pink": (240, 120, 170),
    "brown": (120, 75, 40),
    "black": (30, 30, 30),
    "white": (245, 245, 245),
    "gray": (128, 128, 128),
}
BODIES = ("round", "tall", "square", "triangle")
PATTERNS = ("plain", "striped", "dotted", "checkered")
ACCESSORIES = ("none", "hat", "scarf", "glasses", "bow", "backpack")
ACTIONS = ("standing", "jumping", "waving", "sitting")
THINGS = ("tree", "house", "car", "ball", "flower", "rock", "lamp", "box")
CONTEXTS = ("beach", "forest", "city", "snow", "night", "indoor", "desert", "park")
# Things that fit a context (a car indoors would be odd; the text must stay plausible too).
CONTEXT_THINGS = {
    "beach": ("ball", "rock", "box", "flower"),
    "forest": ("tree", "rock", "flower", "ball"),
    "city": ("house", "car", "lamp", "box"),
    "snow": ("tree", "house", "rock", "ball"),
    "night": ("house", "car", "lamp", "tree"),
    "indoor": ("box", "lamp", "ball", "flower"),
    "desert": ("rock", "car", "box", "house"),
    "park": ("tree", "flower", "ball", "lamp"),
}
NAMES = (
    "Pip", "Milo", "Luna", "Kiko", "Bobo", "Nora", "Tato", "Zed", "Fifi", "Rex", "Juno", "Ollie", "Bea", "Gus",
    "Ivy", "Momo", "Rio", "Suki", "Toto", "Wren", "Yuki", "Ziggy", "Ada", "Bram", "Cleo", "Dot", "Elio", "Faye",
)  # fmt: skip


@dataclass(frozen=True)
class Identity:
    """What makes a character recognisable across scenes."""

    body: str
    color: str
    pattern: str
    pattern_color: str
    accessory: str

    @property
    def key(self) -> str:
        return f"{self.body}/{self.color}/{self.pattern}/{self.pattern_color}/{self.accessory}"

    @property
    def name(self) -> str:
        """A stable name, for storytelling (same identity → same name)."""
        return NAMES[_stable_int(self.key) % len(NAMES)]

    @property
    def split(self) -> str:
        """The only split this identity appears in."""
        u = (_stable_int("split:" + self.key) % 10_000) / 10_000
        return "train" if u < SPLIT_SHARES["train"] else "val" if u < SPLIT_SHARES["train"] + SPLIT_SHARES["val"] else "test"


@dataclass(frozen=True)
class Pose:
    action: str = "standing"
    rotation: float = 0.0  # degrees, counter-clockwise
    facing: Literal["left", "right"] = "right"


@dataclass(frozen=True)
class Character:
    """A character placed in a scene: ``x, y`` centre in [0, 1] (y down), ``size`` height as a fraction of the image."""

    identity: Identity
    pose: Pose
    x: float
    y: float
    size: float
    kind: str = "character"


@dataclass(frozen=True)
class Thing:
    kind: str
    color: str
    x: float
    y: float
    size: float


SceneObject = Character | Thing


@dataclass(frozen=True)
class Scene:
    context: str
    objects: tuple[SceneObject, ...] = field(default_factory=tuple)
    lighting: float = 1.0  # brightness multiplier (night scenes are darker)
    seed: int = 0  # drives render-only details (grass, stars, texture), never anything the text mentions

    @property
    def characters(self) -> list[Character]:
        return [o for o in self.objects if isinstance(o, Character)]

    @property
    def things(self) -> list[Thing]:
        return [o for o in self.objects if isinstance(o, Thing)]


def location(obj: SceneObject) -> tuple[str, str]:
    """(horizontal, vertical) location words: left/centre/right, top/middle/bottom."""
    h = "left" if obj.x < 1 / 3 else "right" if obj.x > 2 / 3 else "centre"
    v = "top" if obj.y < 0.45 else "bottom" if obj.y > 0.7 else "middle"
    return h, v


def relative_position(a: SceneObject, b: SceneObject) -> str:
    """Where ``a`` is relative to ``b``: 'left of', 'right of', 'above', 'below' (the larger offset wins)."""
    dx, dy = a.x - b.x, a.y - b.y
    if abs(dx) >= abs(dy):
        return "left of" if dx < 0 else "right of"
    return "above" if dy < 0 else "below"


def _stable_int(text: str) -> int:
    # Python's hash() is salted per process; splits and names must be the same everywhere.
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def rng_for(split: str, seed: int, index: int, stream: str = "") -> np.random.Generator:
    """The random stream of sample ``index``: disjoint across splits, seeds, indices and named sub-streams."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return np.random.default_rng([SPLITS.index(split), seed, index, _stable_int(stream) % 2**32])


def all_identities() -> list[Identity]:
    """Every identity combination (pattern colour differs from body colour)."""
    return [
        Identity(body, color, pattern, pcolor, acc)
        for body in BODIES
        for color in COLORS
        for pattern in PATTERNS
        for pcolor in (COLORS if pattern != "plain" else ("none",))
        if pcolor != color
        for acc in ACCESSORIES
    ]


_POOLS: dict[str, list[Identity]] = {}


def identity_pool(split: str) -> list[Identity]:
    """Identities of one split (cached; about 80/10/10 of all combinations)."""
    if split not in _POOLS:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        _POOLS[split] = [i for i in all_identities() if i.split == split]
    return _POOLS[split]


def sample_identity(rng: np.random.Generator, split: str, exclude: set[str] = frozenset()) -> Identity:
    pool = identity_pool(split)
    while True:
        ident = pool[int(rng.integers(len(pool)))]
        if ident.key not in exclude and ident.name not in {_name_of(k) for k in exclude}:
            return ident


def _name_of(key: str) -> str:
    return NAMES[_stable_int(key) % len(NAMES)]


def sample_pose(rng: np.random.Generator) -> Pose:
    return Pose(
        action=str(rng.choice(ACTIONS)),
        rotation=float(rng.uniform(-15, 15)),
        facing=str(rng.choice(["left", "right"])),
    )


def place(rng: np.random.Generator, taken: list[tuple[float, float]], y_range=(0.55, 0.8)) -> tuple[float, float]:
    """A position not too close to the ones taken (best of a few tries), so objects rarely hide each other."""
    best, best_d = (0.5, 0.65), -1.0
    for _ in range(12):
        x, y = float(rng.uniform(0.12, 0.88)), float(rng.uniform(*y_range))
        d = min((abs(x - a) + 0.5 * abs(y - b) for a, b in taken), default=1.0)
        if d > best_d:
            best, best_d = (x, y), d
        if d > 0.25:
            break
    return best


def sample_scene(
    rng: np.random.Generator,
    characters: list[Identity],
    context: str | None = None,
    n_things: int | None = None,
    poses: list[Pose] | None = None,
) -> Scene:
    """A scene holding the given characters (fresh poses and places) plus a few context-fitting things."""
    context = context or str(rng.choice(CONTEXTS))
    if context not in CONTEXTS:
        raise ValueError(f"context must be one of {CONTEXTS}, got {context!r}")
    taken: list[tuple[float, float]] = []
    objects: list[SceneObject] = []
    for i, ident in enumerate(characters):
        x, y = place(rng, taken)
        taken.append((x, y))
        pose = poses[i] if poses else sample_pose(rng)
        objects.append(Character(ident, pose, x, y, float(rng.uniform(0.28, 0.4))))
    n_things = int(rng.integers(1, 4)) if n_things is None else n_things
    for _ in range(n_things):
        kind = str(rng.choice(CONTEXT_THINGS[context]))
        x, y = place(rng, taken, y_range=(0.5, 0.85))
        taken.append((x, y))
        size = {"tree": 0.45, "house": 0.42, "car": 0.2, "lamp": 0.4}.get(kind, 0.14) * float(rng.uniform(0.85, 1.15))
        objects.append(Thing(kind, str(rng.choice(list(COLORS))), x, y, size))
    lighting = 0.55 if context == "night" else float(rng.uniform(0.85, 1.1))
    return Scene(context, tuple(objects), lighting, int(rng.integers(2**31)))


# ---------------------------------------------------------------------------------------------------------------
# JSON form (records carry their scene graphs in ``meta.scenes`` so that answers can be checked against them)
# ---------------------------------------------------------------------------------------------------------------


def scene_to_dict(scene: Scene) -> dict[str, Any]:
    """A JSON-ready dict of ``scene``; `scene_from_dict` gives back an equal `Scene` (floats keep their exact value:
    JSON writes the shortest repr that reads back to the same float)."""
    objects: list[dict[str, Any]] = []
    for obj in scene.objects:
        if isinstance(obj, Character):
            ident = obj.identity
            objects.append({
                "kind": obj.kind,
                # the name is derived from the rest; written so that a reader of the record sees it, checked on load
                "identity": {"body": ident.body, "color": ident.color, "pattern": ident.pattern,
                             "pattern_color": ident.pattern_color, "accessory": ident.accessory, "name": ident.name},
                "pose": {"action": obj.pose.action, "rotation": obj.pose.rotation, "facing": obj.pose.facing},
                "x": obj.x, "y": obj.y, "size": obj.size,
            })  # fmt: skip
        else:
            objects.append({"kind": obj.kind, "color": obj.color, "x": obj.x, "y": obj.y, "size": obj.size})
    return {"context": scene.context, "objects": objects, "lighting": scene.lighting, "seed": scene.seed}


def _field(data: Any, key: str, where: str, kind: type | tuple[type, ...], choices: tuple[str, ...] = ()) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"scene field {where or 'scene'!r}: expected an object, got {type(data).__name__}")
    path = f"{where}.{key}" if where else key
    if key not in data:
        raise ValueError(f"scene field {path!r} is missing")
    value = data[key]
    # bool is an int subclass; a coordinate or seed given as true/false is a corrupt record, not a number
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"scene field {path!r}: expected {getattr(kind, '__name__', kind)}, got {value!r}")
    if choices and value not in choices:
        raise ValueError(f"scene field {path!r}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def scene_from_dict(data: dict[str, Any]) -> Scene:
    """The `Scene` of a `scene_to_dict` dict. Raises ValueError naming the bad field ('objects[1].identity.body')."""
    num = (int, float)
    context = _field(data, "context", "", str, CONTEXTS)
    raw_objects = _field(data, "objects", "", list)
    objects: list[SceneObject] = []
    for k, raw in enumerate(raw_objects):
        where = f"objects[{k}]"
        kind = _field(raw, "kind", where, str, ("character", *THINGS))
        x, y, size = (float(_field(raw, key, where, num)) for key in ("x", "y", "size"))
        if kind == "character":
            iw, pw = f"{where}.identity", f"{where}.pose"
            raw_ident, raw_pose = _field(raw, "identity", where, dict), _field(raw, "pose", where, dict)
            ident = Identity(
                _field(raw_ident, "body", iw, str, BODIES),
                _field(raw_ident, "color", iw, str, tuple(COLORS)),
                _field(raw_ident, "pattern", iw, str, PATTERNS),
                _field(raw_ident, "pattern_color", iw, str, (*COLORS, "none")),
                _field(raw_ident, "accessory", iw, str, ACCESSORIES),
            )
            if "name" in raw_ident and raw_ident["name"] != ident.name:
                raise ValueError(f"scene field '{iw}.name': {raw_ident['name']!r} is not the name of this identity "
                                 f"({ident.name!r})")
            pose = Pose(_field(raw_pose, "action", pw, str, ACTIONS), float(_field(raw_pose, "rotation", pw, num)),
                        _field(raw_pose, "facing", pw, str, ("left", "right")))
            objects.append(Character(ident, pose, x, y, size))
        else:
            objects.append(Thing(kind, _field(raw, "color", where, str, tuple(COLORS)), x, y, size))
    return Scene(context, tuple(objects), float(_field(data, "lighting", "", num)), _field(data, "seed", "", int))


__all__ = [
    "ACCESSORIES", "ACTIONS", "BODIES", "COLORS", "CONTEXTS", "CONTEXT_THINGS", "NAMES", "PATTERNS", "SPLITS",
    "THINGS", "Character", "Identity", "Pose", "Scene", "SceneObject", "Thing", "all_identities", "identity_pool",
    "location", "place", "relative_position", "rng_for", "sample_identity", "sample_pose", "sample_scene",
    "scene_from_dict", "scene_to_dict",
]  # fmt: skip
