"""VisLingInstruct's zero-shot evaluation sets (paper Table 1 — InstructBLIP's held-out sets), read as their authors
release them.

Which part of each set and which instruction come from the paper itself (VisLingInstruct, Zhu et al. 2024, in
``../shared/papers/vislinginstruct.txt``: App. D Table 3, and App. F Table 4 — "initial instructions ...
predominantly sourced from InstructBLIP"):

=============  ===============  ======  ====================================================================
set            part (count)     kind    initial instruction (after ``<image>``)
=============  ===============  ======  ====================================================================
Flickr30K      test (1000)      gen.    ``A short image description:``
NoCaps         val (4500)       gen.    ``A short image description:``
VSR            test (1222)      rank    ``Based on the image, is this statement true or false? {}``
GQA            test-dev (12578) vqa     ``Question: {} \\n Short answer:``
IconQA         test (6316)      rank    ``Question: {} Options: {} \\n Answer:``
VizWiz         "test-dev" 4319  vqa     ``Answer the question based on the image. Reply in one phrase/word or
                                        say 'unanswerable'. Question: {} \\n Short answer:``
TextVQA        val (5000)       vqa     ``OCR tokens: {} Question: {} \\n Short answer:``
Visual Dialog  val (2064)       rank    ``Question: {} \\n Short answer:``
ScienceQA      test (2017)      rank    ``Given the image, choose the correct option for the following question.
                                        Question: {} \\n Options: {}``
HatefulMemes   val (1040)       rank    ``This is an image with: {} written on it. Is it hateful?``
=============  ===============  ======  ====================================================================

The counts identify the parts: VSR's 1222 is the current zero-shot test split, IconQA's 6316 the multi-text-choice
test problems, VizWiz's 4319 the val set (its test set has no public answers), ScienceQA's 2017 the test problems
with an image, HatefulMemes' 1040 dev_seen (500) + dev_unseen (540) — split ``dev`` here — and Visual Dialog's 2064
the val dialogs (this reader makes one item per round, 20,640, as VisDial's own evaluation does). Options are
listed "alphabetically ... (a) apple (b) banana (c) pineapple" (App. F). The paper (§4.3) ranks the candidates by
language-model loss for ScienceQA, IconQA, HatefulMemes and Visual Dialog and generates for the rest, so VSR
generates its answer and matches it to ``true``/``false`` (``option_scoring="generate"``).

Context that InstructBLIP's LAVIS code adds to the instruction (``blip2_vicuna_instruct.py`` ``_predict_class``):
the ScienceQA hint (``context: ...``), the Visual Dialog history (``dialog history: ...``) and caption
(``This image has the caption "..."``); TextVQA's OCR tokens (its first 30, comma-separated) fill the template.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Optional, Sequence

from mmlink.eval.benchmarks import base
from mmlink.eval.benchmarks.base import IMAGE

# VisLingInstruct App. F Table 4 (the "\n" there is a line break)
CAPTION = "A short image description:"
VSR_PROMPT = "Based on the image, is this statement true or false? {statement}"
SHORT_ANSWER = "Question: {question}\nShort answer:"
ICONQA_PROMPT = "Question: {question} Options: {options}\nAnswer:"
VIZWIZ_PROMPT = ("Answer the question based on the image. Reply in one phrase/word or say 'unanswerable'. "
                 "Question: {question}\nShort answer:")
TEXTVQA_PROMPT = "OCR tokens: {tokens}. Question: {question}\nShort answer:"
# ScienceQA's candidates are the option letters (its options are sentences), so LLaVA's ScienceQA line asking for
# the letter follows Table 4's instruction
# Table 4's prompt; the option texts are ranked, so no "answer with the letter" line (it would ask for another answer)
SCIQA_PROMPT = ("Given the image, choose the correct option for the following question. Question: {question}\n"
                "Options: {options}")
# Table 4 prints the meme text bare ({}); quoted here, as InstructBLIP-derived evaluations (MiniGPT-v2) do, so the
# text cannot run into the instruction
HM_PROMPT = 'This is an image with: "{text}" written on it. Is it hateful?'
OCR_TOKENS = 30  # InstructBLIP's LAVIS code keeps the first 30 OCR tokens


def _find_dir(root: Path, candidates: Sequence[str], layout: str) -> Path:
    """The first of ``candidates`` (relative to ``root``) that is a directory; else an error naming the layout."""
    root = Path(root)
    for name in candidates:
        if (root / name).is_dir():
            return root / name
    raise FileNotFoundError(f"{root}: no image directory ({', '.join(candidates)}) found (expected layout: {layout})")


def _items(data: Any, key: Optional[str], path: Path, what: str) -> list:
    """The list a file holds (``data[key]`` when ``key``), checked to be one."""
    value = base.get(data, key, path, "file", list) if key is not None else data
    if not isinstance(value, list):
        raise base.DataError(f"{path}: must hold a list of {what}, got {type(value).__name__}")
    return value


def _unique(options: Sequence[str], answer: int) -> tuple[list[str], str]:
    """Candidates must be distinct strings: a repeated option keeps its first place; the answer is its text."""
    return list(dict.fromkeys(options)), options[answer]


def _label(obj: dict, path: Path, rid: Any) -> int:
    label = base.get(obj, "label", path, rid, int)
    if label not in (0, 1):
        raise base.fail(path, rid, "label", f"must be 0 or 1, got {label!r}")
    return label


def _index(obj: dict, key: str, n: int, path: Path, rid: Any) -> int:
    value = base.get(obj, key, path, rid, int)
    if not 0 <= value < n:
        raise base.fail(path, rid, key, f"must index one of the {n} options, got {value}")
    return value


def _options(obj: dict, key: str, path: Path, rid: Any) -> list[str]:
    """A list of >= 2 option texts (numbers written as text, as some choices are)."""
    options = base.get(obj, key, path, rid, list)
    if len(options) < 2 or not all(isinstance(o, (str, int, float)) and not isinstance(o, bool) and str(o).strip()
                                   for o in options):
        raise base.fail(path, rid, key, f"must be a list of >= 2 non-empty option texts, got {options!r}")
    return [str(o).strip() for o in options]


def _inline(options: Sequence[str], upper: bool) -> str:
    """``(a) apple (b) banana`` — App. F's option list (capital letters when the answer is a letter)."""
    letters = base.LETTERS if upper else base.LETTERS.lower()
    if len(options) > len(letters):
        raise ValueError(f"at most {len(letters)} options, got {len(options)}")
    return " ".join(f"({letters[i]}) {o}" for i, o in enumerate(options))


