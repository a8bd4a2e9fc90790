"""mmlink.data.mmlink_synth.groups: world groups (sprites in distinct poses, never cropped) and image-folder groups
(layout rules, descriptions, errors that name the folder)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import mmlink.data.mmlink_synth as ms


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_world_sprites_are_never_cropped():
    groups = ms.WorldGroups()
    for seed in range(15):
        for view in groups.sample(rng(seed), "train", n_views=2).views:
            alpha = np.asarray(view.image)[..., 3]
            assert alpha.any() and not (alpha[0].any() or alpha[-1].any() or alpha[:, 0].any() or alpha[:, -1].any())


def test_world_groups_views_differ_in_action_and_exclude_keys_and_colours():
    groups = ms.WorldGroups(sprite_size=128)
    main = groups.sample(rng(1), "train", n_views=3)
    assert main.identity is not None and main.label == main.identity.name and main.key == main.identity.key
    assert len({v.pose.action for v in main.views}) == 3
    assert all(v.image.mode == "RGBA" and v.image.size == (128, 128) and v.source is None for v in main.views)
    assert main.facts == ms.identity_facts(main.identity)
    other = groups.sample(rng(2), "train", exclude=[main])
    assert other.key != main.key and other.identity.color != main.identity.color
    assert other.label != main.label and other.identity.split == "train"


def test_object_group_facts_for_folders():
    view = ms.View(Image.new("RGB", (4, 4)))
    assert ms.ObjectGroup("red_mug", [view]).facts == ("red", "mug")
    assert ms.ObjectGroup("big-Blue cup 2", [view]).facts == ("big", "blue", "cup")  # words of 3+ letters
    assert ms.ObjectGroup("red_mug", [view], description="a mug").facts == ()  # the description is not checked
    assert ms.ObjectGroup("red_mug", [view]).key == "red_mug"


def _folder(root, name, n, mode="RGB", ext=".png"):
    (root / name).mkdir()
    for j in range(n):
        color = (10 * j, 0, 0, 255) if mode == "RGBA" else (10 * j, 0, 0)
        Image.new(mode, (12, 10), color).save(root / name / f"{j}{ext}")


def test_image_folder_groups_sample_views_description_and_alpha(tmp_path):
    _folder(tmp_path, "red_mug", 3, "RGBA")
    _folder(tmp_path, "blue_cup", 2, ext=".jpg")
    (tmp_path / "blue_cup" / "notes.txt").write_text("not an image")
    (tmp_path / "blue_cup" / "description.txt").write_text("  a blue cup with a handle\n")
    (tmp_path / "readme.md").write_text("files at the root are ignored")
    groups = ms.ImageFolderGroups(tmp_path)
    assert sorted(groups.groups) == ["blue_cup", "red_mug"]
    assert [p.name for p in groups.groups["blue_cup"]] == ["0.jpg", "1.jpg"]
    cup = groups.sample(rng(0), "train", n_views=2, exclude=[ms.ObjectGroup("red_mug", [])])
    assert cup.label == "blue_cup" and cup.description == "a blue cup with a handle" and cup.identity is None
    assert sorted(v.source for v in cup.views) == [str(tmp_path / "blue_cup" / f"{j}.jpg") for j in range(2)]
    assert all(v.image.mode == "RGB" and v.pose is None for v in cup.views)
    mug = groups.sample(rng(0), "test", n_views=3, exclude=[cup])
    assert mug.label == "red_mug" and mug.description is None and {v.image.mode for v in mug.views} == {"RGBA"}
    assert len({v.source for v in mug.views}) == 3
    with pytest.raises(ValueError, match=r"blue_cup has 2 images, 3 needed"):
        groups.sample(rng(0), "train", n_views=3, exclude=[mug])
    with pytest.raises(ms.NoMoreGroups, match="no object folder left"):
        groups.sample(rng(0), "train", exclude=[mug, cup])


def test_image_folder_groups_errors_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder root not found"):
        ms.ImageFolderGroups(tmp_path / "missing")
    _folder(tmp_path, "only", 2)
    with pytest.raises(ValueError, match=r"has 1 object folder\(s\); need at least 2"):
        ms.ImageFolderGroups(tmp_path)
    _folder(tmp_path, "single", 1)
    with pytest.raises(ValueError, match=r"single holds 1 image\(s\); every object folder needs at least 2"):
        ms.ImageFolderGroups(tmp_path)


def test_an_unreadable_image_names_its_path(tmp_path):
    _folder(tmp_path, "a", 2)
    _folder(tmp_path, "b", 1)
    (tmp_path / "b" / "broken.png").write_bytes(b"not a png")
    groups = ms.ImageFolderGroups(tmp_path)
    with pytest.raises(ValueError, match=r"broken\.png: cannot read image"):
        groups.sample(rng(0), "train", n_views=2, exclude=[ms.ObjectGroup("a", [])])
