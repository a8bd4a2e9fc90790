"""Readers for CaD-VI's evaluation (Lin et al. 2024, Tables 1 and 2): BISON, SVO-Probes, NLVR2, EQBEN, COLA, CaD-QA.

Each closed-ended benchmark is read in two forms, chosen by the split:

* ``cadvi`` (the default) — the subsets the CaD-VI authors evaluated on, exactly as their repository ships them
  (https://github.com/wlin-at/CaD-VI, ``eval_json_files/{BISON,SVO_Probes,NLVR2,EQBEN,COLA}.jsonl``, listed in
  ``docs/DATASETS.md``): one JSON object a line, ``{"image": [name, name], "text": prompt, "answer": ...,
  "question_id": ...}`` (SVO adds ``"category"``), the images in one folder (``--image-folder`` of their
  ``scripts/v1_5/eval/*.sh``). Sizes: BISON 150, SVO 1500, NLVR2 150 (drawn from test1), EQBEN 120 pairs (20 from
  each of six subsets of EQBEN's MLLM subset), COLA 210 pairs (all of the multi-object set). The prompt is the
  authors' own and is used verbatim; their ``utils/compute_eval_acc`` scores a greedy answer (256 new tokens) by
  exact match of the option (``"A"``/``"B"``, ``"True"``/``"False"``). EQBEN and COLA come as two rows per image
  pair (``<i>_0`` and ``<i>_1``: "which image suits caption k?", answers A then B) and a pair counts only when both
  rows are right; here such a pair is one ``pair_match`` record (asked in their rounds: ``meta.rounds`` "caption").
* the data set as its own authors released it — BISON's val2014 annotations, the SVO-Probes CSV, NLVR2's
  JSON-lines splits, EQBEN's MLLM subset (``eqben_vllm``), COLA's multi-object JSON — asked in CaD-VI's prompt form.

CaD-QA (``cad_qa``, the judge task of Table 2) has one split, ``test``: the 7,520 questions of the CaD-Inst release
(``CaD_QA_eval.jsonl`` in the same form as above, or the Hugging Face ``CaD_QA_eval`` parquet config) on Visual
Genome images. Nothing is downloaded; where a release lists images by URL only, the images must be saved under
their file names (the layouts below say which), and a missing one is named in the error.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Callable, Sequence

from mmlink.eval.benchmarks import base

CADVI_SOURCE = "https://github.com/wlin-at/CaD-VI/blob/main/docs/DATASETS.md"
CHOICES_AB = ["A", "B"]
CHOICES_TF = ["True", "False"]
PAIR_ANSWERS = ["1-A, 2-B", "1-B, 2-A"]
# CaD-VI's prompts, as their eval_json_files hold them (the same words for BISON, SVO, EQBEN and COLA).
_SUITS = ("Which image suits the caption \"{}\" better?\nA. Image 1\nB. Image 2\n"
          "Answer with the option's letter from the given choices directly.")
_NLVR2 = (f"There are two images, one on the left and one on the right.\nLeft image: {base.IMAGE}\n"
          f"Right image: {base.IMAGE}\n" + "Is the statement \"{}\" True or False?\n"
          "Answer with \"True\" or \"False\" directly.")
_QUOTED = re.compile(r'(?:caption|statement) "(.*)"')  # greedy within the line: captions may hold quotes
_PAIR = re.compile(r"\s*1-([AB]),\s*2-([AB])\s*")  # a pair_match answer, as mmlink.eval.tasks reads it
_COLA_NAME = re.compile(r"\d+_(.+)")  # CaD-VI names COLA's images "<pair index>_<Visual Genome file>"

Candidates = Callable[[str], Sequence[str]]


def suits_prompt(caption: str) -> str:
    """CaD-VI's two-image question "Which image suits the caption ... better?" with options A/B."""
    return base.image_prefix(2) + _SUITS.format(caption)


def nlvr2_prompt(statement: str) -> str:
    """CaD-VI's NLVR2 question: the left and right image, then "True or False?"."""
    return _NLVR2.format(statement)