# --------------------------------------------------------------------------------------------- captioning

FLICKR_LAYOUT = "DIR/dataset_flickr30k.json (Karpathy split), DIR/flickr30k-images/<filename>"


def read_flickr30k(root: Path, split: str, cache: Path) -> list[dict]:
    """Flickr30K in Karpathy's split (``dataset_flickr30k.json``: ``images`` [{filename, split, sentences:
    [{raw, tokens}]}]) with the released ``flickr30k-images/``; one item per image, its 5 raw captions the
    references. Source: https://cs.stanford.edu/people/karpathy/deepimagesent/ (LAVIS/lmms-eval use the same test
    1000)."""
    base.check_split(split, ("test", "val"), root)
    path = base.find_file(root, ["dataset_flickr30k.json", "annotations/dataset_flickr30k.json",
                                 "karpathy/dataset_flickr30k.json"], FLICKR_LAYOUT)
    images = _find_dir(root, ["flickr30k-images", "flickr30k_images", "images"], FLICKR_LAYOUT)
    records = []
    for i, entry in enumerate(_items(base.read_json(path), "images", path, "images")):
        rid = entry.get("filename", f"images[{i}]") if isinstance(entry, dict) else f"images[{i}]"
        if base.get(entry, "split", path, rid) != split:
            continue
        name = base.get(entry, "filename", path, rid)
        sentences = base.get(entry, "sentences", path, rid, list)
        refs = [base.get(s, "raw", path, rid).strip() for s in sentences]
        image = base.image_file(images, name, path, rid, "filename")
        records.append(base.record(Path(name).stem, [image], f"{IMAGE}\n{CAPTION}", refs[0], refs=refs))
    return records


NOCAPS_LAYOUT = "DIR/nocaps_val_4500_captions.json, DIR/val/<file_name> (the Open Images files the json names)"


