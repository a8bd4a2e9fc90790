"""Step 1 of the MmLINK synthesis, image groups: a `GroupSource` gives images of one object in different poses —
`WorldGroups` (characters of the embedded world, default) or `ImageFolderGroups` (a user's folders of images)."""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from mmlink.data.mmlink_synth.base import GROUP_SOURCES
from mmlink.data.mmlink_synth.facts import identity_facts
from mmlink.data.world.scene import Character, Identity, Pose, sample_identity, sample_pose


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@dataclass
class View:
    """One image of an object: RGBA (a cut-out sprite) or RGB (a photo), the pose if known, the source path."""

    image: Image.Image
    pose: Pose | None = None
    source: str | None = None


@dataclass
class ObjectGroup:
    """Images of one object in different poses. ``identity`` is set for world characters, None for user folders."""

    label: str
    views: list[View]
    identity: Identity | None = None
    description: str | None = None  # a user folder's description.txt

    @property
    def key(self) -> str:
        return self.identity.key if self.identity is not None else self.label

    @property
    def facts(self) -> tuple[str, ...]:
        """Words any description must keep: the identity's traits; for a folder without a description.txt, the
        words of its name (``red_mug`` → red, mug)."""
        if self.identity is not None:
            return identity_facts(self.identity)
        if self.description:
            return ()
        return tuple(w for w in re.split(r"[\W_]+", self.label.lower()) if len(w) > 2)


class NoMoreGroups(ValueError):
    """A group source has no object left that differs from all the excluded ones."""


class GroupSource(ABC):
    """Where image groups come from. ``sample`` draws one object with ``n_views`` images, unlike every ``exclude``."""

    @abstractmethod
    def sample(
        self, rng: np.random.Generator, split: str, n_views: int = 1, exclude: Sequence[ObjectGroup] = ()
    ) -> ObjectGroup: ...


@GROUP_SOURCES.register("world")
class WorldGroups(GroupSource):
    """Characters of the embedded world, each view a transparent sprite in its own sampled pose.

    The views of one group differ in action (and usually facing and rotation). Distractors differ from every
    excluded group in identity, name and body colour, so "the red character" names one object in the picture.
    """

    def __init__(self, sprite_size: int = 448):
        self.sprite_size = sprite_size

    def sample(self, rng, split, n_views=1, exclude=()):
        from mmlink.data.world.render import render_object

        keys = {g.key for g in exclude}
        colors = {g.identity.color for g in exclude if g.identity is not None}
        for _ in range(1000):
            ident = sample_identity(rng, split, exclude=keys)
            if ident.color not in colors:
                break
        else:  # pragma: no cover - every split has identities of every colour
            raise RuntimeError(f"no {split} identity unlike {sorted(keys)}")
        poses: list[Pose] = []
        while len(poses) < n_views:
            pose = sample_pose(rng)
            if all(pose.action != p.action for p in poses):
                poses.append(pose)
        views = []
        for pose in poses:
            for height in (0.55, 0.4):  # the nominal height leaves room for lifts, hats and turns; else shrink
                sprite = render_object(Character(ident, pose, x=0.5, y=0.5, size=height), self.sprite_size)
                alpha = np.asarray(sprite)[..., 3]
                if not (alpha[0].any() or alpha[-1].any() or alpha[:, 0].any() or alpha[:, -1].any()):
                    break
            views.append(View(sprite, pose))
        return ObjectGroup(label=ident.name, views=views, identity=ident)


@GROUP_SOURCES.register("folders")
class ImageFolderGroups(GroupSource):
    """A user's images: ``root/<object>/*.{png,jpg,…}``, one sub-folder per object with at least two images.

    An optional ``root/<object>/description.txt`` describes the object (used for the answer); otherwise the folder
    name is (``red_mug`` → "red mug"). Images with transparency keep their alpha channel (then the ``alpha``
    segmenter applies); photos are RGB and need ``grabcut`` or ``segment_anything``. Every folder serves every
    split: keep separate roots for train and test.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder root not found: {self.root}")
        self.groups: dict[str, list[Path]] = {}
        for sub in sorted(p for p in self.root.iterdir() if p.is_dir()):
            files = sorted(f for f in sub.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
            if len(files) < 2:
                raise ValueError(f"{sub} holds {len(files)} image(s); every object folder needs at least 2")
            self.groups[sub.name] = files
        if len(self.groups) < 2:
            raise ValueError(
                f"{self.root} has {len(self.groups)} object folder(s); need at least 2 (a main object and a distractor)"
            )

    def sample(self, rng, split, n_views=1, exclude=()):
        names = [n for n in self.groups if n not in {g.label for g in exclude}]
        if not names:
            raise NoMoreGroups(f"{self.root}: no object folder left for a distractor; add more object folders")
        name = names[int(rng.integers(len(names)))]
        files = self.groups[name]
        if n_views > len(files):
            raise ValueError(f"{self.root / name} has {len(files)} images, {n_views} needed")
        picked = [files[int(i)] for i in rng.choice(len(files), size=n_views, replace=False)]
        desc_file = self.root / name / "description.txt"
        desc = desc_file.read_text(encoding="utf-8").strip() if desc_file.exists() else None
        return ObjectGroup(
            label=name, views=[View(_open_keep_alpha(p), None, str(p)) for p in picked], description=desc
        )


def _open_keep_alpha(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
            return im.convert("RGBA" if alpha else "RGB")
    except Exception as e:  # PIL raises many kinds of errors for bad files
        raise ValueError(f"{path}: cannot read image ({e})") from e