def _coin(*key: Any) -> int:
    """0 or 1 from a hash of ``key``: an order that is fixed for a record whatever the file order or the Python hash
    seed, and balanced over many records (the positive image, or text A, is not always the first)."""
    return hashlib.sha1("\x1f".join(map(str, key)).encode()).digest()[0] & 1


def _locate(root: Path, names: Sequence[str], path: Path, rid: Any, field: str) -> str:
    """The first of ``names`` (relative to ``root``) that is a file; else an error naming every path tried."""
    for name in names:
        candidate = root / name
        if candidate.is_file():
            return str(candidate.resolve())
    looked = ", ".join(str(root / n) for n in names)
    raise base.fail(path, rid, field, f"names an image that is not there (looked for {looked})")


def _row_id(row: Any, key: str, path: Path, where: str, kind: type | tuple[type, ...] = str) -> Any:
    """``row[key]``, the row's id, checked; an error before the id is known names the row by ``where``."""
    label = row.get(key, where) if isinstance(row, dict) else where
    return base.get(row, key, path, label, kind)


def _in_folder(*folders: str) -> Candidates:
    """Image name -> candidate paths: the name under each folder ("" = the root itself)."""
    return lambda name: [f"{d}/{name}" if d else name for d in folders]


# --------------------------------------------------------------------------------------------- CaD-VI's subsets


def _cadvi_file(root: Path, name: str, layout: str) -> Path:
    return base.find_file(root, [f"{name}.jsonl", f"eval_json_files/{name}.jsonl"], layout)


def _cadvi_row(path: Path, line: int, row: Any) -> tuple[Any, list[str], str, str]:
    """(question_id as in the file, image names, prompt, answer) of one line of a CaD-VI eval file, checked."""
    qid = _row_id(row, "question_id", path, f"line {line}", (int, str))
    names = base.get(row, "image", path, qid, list)
    if len(names) != 2 or not all(isinstance(n, str) and n for n in names):
        raise base.fail(path, qid, "image", f"must list the pair's 2 image names, got {names!r}")
    text = base.get(row, "text", path, qid, str)
    if text.count(base.IMAGE) != 2:
        raise base.fail(path, qid, "text", f"must hold 2 {base.IMAGE} placeholders, got {text.count(base.IMAGE)}")
    answer = base.get(row, "answer", path, qid, str)
    return qid, names, text, answer


def _cadvi_rank(root: Path, name: str, choices: list[str], where: Candidates, layout: str) -> list[dict]:
    """A CaD-VI file of two-image questions with a closed answer (BISON, SVO, NLVR2): one rank record a line."""
    path = _cadvi_file(root, name, layout)
    records, seen = [], set()
    for line, row in base.read_jsonl(path):
        qid, names, text, answer = _cadvi_row(path, line, row)
        if str(qid) in seen:
            raise base.fail(path, qid, "question_id", "is repeated")
        seen.add(str(qid))
        if answer not in choices:
            raise base.fail(path, qid, "answer", f"must be one of {choices}, got {answer!r}")
        images = [_locate(root, where(n), path, qid, "image") for n in names]
        meta: dict[str, Any] = {"choices": list(choices), "answer": answer}
        quoted = _QUOTED.search(text)
        if quoted:
            meta["text"] = quoted.group(1)
        if isinstance(row.get("category"), str):
            meta["category"] = row["category"]  # SVO: which part of the triplet the negative image changes
        records.append(base.record(str(qid), images, text, answer, **meta))
    return records


def _rank_record(rid: str, images: list[str], prompt: str, answer: str, choices: list[str], text: str,
                 **meta: Any) -> dict:
    """A rank record read from a release: ``answer`` is one of ``choices``; ``text``: the caption or statement."""
    return base.record(rid, images, prompt, answer, choices=list(choices), answer=answer, text=text, **meta)