def read_nocaps(root: Path, split: str, cache: Path) -> list[dict]:
    """NoCaps val (COCO-style ``nocaps_val_4500_captions.json``: ``images`` [{id, file_name, open_images_id,
    domain}], ``annotations`` [{image_id, caption}]) and its images; 10 references per image, ``meta.domain``
    ``in``/``near``/``out`` for per-domain scores. Only val: the test captions are not public (EvalAI scores them).
    Source: https://nocaps.org/download (the json: https://nocaps.s3.amazonaws.com/nocaps_val_4500_captions.json)."""
    base.check_split(split, ("val",), root)
    path = base.find_file(root, ["nocaps_val_4500_captions.json", "annotations/nocaps_val_4500_captions.json"],
                          NOCAPS_LAYOUT)
    images = _find_dir(root, ["val", "images/val", "validation", "images"], NOCAPS_LAYOUT)
    data = base.read_json(path)
    captions: dict[Any, list[str]] = {}
    for i, ann in enumerate(_items(data, "annotations", path, "annotations")):
        rid = f"annotations[{i}]"
        image_id = base.get(ann, "image_id", path, rid, int)
        captions.setdefault(image_id, []).append(base.get(ann, "caption", path, rid).strip())
    records = []
    for i, entry in enumerate(_items(data, "images", path, "images")):
        image_id = base.get(entry, "id", path, f"images[{i}]", int)
        name = base.get(entry, "file_name", path, image_id)
        domain = base.get(entry, "domain", path, image_id)
        if domain not in ("in-domain", "near-domain", "out-domain"):
            raise base.fail(path, image_id, "domain", f"must be in-domain, near-domain or out-domain, got {domain!r}")
        refs = captions.get(image_id)
        if not refs:
            raise base.fail(path, image_id, "annotations", "hold no caption of this image")
        image = base.image_file(images, name, path, image_id, "file_name")
        records.append(base.record(str(image_id), [image], f"{IMAGE}\n{CAPTION}", refs[0], refs=refs,
                                   domain=domain.split("-")[0], category=domain))  # scored per domain too
    return records


# --------------------------------------------------------------------------------------------- visual reasoning

VSR_LAYOUT = ("DIR/splits/{zeroshot,random}/{test,dev}.jsonl (the repo's data/splits), DIR/images/<image> "
              "(COCO 2017 files)")
VSR_SPLITS = ("zeroshot_test", "zeroshot_dev", "random_test", "random_dev")


def read_vsr(root: Path, split: str, cache: Path) -> list[dict]:
    """VSR (jsonl lines {image, caption, label 0/1, relation, ...}) and its COCO 2017 images. The default is the
    zero-shot test split: its 1222 lines are the count VisLingInstruct (App. D) evaluates. Candidates ``true`` /
    ``false``, the answer generated and matched (paper §4.3 ranks only SciQA, IconQA, HM and VisDial). Source:
    https://github.com/cambridgeltl/visual-spatial-reasoning/tree/master/data (also HF cambridgeltl/vsr_zeroshot)."""
    base.check_split(split, VSR_SPLITS, root)
    family, part = split.split("_")
    path = base.find_file(root, [f"splits/{family}/{part}.jsonl", f"data/splits/{family}/{part}.jsonl",
                                 f"{family}/{part}.jsonl", f"vsr_{family}/{part}.jsonl"], VSR_LAYOUT)
    images = _find_dir(root, ["images", "data/images", "trainval2017"], VSR_LAYOUT)
    records = []
    for line, obj in base.read_jsonl(path):
        rid = f"line {line}"
        statement = base.get(obj, "caption", path, rid).strip()
        answer = "true" if _label(obj, path, rid) == 1 else "false"
        image = base.image_file(images, base.get(obj, "image", path, rid), path, rid, "image")
        prompt = f"{IMAGE}\n{VSR_PROMPT.format(statement=statement)}"
        records.append(base.record(f"{split}-{line}", [image], prompt, answer, choices=["true", "false"],
                                   answer=answer, relation=obj.get("relation")))
    return records


GQA_LAYOUT = "DIR/{testdev,val}_balanced_questions.json (or DIR/questions/...), DIR/images/<imageId>.jpg"


