"""Readers for SAM's evaluation sets, as their authors distribute them: group captioning (SAM Table 1a), visual
storytelling (Table 1b) and change / difference captioning (Table 3).

Every task here is ``generate``: the model writes free text, scored with BLEU-4 / ROUGE-L / CIDEr against all the
references of the item (``meta.refs``), under SAM's tokenization (lowercase, punctuation stripped — done by the
harness). How the references are grouped follows each data set's common evaluation code, cited at its reader:

* ``vist``                  — VIST SIS: one item per distinct 5-photo sequence, each story written for it a reference;
* ``spot_the_diff``         — Spot-the-Diff: one item per image pair, every annotated sentence a reference;
* ``clevr_change``          — CLEVR-Change: per test scene a semantic-change pair and a distractor (no-change) pair;
* ``birds_to_words``        — Birds-to-Words: one item per bird-photo pair, its (up to 5) descriptions as references;
* ``image_editing_request`` — Image Editing Request: one item per request set (``uid``), its 3 requests as references;
* ``group_caption_data``    — a simple documented file format for group captioning (SAM's own data is unreleased).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

from mmlink.eval.benchmarks import base

# Prompts: plain instructions in the form of mmlink's world tasks ("Image k: <image>" lines, then the instruction;
# see mmlink.data.tasks.captioning). None of these sets has an official prompt for a generative LLM.
STORY_PROMPT = "Write a short story based on these images, in order, with one sentence per image."
CHANGE_PROMPT = "Describe what changed between the two images in one sentence."
EDIT_PROMPT = ("Image 2 is an edited version of Image 1. Write the editing request that was carried out, as a short "
               "instruction.")
# Birds-to-Words descriptions name the birds "animal1" / "animal2" (the normalized form its consumers rely on);
# asking for those names keeps a correct answer from losing n-grams to a naming convention.
BIRDS_PROMPT = ('Describe the differences between the bird in Image 1 and the bird in Image 2 in a few sentences. '
                'Call the bird in Image 1 "animal1" and the bird in Image 2 "animal2".')
GROUP_PROMPT = "Give one caption that fits every image."

# Image files in released sets come with various extensions (VIST mixes .jpg, .png, .gif, upper case, none).
_SUFFIXES = (*base.IMAGE_SUFFIXES, *(s.upper() for s in base.IMAGE_SUFFIXES), "")


def _prompt(n_images: int, instruction: str) -> str:
    return base.image_prefix(n_images) + instruction


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=3)


def _id(obj: dict, key: str, path: Path, record: Any) -> str:
    """An identifier field that the release stores as a string or a number."""
    return str(base.get(obj, key, path, record, (str, int)))


def _texts(values: list, path: Path, record: Any, field: str) -> list[str]:
    """Non-blank reference strings of a list (blank ones dropped; a non-string is an error)."""
    out = []
    for value in values:
        if not isinstance(value, str):
            raise base.fail(path, record, field, f"must hold strings, got {type(value).__name__} {value!r}")
        if value.strip():
            out.append(value.strip())
    return out


def _image_index(directory: Path) -> dict[str, str]:
    """``{file stem: absolute path}`` of the image files in ``directory`` (one listing instead of one stat per
    name and suffix: VIST's train split holds ~170k images)."""
    index: dict[str, str] = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            if not entry.is_file():
                continue
            stem, suffix = os.path.splitext(entry.name)
            if suffix.lower() in base.IMAGE_SUFFIXES:
                index.setdefault(stem, str(Path(entry.path).resolve()))
            elif not suffix:
                index.setdefault(entry.name, str(Path(entry.path).resolve()))
    return index


def _directory(root: Path, candidates: tuple[str, ...], layout: str) -> Path:
    for name in candidates:
        if (root / name).is_dir():
            return root / name
    raise FileNotFoundError(f"{root}: no image directory ({', '.join(candidates)}) (expected layout: {layout})")


# --------------------------------------------------------------------------------------------- VIST


VIST_SPLITS = ("test", "val", "train")
VIST_LAYOUT = "DIR/sis/<split>.story-in-sequence.json, DIR/images/<split>/<photo_flickr_id>.<jpg|png|gif|...>"


def read_vist(root: Path, split: str, cache: Path) -> list[dict]:
    """VIST storytelling (Huang et al. 2016), the SIS release.

    Layout: ``DIR/sis/{train,val,test}.story-in-sequence.json`` (``annotations``: one-element lists of storylets with
    ``story_id``, ``photo_flickr_id``, ``worker_arranged_photo_order``, ``text``, ``original_text``, ``album_id``)
    and the images as distributed, ``DIR/images/<split>/<photo_flickr_id>.jpg`` (some .png/.gif). Source:
    https://visionandlanguage.net/VIST/dataset.html.

    Protocol of the VIST challenge evaluation (github.com/windx0303/VIST-Challenge-NAACL-2018,
    EvalVISTSharedTask.java / VistStory.java) and of Licheng Yu's vist_eval used by AREL (eric-xw/AREL
    vist_eval/stimgids_eval.py): the stories are grouped by their photo sequence (photo ids in worker order), one
    prediction per sequence, and each story of that sequence is a reference: its storylets' ``text`` joined in
    order. ``text`` (not ``original_text``) because both evaluations score against it — the normalized form:
    lowercased, punctuation split off, names replaced by [male]/[female]/[location]. ``meta.original_refs`` keeps
    the stories in ``original_text`` for whoever wants to score against the raw wording.

    A sequence with a photo missing from the image release is left out (with one warning): some Flickr photos
    were never distributed, and AREL's preprocessing and the challenge drop those sequences the same way.
    """
    root = Path(root)
    base.check_split(split, VIST_SPLITS, root)
    path = base.find_file(root, [f"sis/{split}.story-in-sequence.json", f"{split}.story-in-sequence.json"],
                          VIST_LAYOUT)
    data = base.read_json(path)
    annotations = base.get(data, "annotations", path, "(top level)", list)
    stories: dict[str, dict] = {}
    for i, entry in enumerate(annotations):
        where = f"annotations[{i}]"
        if not isinstance(entry, list) or len(entry) != 1:
            raise base.fail(path, where, "annotations", "must be a one-element list holding a storylet")
        ann = entry[0]
        story_id = _id(ann, "story_id", path, where)
        where = f"story {story_id} ({where})"
        order = base.get(ann, "worker_arranged_photo_order", path, where, int)
        photo = _id(ann, "photo_flickr_id", path, where)
        text = base.get(ann, "text", path, where, str, nonempty=False).strip()
        original = ann.get("original_text")
        original = original.strip() if isinstance(original, str) else text
        story = stories.setdefault(story_id, {"album": str(ann.get("album_id", "")), "parts": []})
        story["parts"].append((order, photo, text, original))

    sequences: dict[tuple[str, ...], dict] = {}
    for story_id, story in stories.items():
        parts = sorted(story["parts"])
        orders = [p[0] for p in parts]
        if len(set(orders)) != len(orders):
            raise base.fail(path, f"story {story_id}", "worker_arranged_photo_order",
                            f"repeats a position: {orders}")
        seq = tuple(p[1] for p in parts)
        group = sequences.setdefault(seq, {"album": story["album"], "stories": [], "refs": [], "original": []})
        group["stories"].append(story_id)
        group["refs"].append(" ".join(p[2] for p in parts if p[2]))
        group["original"].append(" ".join(p[3] for p in parts if p[3]))

    images_dir = _directory(root, (f"images/{split}",), VIST_LAYOUT)
    index = _image_index(images_dir)
    records, skipped = [], 0
    for seq, group in sequences.items():
        if any(photo not in index for photo in seq):
            skipped += 1
            continue
        refs = [r for r in group["refs"] if r]
        if not refs:
            raise base.fail(path, f"story {group['stories'][0]}", "text", "is empty in every story of its sequence")
        records.append(base.record("_".join(seq), [index[p] for p in seq], _prompt(len(seq), STORY_PROMPT),
                                   refs[0], refs=refs, original_refs=group["original"], story_ids=group["stories"],
                                   album_id=group["album"], photo_ids=list(seq)))
    if sequences and not records:
        raise FileNotFoundError(f"{images_dir}: none of the photos of {path.name} found (expected layout: "
                                f"{VIST_LAYOUT})")
    if skipped:
        _warn(f"{path}: {skipped} of {len(sequences)} photo sequence(s) left out: a photo is missing from "
              f"{images_dir}")
    return records


# --------------------------------------------------------------------------------------------- Spot-the-Diff


SPOT_SPLITS = ("test", "val", "train")
SPOT_LAYOUT = ("DIR/annotations/<split>.json ([{img_id, sentences}]), DIR/resized_images/<img_id>.png and "
               "<img_id>_2.png")


def read_spot_the_diff(root: Path, split: str, cache: Path) -> list[dict]:
    """Spot-the-Diff (Jhamtani & Berg-Kirkpatrick 2018): pairs of surveillance-camera frames.

    Layout as in github.com/harsh19/spot-the-diff: ``data/annotations/{train,val,test}.json`` (a list of
    ``{"img_id", "sentences"}``) and the ``resized_images`` folder (``<img_id>.png`` before, ``<img_id>_2.png``
    after; ``images/`` is accepted too, as CLIP4IDC names it). ``DIR`` may be the repository's ``data`` folder or
    a folder holding ``annotations/`` (or the three json files) and ``resized_images/``.

    Protocol of the change-captioning follow-ups (CLIP4IDC preprocess/reformat_dataset.py and
    gt/spot_total_change_captions_reformat.json; FINER-MLLM and others reuse it): entries sharing an ``img_id``
    are merged, and every sentence is a separate reference for one generated sentence — not the sentences
    joined into one paragraph. Blank sentences are dropped (a pair left with none is skipped, with a warning).
    """
    root = Path(root)
    base.check_split(split, SPOT_SPLITS, root)
    path = base.find_file(root, [f"annotations/{split}.json", f"data/annotations/{split}.json", f"{split}.json"],
                          SPOT_LAYOUT)
    data = base.read_json(path)
    if not isinstance(data, list):
        raise base.DataError(f"{path}: must hold a list of {{img_id, sentences}} records, got {type(data).__name__}")
    groups: dict[str, list[str]] = {}
    for i, entry in enumerate(data):
        img_id = _id(entry, "img_id", path, f"entry {i}")
        sentences = base.get(entry, "sentences", path, img_id, list, nonempty=False)
        groups.setdefault(img_id, []).extend(_texts(sentences, path, img_id, "sentences"))
    images_dir = _directory(root, ("resized_images", "images", "data/resized_images"), SPOT_LAYOUT)
    records, empty = [], 0
    for img_id, refs in groups.items():
        if not refs:
            empty += 1
            continue
        before = base.image_file(images_dir, img_id, path, img_id, "img_id", (".png", ".jpg"))
        after = base.image_file(images_dir, f"{img_id}_2", path, img_id, "img_id", (".png", ".jpg"))
        records.append(base.record(img_id, [before, after], _prompt(2, CHANGE_PROMPT), refs[0], refs=refs))
    if empty:
        _warn(f"{path}: {empty} image pair(s) without a non-blank sentence left out")
    return records


# --------------------------------------------------------------------------------------------- CLEVR-Change


CLEVR_SPLITS = ("test", "val", "train")
CLEVR_LAYOUT = ("DIR/{change_captions,no_change_captions,splits}.json (type_mapping.json optional), "
                "DIR/images/CLEVR_default_<n>.png, DIR/sc_images/CLEVR_semantic_<n>.png, "
                "DIR/nsc_images/CLEVR_nonsemantic_<n>.png (DIR may be the tarball's data/ folder's parent)")


def read_clevr_change(root: Path, split: str, cache: Path) -> list[dict]:
    """CLEVR-Change (Park et al. 2019, "Robust Change Captioning").

    Layout of the released tarball (github.com/Seth-Park/RobustChangeCaptioning, README "Data"; it extracts to
    ``data/``): ``change_captions.json`` and ``no_change_captions.json`` (``{"CLEVR_default_000123.png":
    [captions]}``), ``splits.json`` (``{"train"|"val"|"test": [scene index]}``), ``type_mapping.json`` (change
    type -> image names), and the ``images/`` (before), ``sc_images/`` (semantic change) and ``nsc_images/``
    (distractor: viewpoint/lighting only) folders, one ``CLEVR_<kind>_%06d.png`` per scene index.

    Protocol of the authors' evaluate.py / utils/eval_utils.py: every split scene gives two items — the
    semantic-change pair (before vs ``sc``) scored against ``change_captions``, id ``000123``, and the distractor
    pair (before vs ``nsc``) scored against ``no_change_captions``, id ``000123_n`` — reported separately and
    together. ``meta.change`` (True / False) and ``meta.change_type`` (color, material, add, drop, move;
    ``no_change`` for distractors) let the harness split the scores the same way. The file names come from the
    index as in FINER-MLLM's loader (``CLEVR_default_%06d.png``); the authors index the sorted listing, which is
    the same set.
    """
    root = Path(root)
    base.check_split(split, CLEVR_SPLITS, root)
    if not (root / "splits.json").is_file() and (root / "data" / "splits.json").is_file():
        root = root / "data"
    splits_path = base.find_file(root, ["splits.json"], CLEVR_LAYOUT)
    change_path = base.find_file(root, ["change_captions.json"], CLEVR_LAYOUT)
    nochange_path = base.find_file(root, ["no_change_captions.json"], CLEVR_LAYOUT)
    splits = base.read_json(splits_path)
    indices = base.get(splits, split, splits_path, "(top level)", list)
    change, nochange = base.read_json(change_path), base.read_json(nochange_path)
    for p, d in ((change_path, change), (nochange_path, nochange)):
        if not isinstance(d, dict):
            raise base.DataError(f"{p}: must map image names to caption lists, got {type(d).__name__}")
    types: dict[int, str] = {}
    type_path = root / "type_mapping.json"
    if type_path.is_file():
        mapping = base.read_json(type_path)
        if not isinstance(mapping, dict):
            raise base.DataError(f"{type_path}: must map change types to image names, got {type(mapping).__name__}")
        for kind, names in mapping.items():
            for name in names if isinstance(names, list) else []:
                digits = re.findall(r"\d+", str(name))
                if digits:
                    types[int(digits[-1])] = kind
    dirs = {k: _directory(root, (k,), CLEVR_LAYOUT) for k in ("images", "sc_images", "nsc_images")}
    records = []
    for pos, value in enumerate(indices):
        if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
            raise base.fail(splits_path, f"{split}[{pos}]", split, f"must hold scene indices, got {value!r}")
        n = int(value)
        name = f"CLEVR_default_{n:06d}.png"
        before = base.image_file(dirs["images"], name, splits_path, name, split)
        for captions, cpath, folder, kind, rid, is_change in (
                (change, change_path, "sc_images", "semantic", f"{n:06d}", True),
                (nochange, nochange_path, "nsc_images", "nonsemantic", f"{n:06d}_n", False)):
            refs = _texts(base.get(captions, name, cpath, name, list), cpath, name, name)
            if not refs:
                raise base.fail(cpath, name, name, "holds no caption")
            after = base.image_file(dirs[folder], f"CLEVR_{kind}_{n:06d}.png", splits_path, name, split)
            meta: dict[str, Any] = {"refs": refs, "change": is_change, "scene": n}
            if not is_change:
                meta["change_type"] = "no_change"
            elif n in types:
                meta["change_type"] = types[n]
            # scored per type as well (the paper's table: each change type and the distractors)
            meta["category"] = meta.get("change_type", "change")
            records.append(base.record(rid, [before, after], _prompt(2, CHANGE_PROMPT), refs[0], **meta))
    return records


# --------------------------------------------------------------------------------------------- Birds-to-Words


BIRDS_SPLITS = ("test", "val", "train")
BIRDS_LAYOUT = ("DIR/birds-to-words-v1.0.tsv, DIR/images/<photo id>.jpg (the number after /photos/ in img1ImgURL / "
                "img2ImgURL)")
BIRDS_COLUMNS = ("img1ObservationURL", "img1ImgURL", "img1Species", "img1Selection", "img2ObservationURL",
                 "img2ImgURL", "img2Species", "img2Selection", "split", "annN", "description")
_PHOTO_ID = re.compile(r"/photos/(\d+)(?:[/?.]|$)")


def _photo_id(url: str) -> str | None:
    """The iNaturalist photo id of an image URL (``https://static.inaturalist.org/photos/647514/medium.jpg?…``),
    or the value itself when it already is an id."""
    url = url.strip()
    if url.isdigit():
        return url
    match = _PHOTO_ID.search(url)
    return match[1] if match else None


def read_birds_to_words(root: Path, split: str, cache: Path) -> list[dict]:
    """Birds-to-Words (Forbes et al. 2019, "Neural Naturalist"): paragraphs on how two bird photos differ.

    Layout: the released ``birds-to-words-v1.0.tsv`` (github.com/google-research-datasets/birds-to-words README:
    11 tab-separated columns img1ObservationURL, img1ImgURL, img1Species, img1Selection, img2…, split, annN,
    description; a header line is recognized and skipped) and the photos, which the release gives only as URLs:
    download each ``imgNImgURL`` once into ``DIR/images/<photo id>.jpg``, the photo id being the number after
    ``/photos/`` in the URL (iNaturalist's asset id, how the common download scripts name the files; any image
    extension is accepted). Rows of one split sharing both photos are one item; their descriptions (up to five
    annotators, ``annN``) are its references.
    """
    import csv

    root = Path(root)
    base.check_split(split, BIRDS_SPLITS, root)
    path = base.find_file(root, ["birds-to-words-v1.0.tsv", "*.tsv"], BIRDS_LAYOUT)
    with open(path, encoding="utf-8", newline="") as f:
        # Plain tab-separated text: no quoting (a description may start with a quote mark).
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    col = {name: i for i, name in enumerate(BIRDS_COLUMNS)}
    start = 0
    if rows and {"split", "description"} <= {c.strip() for c in rows[0]}:
        header = [c.strip() for c in rows[0]]
        missing = [c for c in BIRDS_COLUMNS if c not in header]
        if missing:
            raise base.fail(path, "line 1", "header", f"lacks column(s) {', '.join(missing)}")
        col, start = {name: header.index(name) for name in BIRDS_COLUMNS}, 1
    groups: dict[tuple[str, str], dict] = {}
    for line, row in enumerate(rows[start:], start + 1):
        if not any(c.strip() for c in row):
            continue
        where = f"line {line}"
        if len(row) <= max(col.values()):
            raise base.fail(path, where, "columns", f"has {len(row)} tab-separated field(s), expected "
                                                   f"{len(BIRDS_COLUMNS)}")
        if row[col["split"]].strip() != split:
            continue
        ids = []
        for key in ("img1ImgURL", "img2ImgURL"):
            pid = _photo_id(row[col[key]])
            if pid is None:
                raise base.fail(path, where, key, f"is not an iNaturalist photo URL (…/photos/<id>/…): "
                                                  f"{row[col[key]]!r}")
            ids.append(pid)
        description = row[col["description"]].strip()
        if not description:
            raise base.fail(path, where, "description", "is empty")
        group = groups.setdefault((ids[0], ids[1]), {"line": where, "refs": [],
                                                     "species": [row[col["img1Species"]].strip(),
                                                                 row[col["img2Species"]].strip()]})
        group["refs"].append(description)
    images_dir = _directory(root, ("images",), BIRDS_LAYOUT)
    index = _image_index(images_dir)
    records = []
    for (id1, id2), group in groups.items():
        paths = []
        for pid, key in ((id1, "img1ImgURL"), (id2, "img2ImgURL")):
            if pid not in index:
                raise base.fail(path, group["line"], key, f"names photo {pid}, not in {images_dir} (download "
                                                          f"the URL as images/{pid}.jpg)")
            paths.append(index[pid])
        refs = group["refs"]
        records.append(base.record(f"{id1}_{id2}", paths, _prompt(2, BIRDS_PROMPT), refs[0], refs=refs,
                                   species=group["species"], photo_ids=[id1, id2]))
    return records


# --------------------------------------------------------------------------------------------- Image Editing Request


IER_SPLITS = ("test", "valid", "train")
IER_LAYOUT = "DIR/<split>.json ([{img0, img1, sents, uid}]; split train|valid|test), DIR/images/<img0|img1 name>"


def read_image_editing_request(root: Path, split: str, cache: Path) -> list[dict]:
    """Image Editing Request (Tan et al. 2019, "Expressing Visual Relationships via Language").

    Layout: the split files of github.com/airsplay/VisualRelationships (``dataset/adobe/{train,valid,test}.json``,
    earlier ``data/``: a list of ``{"img0", "img1", "sents", "uid"}``, image names before / after the edit) and
    the released image pairs (Google Drive / archive.org "image-editing-dataset") in ``DIR/images/`` — the layout
    FINER-MLLM's loader reads.

    Protocol of the authors' src/evaluate.py (LangEvaluator): one prediction per ``uid``, scored against that
    entry's ``sents`` (three requests in valid/test). Entries sharing an image pair stay separate items, as there.
    """
    root = Path(root)
    base.check_split(split, IER_SPLITS, root)
    path = base.find_file(root, [f"{split}.json", f"dataset/adobe/{split}.json", f"data/{split}.json"], IER_LAYOUT)
    data = base.read_json(path)
    if not isinstance(data, list):
        raise base.DataError(f"{path}: must hold a list of {{img0, img1, sents, uid}} records, got "
                             f"{type(data).__name__}")
    images_dir = _directory(root, ("images",), IER_LAYOUT)
    records, seen = [], set()
    for i, entry in enumerate(data):
        uid = _id(entry, "uid", path, f"entry {i}")
        if uid in seen:
            raise base.fail(path, uid, "uid", "is not unique")
        seen.add(uid)
        names = [base.get(entry, key, path, uid, str) for key in ("img0", "img1")]
        refs = _texts(base.get(entry, "sents", path, uid, list), path, uid, "sents")
        if not refs:
            raise base.fail(path, uid, "sents", "holds no request")
        paths = [base.image_file(images_dir, Path(name).name, path, uid, key)
                 for name, key in zip(names, ("img0", "img1"))]
        records.append(base.record(uid, paths, _prompt(2, EDIT_PROMPT), refs[0], refs=refs))
    return records


# --------------------------------------------------------------------------------------------- group captions


GROUP_SPLITS = ("test", "val", "train")
GROUP_LAYOUT = ('DIR/<split>.jsonl (or .json, a list): {"id", "images": [paths relative to the file], '
                '"captions": [references]} per group')


def read_group_caption_data(root: Path, split: str, cache: Path) -> list[dict]:
    """Group captioning from a simple file (SAM Table 1a's task; SAM's own group-captioning data was not released,
    so this is mmlink's format for bringing your own).

    Layout: ``DIR/<split>.jsonl`` — one JSON object per line — or ``DIR/<split>.json`` holding a list of them::

        {"id": "g1", "images": ["g1/a.jpg", "g1/b.jpg", "g1/c.jpg"], "captions": ["dogs at the beach", "..."]}

    ``images``: two or more paths relative to the file's directory (absolute paths are kept); ``captions``: the
    reference captions (at least one) that fit the whole group. ``id`` must be unique.
    """
    root = Path(root)
    base.check_split(split, GROUP_SPLITS, root)
    path = base.find_file(root, [f"{split}.jsonl", f"{split}.json"], GROUP_LAYOUT)
    if path.suffix == ".jsonl":
        entries = [(f"line {n}", obj) for n, obj in base.read_jsonl(path)]
    else:
        data = base.read_json(path)
        if not isinstance(data, list):
            raise base.DataError(f"{path}: must hold a list of {{id, images, captions}} objects, got "
                                 f"{type(data).__name__}")
        entries = [(f"entry {i}", obj) for i, obj in enumerate(data)]
    records, seen = [], set()
    for where, obj in entries:
        gid = _id(obj, "id", path, where)
        if gid in seen:
            raise base.fail(path, gid, "id", "is not unique")
        seen.add(gid)
        images = base.get(obj, "images", path, gid, list)
        if len(images) < 2:
            raise base.fail(path, gid, "images", f"must list at least 2 images of the group, got {len(images)}")
        paths = []
        for value in images:
            if not isinstance(value, str) or not value.strip():
                raise base.fail(path, gid, "images", f"must hold image paths, got {value!r}")
            target = Path(value) if Path(value).is_absolute() else path.parent / value
            paths.append(base.image_file(target.parent, target.name, path, gid, "images"))
        refs = _texts(base.get(obj, "captions", path, gid, list), path, gid, "captions")
        if not refs:
            raise base.fail(path, gid, "captions", "holds no caption")
        records.append(base.record(gid, paths, _prompt(len(paths), GROUP_PROMPT), refs[0], refs=refs))
    return records


# --------------------------------------------------------------------------------------------- tasks


TASKS: list[dict] = [
    dict(name="vist", kind="generate", title="VIST", reader=read_vist, splits=VIST_SPLITS, max_new_tokens=160,
         description="storytelling over a 5-photo VIST sequence; refs: every story of that sequence (SAM Table 1b)",
         layout=VIST_LAYOUT, source="https://visionandlanguage.net/VIST/dataset.html"),
    dict(name="spot_the_diff", kind="generate", title="Spot-the-Diff", reader=read_spot_the_diff,
         splits=SPOT_SPLITS, max_new_tokens=48,
         description="one sentence on what changed between two street-camera frames (SAM Table 3)",
         layout=SPOT_LAYOUT, source="https://github.com/harsh19/spot-the-diff"),
    dict(name="clevr_change", kind="generate", title="CLEVR-Change", reader=read_clevr_change,
         splits=CLEVR_SPLITS, max_new_tokens=48,
         description="what changed between two CLEVR scenes, semantic changes and no-change distractors "
                     "(meta.change) (SAM Table 3)",
         layout=CLEVR_LAYOUT, source="https://github.com/Seth-Park/RobustChangeCaptioning"),
    dict(name="birds_to_words", kind="generate", title="Birds-to-Words", reader=read_birds_to_words,
         splits=BIRDS_SPLITS, max_new_tokens=128,
         description="a paragraph on how two bird photos differ (SAM Table 3)",
         layout=BIRDS_LAYOUT, source="https://github.com/google-research-datasets/birds-to-words"),
    dict(name="image_editing_request", kind="generate", title="Image Editing Request",
         reader=read_image_editing_request, splits=IER_SPLITS, max_new_tokens=48,
         description="the editing request that turned one image into the other (SAM Table 3)",
         layout=IER_LAYOUT, source="https://github.com/airsplay/VisualRelationships"),
    dict(name="group_caption_data", kind="generate", title="Group captioning (file)", reader=read_group_caption_data,
         splits=GROUP_SPLITS, max_new_tokens=48,
         description="one caption for a group of images, from your own file (SAM Table 1a; SAM's data is "
                     "unreleased)",
         layout=GROUP_LAYOUT, source="docs/evaluation.md (mmlink's own format)"),
]

__all__ = ["TASKS", "read_birds_to_words", "read_clevr_change", "read_group_caption_data",
           "read_image_editing_request", "read_spot_the_diff", "read_vist"]