def _pair_record(rid: str, images: list[str], text1: str, text2: str, salt: str, **meta: Any) -> dict:
    """A pair_match record: ``text1`` belongs to image 1, ``text2`` to image 2; which is labelled "A" is drawn by
    `_coin`, so the answer is "1-A, 2-B" for about half the pairs."""
    flip = _coin(salt, rid)
    texts = {"A": text2, "B": text1} if flip else {"A": text1, "B": text2}
    answer = PAIR_ANSWERS[flip]
    prompt = (base.image_prefix(2) + f'Text A: "{texts["A"]}"\nText B: "{texts["B"]}"\n'
              'Match each image to its text. Answer like "1-A, 2-B".')
    # CaD-VI's rounds ask, per caption, which image suits it (mmlink.eval.tasks.pair_match_items, rounds "caption")
    return base.record(rid, images, prompt, answer, texts=texts, answer=answer, choices=list(PAIR_ANSWERS),
                       rounds="caption", round_prompts=[suits_prompt(text1), suits_prompt(text2)], **meta)


def _cadvi_pairs(root: Path, name: str, where: Candidates, layout: str) -> list[dict]:
    """A CaD-VI two-round file (EQBEN, COLA): rows ``<i>_0`` and ``<i>_1`` ask which image of the same pair suits
    caption 0 and caption 1; together they are one pair_match record ``<i>``."""
    path = _cadvi_file(root, name, layout)
    rounds: dict[str, dict[str, tuple[list[str], str, str]]] = {}
    for line, row in base.read_jsonl(path):
        qid, names, text, answer = _cadvi_row(path, line, row)
        pair, sep, k = str(qid).rpartition("_")
        if not (sep and pair and k in ("0", "1")):
            raise base.fail(path, qid, "question_id", "must be '<pair>_0' or '<pair>_1' (one row per caption)")
        if answer not in CHOICES_AB:
            raise base.fail(path, qid, "answer", f"must be 'A' or 'B' (image 1 or 2), got {answer!r}")
        quoted = _QUOTED.search(text)
        if not quoted:
            raise base.fail(path, qid, "text", 'holds no caption (expected CaD-VI\'s \'Which image suits the caption '
                                               '"..." better?\')')
        slot = rounds.setdefault(pair, {})
        if k in slot:
            raise base.fail(path, qid, "question_id", "is repeated")
        slot[k] = (names, quoted.group(1), answer)
    records = []
    for pair, slot in rounds.items():
        for k in ("0", "1"):
            if k not in slot:
                raise base.fail(path, f"{pair}_{k}", "question_id", "is missing: a pair needs both of its rounds")
        (names, c0, a0), (names1, c1, a1) = slot["0"], slot["1"]
        if names1 != names:
            raise base.fail(path, f"{pair}_1", "image", f"must name the same two images as {pair}_0 ({names})")
        if a0 == a1:
            raise base.fail(path, f"{pair}_1", "answer", f"must differ from {pair}_0's ({a0}): each caption "
                                                         "belongs to the other image")
        first, second = (c0, c1) if a0 == "A" else (c1, c0)
        images = [_locate(root, where(n), path, pair, "image") for n in names]
        records.append(_pair_record(pair, images, first, second, name))
    return records


# --------------------------------------------------------------------------------------------- BISON

BISON_SPLITS = ("cadvi", "val2014")
BISON_LAYOUT = ("cadvi: DIR/BISON.jsonl (CaD-VI eval_json_files), DIR/images/COCO_val2014_<id>.jpg; val2014: "
                "DIR/bison_annotations.cocoval2014.json, DIR/val2014/COCO_val2014_<id>.jpg (or DIR/images/)")