def read_gqa(root: Path, split: str, cache: Path) -> list[dict]:
    """GQA balanced questions (``{qid: {imageId, question, answer, fullAnswer, ...}}``) and ``images/``; one
    answer per question, scored by exact match after the VQA normalization. Default test-dev (12578 questions,
    VisLingInstruct App. D). Source: https://cs.stanford.edu/people/dorarad/gqa/download.html"""
    base.check_split(split, ("testdev", "val"), root)
    name = f"{split}_balanced_questions.json"
    path = base.find_file(root, [name, f"questions/{name}", f"questions1.2/{name}"], GQA_LAYOUT)
    images = _find_dir(root, ["images", "allImages/images"], GQA_LAYOUT)
    data = base.read_json(path)
    if not isinstance(data, dict):
        raise base.DataError(f"{path}: must map question ids to questions, got {type(data).__name__}")
    found: dict[str, str] = {}  # image id -> path (test-dev asks ~30 questions per image)
    records = []
    for qid, q in data.items():
        image_id = base.get(q, "imageId", path, qid)
        if image_id not in found:
            found[image_id] = base.image_file(images, image_id, path, qid, "imageId", (".jpg", ".png"))
        question = base.get(q, "question", path, qid).strip()
        answer = base.get(q, "answer", path, qid).strip()
        records.append(base.record(qid, [found[image_id]], f"{IMAGE}\n{SHORT_ANSWER.format(question=question)}",
                                   answer, answers=[answer]))
    return records


ICONQA_LAYOUT = ("DIR/problems.json + DIR/pid_splits.json and DIR/iconqa/<split>/choose_txt/<pid>/image.png "
                 "(DIR = the zip's iconqa_data/; without problems.json, each <pid>/data.json is read)")


def read_iconqa(root: Path, split: str, cache: Path) -> list[dict]:
    """IconQA's multi-text-choice sub-task (``choose_txt``; problems {question, choices, answer index,
    ques_type}) — VisLingInstruct's 6316 test problems. The candidates are the choice texts, ranked as the paper
    does; the prompt lists them as ``(a) x (b) y``. Source: https://github.com/lupantech/IconQA (data layout in
    its README and tools/generate_img_patch_feature.py)."""
    base.check_split(split, ("test", "val"), root)
    root = Path(root)
    found = [p for p in (root / "problems.json", root / "iconqa_data" / "problems.json",
                         root / "data" / "iconqa_data" / "problems.json") if p.is_file()]
    if found:
        home = found[0].parent
        problems = base.read_json(found[0])
        if not isinstance(problems, dict):
            raise base.DataError(f"{found[0]}: must map problem ids to problems, got {type(problems).__name__}")
        splits_path = base.find_file(home, ["pid_splits.json"], ICONQA_LAYOUT)
        pids = base.get(base.read_json(splits_path), f"choose_txt_{split}", splits_path, "pid_splits", list)
        entries = []
        for pid in pids:
            if str(pid) not in problems:
                raise base.fail(splits_path, pid, f"choose_txt_{split}", "names a problem problems.json lacks")
            entries.append((found[0], str(pid), problems[str(pid)]))
    else:
        folders = [d for d in (root / "iconqa", root / "iconqa_data" / "iconqa") if (d / split / "choose_txt").is_dir()]
        if not folders:
            raise FileNotFoundError(f"{root}: no problems.json and no iconqa/{split}/choose_txt/ "
                                    f"(expected layout: {ICONQA_LAYOUT})")
        home = folders[0].parent
        entries = []
        for folder in sorted((folders[0] / split / "choose_txt").iterdir(), key=lambda p: (len(p.name), p.name)):
            if (folder / "data.json").is_file():
                entries.append((folder / "data.json", folder.name, base.read_json(folder / "data.json")))
    records = []
    for path, pid, prob in entries:
        kind = prob.get("ques_type", "choose_txt") if isinstance(prob, dict) else None
        if kind != "choose_txt":
            raise base.fail(path, pid, "ques_type", f"must be choose_txt in this split, got {kind!r}")
        question = base.get(prob, "question", path, pid).strip()
        options = _options(prob, "choices", path, pid)
        choices, answer = _unique(options, _index(prob, "answer", len(options), path, pid))
        image = base.image_file(home / "iconqa" / split / "choose_txt" / pid, "image.png", path, pid, "image")
        prompt = f"{IMAGE}\n{ICONQA_PROMPT.format(question=question, options=_inline(options, upper=False))}"
        records.append(base.record(pid, [image], prompt, answer, choices=choices, answer=answer))
    return records


# --------------------------------------------------------------------------------------------- image QA


def _majority(answers: Sequence[str]) -> str:
    """The answer most humans gave (the first of a tie): the record's reference text (scoring uses them all)."""
    return Counter(answers).most_common(1)[0][0]