def read_bison(root: Path, split: str, cache: Path) -> list[dict]:
    """BISON (Hu et al. 2019): a caption and two COCO val2014 images, which one it describes.

    ``cadvi``: CaD-VI's 150 questions, ``DIR/BISON.jsonl`` (or ``DIR/eval_json_files/BISON.jsonl``), images in
    ``DIR/images/``, ``DIR/`` or ``DIR/val2014/``. ``val2014``: the full release
    (github.com/facebookresearch/binary-image-selection, ``annotations/bison_annotations.cocoval2014.json``:
    ``{"info", "data": [{"bison_id", "caption", "image_candidates": [{"image_id", "image_filename"}] x2,
    "true_image_id"}]}``; a bare list of such entries is read too), images by ``image_filename`` in
    ``DIR/val2014/`` or ``DIR/images/``; the candidates keep the file's order, options A/B in CaD-VI's prompt.
    """
    root = Path(root)
    base.check_split(split, BISON_SPLITS, root)
    where = _in_folder("images", "", "val2014")
    if split == "cadvi":
        return _cadvi_rank(root, "BISON", CHOICES_AB, where, BISON_LAYOUT)
    path = base.find_file(root, ["bison_annotations.cocoval2014.json",
                                 "annotations/bison_annotations.cocoval2014.json"], BISON_LAYOUT)
    data = base.read_json(path)
    entries = data.get("data") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise base.DataError(f"{path}: expected {{'data': [...]}} or a list of BISON entries")
    records = []
    for n, entry in enumerate(entries):
        bid = _row_id(entry, "bison_id", path, f"entry {n}", int)
        caption = base.get(entry, "caption", path, bid)
        cands = base.get(entry, "image_candidates", path, bid, list)
        if len(cands) != 2 or not all(isinstance(c, dict) and isinstance(c.get("image_id"), int)
                                      and isinstance(c.get("image_filename"), str) for c in cands):
            raise base.fail(path, bid, "image_candidates", "must hold 2 objects {image_id: int, image_filename: str}")
        true_id = base.get(entry, "true_image_id", path, bid, int)
        ids = [c["image_id"] for c in cands]
        if true_id not in ids:
            raise base.fail(path, bid, "true_image_id", f"{true_id} is not one of the candidates {ids}")
        answer = CHOICES_AB[ids.index(true_id)]
        images = [_locate(root, where(c["image_filename"]), path, bid, "image_candidates") for c in cands]
        records.append(_rank_record(str(bid), images, suits_prompt(caption), answer, CHOICES_AB, caption))
    return records


# --------------------------------------------------------------------------------------------- SVO-Probes

SVO_SPLITS = ("cadvi", "full")
SVO_LAYOUT = ("cadvi: DIR/SVO_Probes.jsonl (CaD-VI eval_json_files), DIR/images/<name in its image list>; full: "
              "DIR/svo_probes.csv, DIR/images/<pos_image_id / neg_image_id>.jpg (any image suffix; zero-padded "
              "to 5 digits also found)")
_NEG_COLUMNS = (("subj_neg", "subject"), ("verb_neg", "verb"), ("obj_neg", "object"))


def _svo_image(root: Path, value: str, path: Path, rid: str, field: str) -> str:
    if not re.fullmatch(r"\d+(\.0)?", value.strip()):
        raise base.fail(path, rid, field, f"must be an integer image id, got {value!r}")
    number = int(float(value))
    names = [f"images/{stem}{s}" for stem in dict.fromkeys((str(number), f"{number:05d}"))
             for s in base.IMAGE_SUFFIXES]
    return _locate(root, names, path, rid, field)