VIZWIZ_LAYOUT = "DIR/Annotations/val.json (or DIR/val.json), DIR/val/<image>"


def read_vizwiz(root: Path, split: str, cache: Path) -> list[dict]:
    """VizWiz VQA val (a list of {image, question, answers: [{answer, answer_confidence}] x 10, answerable,
    answer_type}) and ``val/``; the 10 human answers (``unanswerable`` among them) are scored by VQA accuracy.
    Only val: the test answers are not public. Source: https://vizwiz.org/tasks-and-datasets/vqa/"""
    base.check_split(split, ("val",), root)
    path = base.find_file(root, ["Annotations/val.json", "annotations/val.json", "val.json"], VIZWIZ_LAYOUT)
    images = _find_dir(root, ["val", "images/val", "images"], VIZWIZ_LAYOUT)
    records = []
    for i, q in enumerate(_items(base.read_json(path), None, path, "questions")):
        name = base.get(q, "image", path, f"[{i}]")
        question = base.get(q, "question", path, name).strip()
        answers = [base.get(a, "answer", path, name, nonempty=False).strip()
                   for a in base.get(q, "answers", path, name, list)]
        image = base.image_file(images, name, path, name, "image")
        prompt = f"{IMAGE}\n{VIZWIZ_PROMPT.format(question=question)}"
        records.append(base.record(Path(name).stem, [image], prompt, _majority(answers), answers=answers,
                                   answer_type=q.get("answer_type"), answerable=q.get("answerable")))
    return records


TEXTVQA_LAYOUT = ("DIR/TextVQA_0.5.1_val.json, DIR/TextVQA_Rosetta_OCR_v0.2_val.json (split val; val_no_ocr "
                  "reads without it), DIR/train_images/<image_id>.jpg (val images are in train_images)")


def read_textvqa(root: Path, split: str, cache: Path) -> list[dict]:
    """TextVQA 0.5.1 val (``{"data": [{question_id, image_id, question, answers x 10, ...}]}``) with the
    train_val images. Split ``val`` is InstructBLIP's protocol: the Rosetta OCR tokens of the image
    (``TextVQA_Rosetta_OCR_v0.2_val.json``, ``{"data": [{image_id, ocr_tokens}]}``, the first 30) fill the
    instruction; ``val_no_ocr`` asks the question alone (lmms-eval's default). Source: https://textvqa.org/dataset/"""
    base.check_split(split, ("val", "val_no_ocr"), root)
    path = base.find_file(root, ["TextVQA_0.5.1_val.json", "annotations/TextVQA_0.5.1_val.json"], TEXTVQA_LAYOUT)
    images = _find_dir(root, ["train_images", "train_val_images/train_images", "images"], TEXTVQA_LAYOUT)
    ocr: Optional[dict[str, list[str]]] = None
    if split == "val":
        ocr_path = base.find_file(root, ["TextVQA_Rosetta_OCR_v0.2_val.json", "ocr/TextVQA_Rosetta_OCR_v0.2_val.json",
                                         "annotations/TextVQA_Rosetta_OCR_v0.2_val.json"], TEXTVQA_LAYOUT)
        ocr = {}
        for i, entry in enumerate(_items(base.read_json(ocr_path), "data", ocr_path, "images")):
            image_id = base.get(entry, "image_id", ocr_path, f"data[{i}]")
            tokens = base.get(entry, "ocr_tokens", ocr_path, image_id, list, nonempty=False)
            ocr[image_id] = [str(t) for t in tokens]
    records = []
    for i, q in enumerate(_items(base.read_json(path), "data", path, "questions")):
        qid = base.get(q, "question_id", path, f"data[{i}]", (int, str))
        image_id = base.get(q, "image_id", path, qid)
        question = base.get(q, "question", path, qid).strip()
        answers = [a.strip() if isinstance(a, str) else a for a in base.get(q, "answers", path, qid, list)]
        if not all(isinstance(a, str) for a in answers):
            raise base.fail(path, qid, "answers", "must be a list of strings")
        image = base.image_file(images, image_id, path, qid, "image_id", (".jpg", ".png"))
        tokens: list[str] = []
        if ocr is not None:
            if image_id not in ocr:
                raise base.fail(ocr_path, qid, "image_id", f"{image_id!r} has no entry in the OCR file")
            tokens = ocr[image_id][:OCR_TOKENS]
        # an image without OCR tokens gets the plain question (an empty "OCR tokens: ." would only confuse)
        text = (TEXTVQA_PROMPT.format(tokens=", ".join(tokens), question=question) if tokens
                else SHORT_ANSWER.format(question=question))
        records.append(base.record(str(qid), [image], f"{IMAGE}\n{text}", _majority(answers), answers=answers))
    return records


# --------------------------------------------------------------------------------------------- comprehensive VQA

SCIQA_LAYOUT = ("DIR/problems.json + DIR/pid_splits.json (the repo's data/scienceqa/), DIR/images/<split>/<pid>/"
                "image.png; or a Hugging Face copy (derek-thomas/ScienceQA, lmms-lab/ScienceQA's ScienceQA-IMG)")


def _sciqa_record(rid: str, image: str, prob: dict, path: Any) -> dict:
    question = base.get(prob, "question", path, rid).strip()
    options = _options(prob, "choices", path, rid)
    index = _index(prob, "answer", len(options), path, rid)
    hint = prob.get("hint") or ""
    if not isinstance(hint, str):
        raise base.fail(path, rid, "hint", f"must be text, got {type(hint).__name__}")
    # InstructBLIP puts the hint before the instruction (LAVIS: f"context: {context}. {prompt}")
    context = f"Context: {hint.strip()}\n" if hint.strip() else ""
    text = SCIQA_PROMPT.format(question=question, options=_inline(options, upper=True))
    # the paper ranks the option texts (§4.3); letters only where two options read the same
    choices = options if len(set(options)) == len(options) else list(base.LETTERS[:len(options)])
    return base.record(rid, [image], f"{IMAGE}\n{context}{text}", choices[index], choices=choices,
                       answer=choices[index], subject=prob.get("subject"))


def read_scienceqa(root: Path, split: str, cache: Path) -> list[dict]:
    """ScienceQA's IMG set: the problems of a split that have an image (test: 2017, VisLingInstruct App. D).
    The option texts are the candidates (ranked, as VisLingInstruct §4.3; letters when two options read the same),
    listed ``(A) x (B) y`` in the prompt with the hint as context. Reads the authors' ``problems.json``
    (``{pid: {question, choices, answer, hint, image, split, ...}}``) + ``pid_splits.json``, or their Hugging Face
    copy (parquet/save_to_disk; rows without an image are skipped). Source: https://github.com/lupantech/ScienceQA (README "Download the Dataset")."""
    base.check_split(split, ("test", "val"), root)
    root = Path(root)
    found = [p for p in (root / "problems.json", root / "data" / "scienceqa" / "problems.json",
                         root / "scienceqa" / "problems.json") if p.is_file()]
    if not found:
        if (root / "ScienceQA-IMG").is_dir():  # lmms-lab/ScienceQA holds a FULL and an IMG configuration
            root = root / "ScienceQA-IMG"
        return [_sciqa_record(f"{split}-{i}", base.store_image(row["image"], cache, source, i, "image"), row,
                              source)
                for source, i, row in base.hf_rows(root, "validation" if split == "val" else split, SCIQA_LAYOUT)
                if row.get("image")]
    path = found[0]
    problems = base.read_json(path)
    if not isinstance(problems, dict):
        raise base.DataError(f"{path}: must map problem ids to problems, got {type(problems).__name__}")
    splits_path = base.find_file(path.parent, ["pid_splits.json"], SCIQA_LAYOUT)
    records = []
    for pid in base.get(base.read_json(splits_path), split, splits_path, "pid_splits", list):
        prob = problems.get(str(pid))
        if prob is None:
            raise base.fail(splits_path, pid, split, "names a problem problems.json lacks")
        if not isinstance(prob, dict):
            raise base.fail(path, pid, "problem", f"must be an object, got {type(prob).__name__}")
        if not prob.get("image"):
            continue  # the IMG set: problems with a visual context only
        name = base.get(prob, "image", path, pid)
        image = base.image_file(path.parent / "images" / split / str(pid), name, path, pid, "image")
        records.append(_sciqa_record(str(pid), image, prob, path))
    return records


VISDIAL_LAYOUT = ("DIR/visdial_1.0_val.json, DIR/VisualDialog_val2018/VisualDialog_val2018_<image_id, 12 "
                  "digits>.jpg")