def read_svo(root: Path, split: str, cache: Path) -> list[dict]:
    """SVO-Probes (Hendricks & Nematzadeh 2021): a subject-verb-object sentence and two images, the negative one
    differing in the subject, the verb or the object; which image shows the sentence.

    ``cadvi``: CaD-VI's 1,500 questions (500 per negative type), ``DIR/SVO_Probes.jsonl``, images in
    ``DIR/images/`` or ``DIR/``. ``full``: the release (github.com/deepmind/svo_probes, ``svo_probes.csv``:
    ``sentence, pos_triplet, neg_triplet, subj_neg, verb_neg, obj_neg, pos_url, neg_url, pos_image_id,
    neg_image_id``; the images are listed by URL only, so they must be saved as ``DIR/images/<image id>.<ext>``).
    Record id = the row's 0-based index among the data rows (the pandas index of the authors' notebook). The
    positive image is image 1 or image 2 by a hash of the row index (`_coin`), so about half the answers are B.
    """
    root = Path(root)
    base.check_split(split, SVO_SPLITS, root)
    if split == "cadvi":
        return _cadvi_rank(root, "SVO_Probes", CHOICES_AB, _in_folder("images", ""), SVO_LAYOUT)
    import csv

    path = base.find_file(root, ["svo_probes.csv"], SVO_LAYOUT)
    records = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = sorted({"sentence", "pos_image_id", "neg_image_id"} - set(reader.fieldnames or ()))
        if missing:
            raise base.DataError(f"{path}: missing column(s) {', '.join(missing)} (columns: {reader.fieldnames})")
        for i, row in enumerate(reader):
            rid = str(i)
            sentence = (row.get("sentence") or "").strip()
            if not sentence:
                raise base.fail(path, rid, "sentence", "is empty")
            pos = _svo_image(root, row.get("pos_image_id") or "", path, rid, "pos_image_id")
            neg = _svo_image(root, row.get("neg_image_id") or "", path, rid, "neg_image_id")
            flip = _coin("svo", rid)
            answer = CHOICES_AB[flip]
            kinds = [name for col, name in _NEG_COLUMNS if str(row.get(col, "")).strip().lower() in ("true", "1")]
            meta: dict[str, Any] = {"category": kinds[0]} if len(kinds) == 1 else {}
            for key in ("pos_triplet", "neg_triplet"):
                if row.get(key):
                    meta[key] = row[key]
            records.append(_rank_record(rid, [neg, pos] if flip else [pos, neg], suits_prompt(sentence), answer,
                                        CHOICES_AB, sentence, **meta))
    return records


# --------------------------------------------------------------------------------------------- NLVR2

NLVR2_SPLITS = ("cadvi", "test1", "dev", "test2", "train")
NLVR2_LAYOUT = ("cadvi: DIR/NLVR2.jsonl (CaD-VI eval_json_files), DIR/images/test1-<set>-<pair>-img0.png; "
                "test1/dev/test2: DIR/<split>.json (or DIR/data/, DIR/nlvr2/data/), images "
                "DIR/<split>/<split>-<set>-<pair>-img{0,1}.png (or DIR/images/<split>/); train: "
                "DIR/images/train/<directory>/ (or DIR/train/<directory>/)")


def _nlvr2_where(name: str, directory: Any = None) -> list[str]:
    """Where NLVR2's image ``name`` may be: its split's folder (the direct-download zips unpack to ``dev/``,
    ``test1/``, ``images/train/<directory>/``), or one flat folder (CaD-VI's image folder)."""
    split = name.split("-", 1)[0]
    folders = [f"images/{split}/{directory}", f"{split}/{directory}"] if directory is not None else []
    folders += [split, f"images/{split}", "images", ""]
    return [f"{d}/{name}" if d else name for d in folders]


def read_nlvr2(root: Path, split: str, cache: Path) -> list[dict]:
    """NLVR2 (Suhr et al. 2019): is a statement true of a left and a right image.

    ``cadvi`` (the default): CaD-VI's 150 questions drawn from test1 (the split the paper reports),
    ``DIR/NLVR2.jsonl``. ``test1``/``dev``/``test2``/``train``: the release (github.com/lil-lab/nlvr,
    ``nlvr2/data/<split>.json``, JSON lines with ``identifier`` ``split-set_id-pair_id-sentence_id``,
    ``sentence``, ``label`` "True"/"False", ``directory`` in train); per its README the images of identifier
    ``dev-850-0-0`` are ``dev-850-0-img0.png`` (left) and ``dev-850-0-img1.png`` (right). Options True/False in
    CaD-VI's prompt.
    """
    root = Path(root)
    base.check_split(split, NLVR2_SPLITS, root)
    if split == "cadvi":
        return _cadvi_rank(root, "NLVR2", CHOICES_TF, _nlvr2_where, NLVR2_LAYOUT)
    path = base.find_file(root, [f"{split}.json", f"data/{split}.json", f"nlvr2/data/{split}.json"], NLVR2_LAYOUT)
    records = []
    for line, row in base.read_jsonl(path):
        ident = _row_id(row, "identifier", path, f"line {line}")
        parts = ident.split("-")
        if len(parts) != 4:
            raise base.fail(path, ident, "identifier", "must look like 'split-set_id-pair_id-sentence_id'")
        sentence = base.get(row, "sentence", path, ident)
        truth = base.get(row, "label", path, ident).strip().capitalize()
        if truth not in CHOICES_TF:
            raise base.fail(path, ident, "label", f"must be 'True' or 'False', got {row['label']!r}")
        stem = "-".join(parts[:3])
        directory = row.get("directory")
        images = [_locate(root, _nlvr2_where(f"{stem}-img{k}.png", directory), path, ident, "identifier")
                  for k in (0, 1)]
        records.append(_rank_record(ident, images, nlvr2_prompt(sentence), truth, CHOICES_TF, sentence))
    return records