def read_visdial(root: Path, split: str, cache: Path) -> list[dict]:
    """VisDial v1.0 val (``data``: ``dialogs`` [{image_id, caption, dialog: [{question, answer, answer_options
    x 100, gt_index}] x 10}], ``questions``, ``answers`` — the dialog's numbers index those two lists): one item
    per round, the caption and the earlier rounds in the prompt, the 100 answer options the candidates (ranked;
    MRR/R@k). Options repeated within a round keep their first place (the ground truth maps to that text).
    Source: https://visualdialog.org/data (format in its "Dataset" section)."""
    base.check_split(split, ("val",), root)
    path = base.find_file(root, ["visdial_1.0_val.json", "annotations/visdial_1.0_val.json"], VISDIAL_LAYOUT)
    images = _find_dir(root, ["VisualDialog_val2018", "images/VisualDialog_val2018", "images"], VISDIAL_LAYOUT)
    data = base.get(base.read_json(path), "data", path, "file", dict)
    questions = _items(data, "questions", path, "questions")
    answers = _items(data, "answers", path, "answers")

    def text(table: list, kind: str, value: Any, rid: str, field: str) -> str:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < len(table):
            raise base.fail(path, rid, field, f"must index data.{kind} (0-{len(table) - 1}), got {value!r}")
        if not isinstance(table[value], str):
            raise base.fail(path, rid, field, f"names data.{kind}[{value}], which is not text")
        return table[value].strip()

    records = []
    for d, dialog in enumerate(_items(data, "dialogs", path, "dialogs")):
        image_id = base.get(dialog, "image_id", path, f"dialogs[{d}]", int)
        caption = base.get(dialog, "caption", path, image_id).strip()
        image = base.image_file(images, f"VisualDialog_val2018_{image_id:012d}.jpg", path, image_id, "image_id")
        history: list[str] = []
        for r, turn in enumerate(base.get(dialog, "dialog", path, image_id, list), 1):
            rid = f"{image_id}_{r}"
            if not isinstance(turn, dict):
                raise base.fail(path, rid, "dialog", "must hold one object per round")
            question = text(questions, "questions", turn.get("question"), rid, "question")
            said = text(answers, "answers", turn.get("answer"), rid, "answer")
            indices = base.get(turn, "answer_options", path, rid, list)
            options = [text(answers, "answers", k, rid, "answer_options") for k in indices]
            choices, answer = _unique(options, _index(turn, "gt_index", len(options), path, rid))
            # InstructBLIP's _predict_class: caption sentence, then "dialog history: ...", then the instruction
            context = f'This image has the caption "{caption}". '
            if history:
                context += f"dialog history: {' '.join(history)}\n"
            prompt = f"{IMAGE}\n{context}{SHORT_ANSWER.format(question=question)}"
            records.append(base.record(rid, [image], prompt, answer, choices=choices, answer=answer, round=r))
            history.append(f"q: {question} a: {said}")
    return records


HM_LAYOUT = "DIR/{dev_seen,dev_unseen,test_seen,test_unseen}.jsonl, DIR/img/<id>.png (the jsonl's img paths)"
HM_SPLITS = ("dev", "dev_seen", "dev_unseen", "test_seen", "test_unseen")  # dev: the paper's 1040 memes


def read_hateful_memes(root: Path, split: str, cache: Path) -> list[dict]:
    """Hateful Memes (jsonl lines {id, img, label, text}; ``img`` relative to the jsonl's directory). Split
    ``dev`` is dev_seen + dev_unseen — the 1040 memes VisLingInstruct (App. D) calls val. Candidates ``yes``
    (hateful, the positive class: AUC) and ``no``. Source: https://ai.meta.com/tools/hatefulmemes/ (format as in
    mmf's hateful_memes dataset docs)."""
    base.check_split(split, HM_SPLITS, root)
    parts = ("dev_seen", "dev_unseen") if split == "dev" else (split,)
    records = []
    for part in parts:
        path = base.find_file(root, [f"{part}.jsonl", f"data/{part}.jsonl", f"hateful_memes/{part}.jsonl"],
                              HM_LAYOUT)
        for line, obj in base.read_jsonl(path):
            meme = base.get(obj, "id", path, f"line {line}", (int, str))
            answer = "yes" if _label(obj, path, meme) == 1 else "no"
            text = " ".join(base.get(obj, "text", path, meme, nonempty=False).split())
            image = base.image_file(path.parent, base.get(obj, "img", path, meme), path, meme, "img")
            prompt = f"{IMAGE}\n{HM_PROMPT.format(text=text)}"
            # dev_seen and dev_unseen share memes: in the joint split an id names its file too
            rid = f"{part}/{meme}" if len(parts) > 1 else str(meme)
            records.append(base.record(rid, [image], prompt, answer, choices=["yes", "no"], answer=answer))
    return records