# --------------------------------------------------------------------------------------------- EQBEN

EQBEN_SPLITS = ("cadvi", "vllm")
EQBEN_LAYOUT = ("cadvi: DIR/EQBEN.jsonl (CaD-VI eval_json_files), DIR/images/<subset>/<id>/image{0,1}.png "
                "(the eqben_vllm.zip images); vllm: DIR/all_select.json, DIR/images/<image0 / image1 path> "
                "(eqben_vllm.zip unpacked; DIR may also hold it as DIR/eqben_vllm/)")


def read_eqben(root: Path, split: str, cache: Path) -> list[dict]:
    """EQBEN (Wang et al. 2023): two images one minimal change apart and their two captions; match them.

    ``cadvi``: CaD-VI's 120 pairs (``DIR/EQBEN.jsonl``, 20 from each of eqbensd, eqbenkubric_{cnt,loc,attr},
    eqbengebc, eqbenag), images from EQBEN's MLLM subset under ``DIR/images/`` or ``DIR/``. ``vllm``: that subset
    as released (the ``eqben_vllm.zip`` linked from github.com/Wangt-CN/EqBen; read as in
    github.com/linzhiqiu/t2v_metrics ``EqBen_Mini``): ``all_select.json``, a list of ``{"image0", "caption0",
    "image1", "caption1"}`` (caption k describes image k), images under ``images/``. Text A/B order by `_coin`.
    """
    root = Path(root)
    base.check_split(split, EQBEN_SPLITS, root)
    if split == "cadvi":
        return _cadvi_pairs(root, "EQBEN", _in_folder("images", ""), EQBEN_LAYOUT)
    path = base.find_file(root, ["all_select.json", "eqben_vllm/all_select.json"], EQBEN_LAYOUT)
    data = base.read_json(path)
    if not isinstance(data, list):
        raise base.DataError(f"{path}: expected a list of {{image0, caption0, image1, caption1}} objects")
    home = path.parent
    records = []
    for i, item in enumerate(data):
        rid = str(i)
        names = [base.get(item, f"image{k}", path, rid) for k in (0, 1)]
        captions = [base.get(item, f"caption{k}", path, rid) for k in (0, 1)]
        images = [_locate(home, [f"images/{name}", name], path, rid, f"image{k}") for k, name in enumerate(names)]
        subset = names[0].split("/", 1)[0]  # eqbensd, eqbenkubric_cnt, ...
        records.append(_pair_record(rid, images, captions[0], captions[1], "EQBEN", subset=subset))
    return records


# --------------------------------------------------------------------------------------------- COLA

COLA_SPLITS = ("cadvi", "multiobjects")
COLA_LAYOUT = ("cadvi: DIR/COLA.jsonl (CaD-VI eval_json_files), DIR/images/<pair>_<vg id>.jpg (or "
               "DIR/images/<vg id>.jpg); multiobjects: DIR/COLA_multiobjects_matching_benchmark.json (or "
               "DIR/data/), DIR/images/<vg id>.jpg = the URL's file name")


def _cola_where(name: str) -> list[str]:
    names = [name]
    bare = _COLA_NAME.fullmatch(name)
    if bare:  # CaD-VI's "<pair>_<vg id>.jpg" is also found under the plain Visual Genome name
        names.append(bare.group(1))
    return [f"{d}/{n}" if d else n for n in names for d in ("images", "")]


def read_cola(root: Path, split: str, cache: Path) -> list[dict]:
    """COLA multi-object matching (Ray et al. 2023): two images with the same objects, attributes swapped, and
    their two captions; match them.

    ``cadvi``: CaD-VI's 210 pairs (``DIR/COLA.jsonl``; images named ``<pair index>_<Visual Genome id>.jpg``).
    ``multiobjects``: the release (github.com/arijitray1993/COLA,
    ``data/COLA_multiobjects_matching_benchmark.json``: a list of ``[image 1 URL, caption 1, image 2 URL,
    caption 2]``, caption k true of image k); images are URLs only, saved as ``DIR/images/<URL file name>``
    (e.g. ``2390970.jpg``; CaD-VI's ``<index>_2390970.jpg`` is found too). Text A/B order by `_coin`.
    """
    root = Path(root)
    base.check_split(split, COLA_SPLITS, root)
    if split == "cadvi":
        return _cadvi_pairs(root, "COLA", _cola_where, COLA_LAYOUT)
    path = base.find_file(root, ["COLA_multiobjects_matching_benchmark.json",
                                 "data/COLA_multiobjects_matching_benchmark.json"], COLA_LAYOUT)
    data = base.read_json(path)
    if not isinstance(data, list):
        raise base.DataError(f"{path}: expected a list of [image 1 URL, caption 1, image 2 URL, caption 2]")
    records = []
    for i, entry in enumerate(data):
        rid = str(i)
        if not (isinstance(entry, list) and len(entry) == 4 and all(isinstance(x, str) and x.strip() for x in entry)):
            raise base.fail(path, rid, "entry", f"must be [image 1 URL, caption 1, image 2 URL, caption 2], got "
                                                f"{json.dumps(entry)[:80]}")
        images = []
        for k, url in ((1, entry[0]), (2, entry[2])):
            name = url.rstrip("/").rsplit("/", 1)[-1]
            images.append(_locate(root, [f"images/{name}", name, f"images/{i}_{name}", f"{i}_{name}"], path, rid,
                                  f"image {k} URL"))
        records.append(_pair_record(rid, images, entry[1], entry[3], "COLA"))
    return records


# --------------------------------------------------------------------------------------------- CaD-QA

CAD_QA_SPLITS = ("test",)
CAD_QA_LAYOUT = ("DIR/CaD_QA_eval.jsonl (or DIR/json_files/, DIR/eval_json_files/; or the Hugging Face copy "
                 "DIR/CaD_QA_eval/CaD_QA_7.5K.parquet or a save_to_disk of its CaD_QA_eval config), Visual Genome "
                 "images DIR/images/VG_100K{,_2}/<id>.jpg (or DIR/VG_100K{,_2}/, DIR/vg/VG_100K{,_2}/)")