_PAPER = "VisLingInstruct Table 1 (InstructBLIP's held-out zero-shot sets)"

TASKS: list[dict] = [
    dict(name="flickr30k", kind="generate", title="Flickr30K", reader=read_flickr30k, splits=("test", "val"),
         max_new_tokens=40, layout=FLICKR_LAYOUT, source="https://cs.stanford.edu/people/karpathy/deepimagesent/",
         description=f"caption an image, 5 references, Karpathy test 1000 ({_PAPER}; CIDEr)"),
    dict(name="nocaps", kind="generate", title="NoCaps", reader=read_nocaps, splits=("val",), max_new_tokens=40,
         layout=NOCAPS_LAYOUT, source="https://nocaps.org/download",
         description=f"caption novel objects, 10 references, val 4500, in/near/out-domain ({_PAPER}; CIDEr)"),
    dict(name="vsr", kind="rank", title="VSR", reader=read_vsr, splits=VSR_SPLITS, max_new_tokens=10, chance=50.0,
         option_scoring="generate", layout=VSR_LAYOUT,
         source="https://github.com/cambridgeltl/visual-spatial-reasoning/tree/master/data",
         description=f"is a spatial statement about the image true or false, zero-shot test 1222 ({_PAPER})"),
    dict(name="gqa", kind="vqa", title="GQA", reader=read_gqa, splits=("testdev", "val"), max_new_tokens=10,
         layout=GQA_LAYOUT, source="https://cs.stanford.edu/people/dorarad/gqa/download.html",
         description=f"compositional questions, one answer, balanced test-dev 12578 ({_PAPER})"),
    dict(name="iconqa", kind="rank", title="IconQA", reader=read_iconqa, splits=("test", "val"), max_new_tokens=10,
         layout=ICONQA_LAYOUT, source="https://github.com/lupantech/IconQA",
         description=f"abstract diagrams, multi-text-choice, test 6316 ({_PAPER})"),
    dict(name="vizwiz", kind="vqa", title="VizWiz", reader=read_vizwiz, splits=("val",), max_new_tokens=10,
         layout=VIZWIZ_LAYOUT, source="https://vizwiz.org/tasks-and-datasets/vqa/",
         description=f"questions from blind people, 10 answers, val 4319 ({_PAPER})"),
    dict(name="textvqa", kind="vqa", title="TextVQA", reader=read_textvqa, splits=("val", "val_no_ocr"),
         max_new_tokens=10, layout=TEXTVQA_LAYOUT, source="https://textvqa.org/dataset/",
         description=f"read text in the image, 10 answers, val 5000, OCR tokens in the prompt ({_PAPER})"),
    dict(name="scienceqa", kind="rank", title="ScienceQA-IMG", reader=read_scienceqa, splits=("test", "val"),
         max_new_tokens=10, layout=SCIQA_LAYOUT, source="https://github.com/lupantech/ScienceQA",
         description=f"science questions with an image, lettered options, test 2017 ({_PAPER})"),
    dict(name="visdial", kind="rank", title="VisDial", reader=read_visdial, splits=("val",), max_new_tokens=10,
         metric="retrieval", layout=VISDIAL_LAYOUT, source="https://visualdialog.org/data",
         description=f"rank 100 answers for each dialog round, val 2064 dialogs ({_PAPER}; MRR)"),
    dict(name="hateful_memes", kind="rank", title="Hateful Memes", reader=read_hateful_memes, splits=HM_SPLITS,
         max_new_tokens=10, chance=50.0, metric="auc", layout=HM_LAYOUT,
         source="https://ai.meta.com/tools/hatefulmemes/",
         description=f"is a meme hateful (yes = positive; AUC), dev = dev_seen + dev_unseen, 1040 ({_PAPER})"),
]

__all__ = ["TASKS", "read_flickr30k", "read_gqa", "read_hateful_memes", "read_iconqa", "read_nocaps",
           "read_scienceqa", "read_textvqa", "read_visdial", "read_vizwiz", "read_vsr"]