def _image_list(value: Any, path: Path, rid: Any) -> list[str]:
    """The parquet copy keeps the image pair as a string: a JSON or Python list literal."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                raise base.fail(path, rid, "image", f"must be a list of 2 image paths, got {value[:80]!r}") from None
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, str) and v for v in value)):
        raise base.fail(path, rid, "image", f"must be a list of 2 image paths, got {value!r}")
    return list(value)


def read_cad_qa(root: Path, split: str, cache: Path) -> list[dict]:
    """CaD-QA (CaD-VI §4, Table 2): open questions on the commonalities and differences of two Visual Genome
    images, the reference answer rated 0-5 by an LLM judge.

    The release (huggingface.co/datasets/wlin21at/CaD-Inst): ``json_files/CaD_QA_eval.jsonl`` (also in the
    GitHub repo's ``eval_json_files/``), lines ``{"image": ["VG_100K_2/2406825.jpg", ...], "text": "Image 1:
    <image>\\nImage 2: <image>\\n<question>", "answer", "question_id"}``; or the dataset's ``CaD_QA_eval`` config
    (``CaD_QA_eval/CaD_QA_7.5K.parquet``, split test: ``id, image`` (the pair, as a string), ``question,
    answer``). The prompt is the file's (a bare question gets CaD-VI's ``Image 1: <image>`` prefix).
    """
    root = Path(root)
    base.check_split(split, CAD_QA_SPLITS, root)
    rows: list[tuple[Path, Any, Any]]
    if any((root / marker).is_file() for marker in ("dataset_dict.json", "dataset_info.json", "state.json")):
        rows = [(Path(src), i, row) for src, i, row in base.hf_rows(root, split, CAD_QA_LAYOUT)]
    else:
        path = base.find_file(root, ["CaD_QA_eval.jsonl", "json_files/CaD_QA_eval.jsonl",
                                     "eval_json_files/CaD_QA_eval.jsonl", "CaD_QA_eval/*.parquet"], CAD_QA_LAYOUT)
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            rows = [(path, i, row) for i, row in enumerate(pq.read_table(path).to_pylist())]
        else:
            rows = [(path, n, row) for n, row in base.read_jsonl(path)]
    where = _in_folder("images", "", "vg")
    records, seen = [], set()
    for path, n, row in rows:
        if isinstance(row, dict) and "text" in row:  # CaD-VI's eval file
            rid, names, prompt, answer = _cadvi_row(path, n, row)
            rid, id_field = str(rid), "question_id"
        else:  # the parquet config
            rid, id_field = str(_row_id(row, "id", path, f"row {n}", (str, int))), "id"
            names = _image_list(base.get(row, "image", path, rid, (str, list)), path, rid)
            question = base.get(row, "question", path, rid)
            prompt = question if base.IMAGE in question else base.image_prefix(2) + question
            if prompt.count(base.IMAGE) != 2:
                raise base.fail(path, rid, "question", f"must hold 2 {base.IMAGE} placeholders or none")
            answer = base.get(row, "answer", path, rid)
        if rid in seen:
            raise base.fail(path, rid, id_field, "is repeated")
        seen.add(rid)
        images = [_locate(root, where(name), path, rid, "image") for name in names]
        question = re.sub(r"Image \d+:\s*", "", prompt.replace(base.IMAGE, "")).strip()
        records.append(base.record(rid, images, prompt, answer, question=question))
    return records


# --------------------------------------------------------------------------------------------- tasks

# Built-in tasks of the same names (mmlink.eval.tasks) keep their kind, title and chance; these add the readers.
TASKS: list[dict] = [
    {"name": "bison", "kind": "rank", "reader": read_bison, "splits": BISON_SPLITS, "layout": BISON_LAYOUT,
     "source": f"{CADVI_SOURCE} ; https://github.com/facebookresearch/binary-image-selection"},
    {"name": "svo", "kind": "rank", "reader": read_svo, "splits": SVO_SPLITS, "layout": SVO_LAYOUT,
     "source": f"{CADVI_SOURCE} ; https://github.com/google-deepmind/svo_probes"},
    {"name": "nlvr2", "kind": "rank", "reader": read_nlvr2, "splits": NLVR2_SPLITS, "layout": NLVR2_LAYOUT,
     "source": f"{CADVI_SOURCE} ; https://github.com/lil-lab/nlvr/tree/master/nlvr2"},
    {"name": "eqben", "kind": "pair_match", "reader": read_eqben, "splits": EQBEN_SPLITS, "layout": EQBEN_LAYOUT,
     "source": f"{CADVI_SOURCE} ; https://github.com/Wangt-CN/EqBen"},
    {"name": "cola", "kind": "pair_match", "reader": read_cola, "splits": COLA_SPLITS, "layout": COLA_LAYOUT,
     "source": f"{CADVI_SOURCE} ; https://github.com/arijitray1993/COLA"},
    {"name": "cad_qa", "kind": "judge", "reader": read_cad_qa, "splits": CAD_QA_SPLITS, "layout": CAD_QA_LAYOUT,
     "source": "https://huggingface.co/datasets/wlin21at/CaD-Inst"},
]

__all__ = ["TASKS", "nlvr2_prompt", "read_bison", "read_cad_qa", "read_cola", "read_eqben",
           "read_nlvr2", "read_svo", "suits_prompt"]
