"""The multi-image benchmarks the field reports: MuirBench, BLINK, Mantis-Eval and MMIU, read from their Hugging
Face releases kept locally (nothing downloads).

All four are multiple choice. Each becomes a ``rank`` task whose candidates are the option letters ``A, B, …``
and whose answer is the correct letter, the lettered options in the prompt: options repeat across questions, some
are images (MuirBench) or long sentences, and every official protocol generates an answer and extracts the letter
(``option_scoring="generate"``; mmlink's `mmlink.eval.options.match_option` takes the letter). Prompts are the
official ones (each reader says where from). A record keeps the benchmark's sub-task in ``meta.category`` (and its
other labels) for per-category scores.

Images: MuirBench and Mantis-Eval place ``<image>`` tokens inside their text (MuirBench also inside options, e.g.
visual retrieval, where the options ARE images); their count must equal the record's images — a record that
disagrees is an error naming the file, the record and the field, except where the official code repairs it
(Mantis-Eval prepends the missing tokens; see `read_mantis_eval`). BLINK and MMIU put no tokens in their text: the
images come first, one ``Image k: <image>`` line each (`base.image_prefix`), as lmms-eval and the authors' code
send them ahead of the text.

Short-answer Mantis-Eval items (no options) are a second task, ``mantis_eval_short`` (kind ``vqa``, one reference
answer: exact match after the VQA normalization, as the official scorer compares lower-cased strings).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from mmlink.eval.benchmarks import base

IMAGE = base.IMAGE
# lmms-eval's multiple-choice instruction (muirbench/mantis task YAMLs, MMMU, …): the letter alone
ANSWER_LETTER = "Answer with the option's letter from the given choices directly."

_SAVED = ("dataset_dict.json", "dataset_info.json", "state.json")


def _holds_split(d: Path, split: str) -> bool:
    """Whether ``d`` is a Hugging Face copy holding ``split`` as `base.hf_rows` reads it (a ``save_to_disk``
    directory, or the hub's parquet files of that split directly inside or under ``data/``)."""
    if any((d / m).is_file() for m in _SAVED):
        return True
    patterns = (f"data/{split}-*.parquet", f"data/{split}/*.parquet", f"{split}/*.parquet", f"{split}-*.parquet",
                f"{split}.parquet")
    return any(next(d.glob(p), None) is not None for p in patterns)


def _text(row: dict, key: str, src: str, rid: Any, nonempty: bool = True) -> str:
    return base.get(row, key, src, rid, str, nonempty=nonempty)


def _strings(row: dict, key: str, src: str, rid: Any, nonempty: bool = True) -> list[str]:
    values = base.get(row, key, src, rid, list, nonempty=nonempty)
    for k, v in enumerate(values):
        if not isinstance(v, str) or not v.strip():
            raise base.fail(src, rid, key, f"item {k} must be a non-empty string, got {v!r}")
    return values


def _rid(row: dict, key: str, src: str, index: int) -> str:
    """The record's own id (``idx``/``id``: a string or an integer)."""
    return str(base.get(row, key, src, f"row {index}", (str, int)))


def _images(values: Sequence[Any], cache: Path, src: str, rid: str, field: str) -> list[str]:
    return [base.store_image(v, cache, src, rid, f"{field}[{k}]") for k, v in enumerate(values)]


def _check_tokens(count: int, n: int, src: str, rid: str, field: str, where: str) -> None:
    if count != n:
        raise base.fail(src, rid, field, f"has {count} {IMAGE} placeholder(s) ({where}) for {n} image(s)")


def _with_images(text: str, n: int, src: str, rid: str, field: str) -> str:
    """``text`` with its images: its own ``<image>`` tokens when it has them (exactly one per image), else one
    ``Image k: <image>`` line per image ahead of it."""
    count = text.count(IMAGE)
    if count == 0:
        return base.image_prefix(n) + text
    _check_tokens(count, n, src, rid, field, "in the text")
    return text


_LEADING_LETTER = re.compile(r"\(?([A-Z])(?:\)|[.:]|\s|$)")


def _answer_letter(answer: Any, n: int, src: str, rid: str, field: str) -> str:
    """The answer's option letter: ``"B"``, ``"(B)"``, ``"B."`` or a labelled option such as ``"B. a cat"``."""
    try:
        return base.LETTERS[base.letter_index(answer, n, src, rid, field)]
    except base.DataError:
        m = _LEADING_LETTER.match(str(answer).strip())
        if m and m.group(1) in base.LETTERS[:n]:
            return m.group(1)
        raise


def _choice_meta(n: int, answer: str, **extra: Any) -> dict:
    return {"choices": list(base.LETTERS[:n]), "answer": answer, **extra}


# --------------------------------------------------------------------------------------------- MuirBench

MUIRBENCH_LAYOUT = ("DIR/data/test-*.parquet (the hub snapshot of MUIRBENCH/MUIRBENCH), or DIR a save_to_disk copy "
                    "(a DatasetDict with split test, or the test Dataset)")
MUIRBENCH_SOURCE = "https://huggingface.co/datasets/MUIRBENCH/MUIRBENCH"
# The authors' prompt (github.com/muirbench/MuirBench eval/utils/preprocess.py `create_prompt`, released "to ensure
# consistent evaluation"): MathVista's query format with the hint; their postprocess.py then parses the letter.
MUIRBENCH_HINT = "Hint: Please provide the correct option letter, such as A, B, C, D, directly."


def read_muirbench(root: Path, split: str, cache: Path) -> list[dict]:
    """MuirBench (Wang et al. 2024): 2,600 multiple-choice questions over 2-9 images, 12 tasks, each answerable
    question paired with an unanswerable twin (``counterpart_idx``).

    Layout: the hub's parquet files ``DIR/data/test-*.parquet`` or a ``save_to_disk`` copy; fields ``idx``,
    ``task``, ``image_relation``, ``image_type``, ``question``, ``options`` (list), ``answer`` (a letter),
    ``image_list`` (images), ``counterpart_idx``. Source: https://huggingface.co/datasets/MUIRBENCH/MUIRBENCH and
    lmms-eval ``lmms_eval/tasks/muirbench`` (fields, images in ``image_list`` order).

    ``<image>`` tokens sit inline in ``question`` and in ``options`` (an option may be an image); together they
    must number ``len(image_list)``, in the list's order. Prompt: the authors' ``create_prompt`` —
    ``Question: …`` / ``Choices:`` / ``(A) …`` / the hint / ``Answer:``.
    """
    base.check_split(split, ("test",), root)
    out = []
    for src, i, row in base.hf_rows(root, split, MUIRBENCH_LAYOUT):
        rid = _rid(row, "idx", src, i)
        question = _text(row, "question", src, rid)
        options = _strings(row, "options", src, rid)
        if len(options) < 2:
            raise base.fail(src, rid, "options", f"must hold at least 2 options, got {len(options)}")
        images = base.get(row, "image_list", src, rid, list)
        count = question.count(IMAGE) + sum(o.count(IMAGE) for o in options)
        _check_tokens(count, len(images), src, rid, "question", "question and options together")
        answer = _answer_letter(base.get(row, "answer", src, rid), len(options), src, rid, "answer")
        prompt = "\n".join([f"Question: {question}", "Choices:", base.lettered(options), MUIRBENCH_HINT, "Answer:"])
        task = _text(row, "task", src, rid)
        extra = {k: row[k] for k in ("image_relation", "image_type", "counterpart_idx") if row.get(k) is not None}
        out.append(base.record(rid, _images(images, cache, src, rid, "image_list"), prompt, answer,
                               **_choice_meta(len(options), answer, category=task, task=task, options=options,
                                              **extra)))
    return out


# --------------------------------------------------------------------------------------------- BLINK

BLINK_SUBTASKS = ("Art_Style", "Counting", "Forensic_Detection", "Functional_Correspondence", "IQ_Test", "Jigsaw",
                  "Multi-view_Reasoning", "Object_Localization", "Relative_Depth", "Relative_Reflectance",
                  "Semantic_Correspondence", "Spatial_Relation", "Visual_Correspondence", "Visual_Similarity")
BLINK_LAYOUT = ("DIR/<subtask>/val-*.parquet for each subtask present (the hub snapshot of BLINK-Benchmark/BLINK: "
                "DIR/Art_Style/, DIR/Counting/, …), or DIR/<subtask>/ a save_to_disk copy of that subtask's config "
                "(a DatasetDict with split val); DIR may also be one subtask's directory")
BLINK_SOURCE = "https://github.com/zeyofu/BLINK_Benchmark"
BLINK_IMAGE_FIELDS = ("image_1", "image_2", "image_3", "image_4")


def _blink_dirs(root: Path, split: str) -> list[Path]:
    if not Path(root).is_dir():
        raise FileNotFoundError(f"{root}: no such directory (expected layout: {BLINK_LAYOUT})")
    dirs = [d for d in sorted(Path(root).iterdir())
            if d.is_dir() and not d.name.startswith(".") and _holds_split(d, split)]
    if not dirs and _holds_split(Path(root), split):  # one subtask's directory given directly
        dirs = [Path(root)]
    if not dirs:
        raise FileNotFoundError(f"{root}: no BLINK subtask with split {split!r} found (expected layout: "
                                f"{BLINK_LAYOUT}; subtasks: {', '.join(BLINK_SUBTASKS)})")
    return dirs


def read_blink(root: Path, split: str, cache: Path) -> list[dict]:
    """BLINK (Fu et al., ECCV 2024): 14 perception subtasks recast as multiple choice over 1-4 images. Only ``val``
    has answers (``test`` answers are hidden for the EvalAI server), so ``val`` is the one split.

    Layout: one Hugging Face config per subtask — the hub keeps each in its own folder, so DIR holds one folder per
    subtask (``DIR/Counting/val-00000-of-00001.parquet``, or a ``save_to_disk`` copy of the config in
    ``DIR/Counting/``); every subtask present is read. Fields: ``idx``, ``question``, ``sub_task``, ``image_1`` …
    ``image_4`` (absent ones null), ``choices``, ``answer`` (``"(A)"``), ``prompt`` (question, "Select from the
    following choices." and the lettered choices). Source: the authors' eval code
    (github.com/zeyofu/BLINK_Benchmark eval/test_benchmark.py ``load_prompt``: the ``prompt`` field, the non-null
    images in order) and lmms-eval ``lmms_eval/tasks/blink`` (images ahead of the text).

    Prompt: lmms-eval's note "Note: You only need to respond with A, B without providing any additional
    information." then the data set's own ``prompt``. The authors prefix a disclaimer for GPT-4V on three subtasks
    and match long answers with GPT-3.5; neither is used here (the letter is matched directly, as lmms-eval does).
    The paper's headline is the mean over subtasks (eval/evaluate.py); ``meta.category`` keeps the subtask.
    """
    base.check_split(split, ("val",), root)
    out = []
    for d in _blink_dirs(root, split):
        for src, i, row in base.hf_rows(d, split, BLINK_LAYOUT):
            rid = _rid(row, "idx", src, i)
            choices = _strings(row, "choices", src, rid)
            if len(choices) < 2:
                raise base.fail(src, rid, "choices", f"must hold at least 2 choices, got {len(choices)}")
            answer = _answer_letter(base.get(row, "answer", src, rid), len(choices), src, rid, "answer")
            present = [k for k in BLINK_IMAGE_FIELDS if row.get(k) is not None]
            if not present:
                raise base.fail(src, rid, "image_1", "is missing (a BLINK question has 1-4 images)")
            images = [base.store_image(row[k], cache, src, rid, k) for k in present]
            letters = ", ".join(base.LETTERS[:len(choices)])
            note = f"Note: You only need to respond with {letters} without providing any additional information.\n"
            prompt = _with_images(note + _text(row, "prompt", src, rid), len(images), src, rid, "prompt")
            subtask = row.get("sub_task") or d.name
            out.append(base.record(rid, images, prompt, answer,
                                   **_choice_meta(len(choices), answer, category=subtask, sub_task=subtask,
                                                  options=choices)))
    return out


# --------------------------------------------------------------------------------------------- Mantis-Eval

MANTIS_LAYOUT = ("DIR/mantis_eval/test-*.parquet (the hub snapshot of TIGER-Lab/Mantis-Eval), DIR/test-*.parquet "
                 "or DIR/data/test-*.parquet, or DIR a save_to_disk copy of the mantis_eval config")
MANTIS_SOURCE = "https://github.com/TIGER-AI-Lab/Mantis/tree/main/mantis/benchmark"
# LLaVA's short-answer instruction: the official template asks for an analysis then "Final Answer:", which mmlink's
# VQA scorer would not parse out of a free text (see `read_mantis_eval_short`)
SHORT_ANSWER = "Answer the question using a single word or phrase."


def _mantis_rows(root: Path, split: str) -> Iterator[tuple[str, int, dict]]:
    root = Path(root)
    config = root / "mantis_eval"
    if config.is_dir():
        data = config
    elif root.is_dir() and _holds_split(root, split):
        data = root
    else:  # the hub snapshot's other configs (nlvr2/, birds-to-words/, …) must not be read as Mantis-Eval
        raise FileNotFoundError(f"{root}: no mantis_eval/ folder and no {split} parquet files or saved data set "
                                f"(expected layout: {MANTIS_LAYOUT})")
    yield from base.hf_rows(data, split, MANTIS_LAYOUT)


def _mantis_prompt(text: str, images: list, src: str, rid: str) -> str:
    """``text`` with one ``<image>`` per image: as the official eval.py does, missing tokens are prepended (several
    questions name fewer images than they hold); more tokens than images is an error (the official code would
    leave the extra ones without an image)."""
    count = text.count(IMAGE)
    if count > len(images):
        _check_tokens(count, len(images), src, rid, "question", "question and options together")
    return IMAGE * (len(images) - count) + text


def _mantis_record(row: dict, src: str, i: int, cache: Path, kind: str) -> Optional[dict]:
    rid = _rid(row, "id", src, i)
    qtype = _text(row, "question_type", src, rid)
    if qtype not in ("multi-choice", "short-answer"):
        raise base.fail(src, rid, "question_type", f"must be 'multi-choice' or 'short-answer', got {qtype!r}")
    if qtype != kind:
        return None
    question = _text(row, "question", src, rid)
    raw_images = base.get(row, "images", src, rid, list)
    answer_text = _text(row, "answer", src, rid)
    meta_extra = {k: row[k] for k in ("category", "data_source") if row.get(k) is not None}
    if kind == "short-answer":
        prompt = _mantis_prompt(f"{question}\n{SHORT_ANSWER}", raw_images, src, rid)
        return base.record(rid, _images(raw_images, cache, src, rid, "images"), prompt, answer_text,
                           answers=[answer_text], **meta_extra)
    options = _strings(row, "options", src, rid)
    if len(options) < 2:
        raise base.fail(src, rid, "options", f"must hold at least 2 options, got {len(options)}")
    # the official eval.py: an option that already carries its label ("A. cat", "(A) cat", "A: cat") is kept as
    # is, else it is labelled "(A) cat"; each on its own line after a space
    lines = []
    for k, option in enumerate(options):
        letter = base.LETTERS[k]
        labelled = any(mark in option.upper() for mark in (f"{letter})", f"{letter}:", f"{letter}."))
        lines.append(f"\n {option}" if labelled else f"\n ({letter}) {option}")
    text = question + "".join(lines) + "\n" + ANSWER_LETTER  # mantis/benchmark/templates/multi-choice.txt
    prompt = _mantis_prompt(text, raw_images, src, rid)
    answer = _answer_letter(answer_text, len(options), src, rid, "answer")
    return base.record(rid, _images(raw_images, cache, src, rid, "images"), prompt, answer,
                       **_choice_meta(len(options), answer, options=options, **meta_extra))


def read_mantis_eval(root: Path, split: str, cache: Path) -> list[dict]:
    """Mantis-Eval (Jiang et al. 2024): 217 human-written questions over 2-5 images; its multiple-choice items.

    Layout: the hub keeps the one config in ``DIR/mantis_eval/test-00000-of-00001.parquet`` (older snapshots also
    hold other configs beside it, never read); ``DIR/test-*.parquet`` or a ``save_to_disk`` copy are read too.
    Fields (github.com/TIGER-AI-Lab/Mantis data/upload_test_dataset_to_hf.py): ``id``, ``images`` (images),
    ``question_type`` (``multi-choice`` | ``short-answer``), ``question`` (with ``<image>`` tokens), ``options``
    (list), ``answer`` (a letter), ``data_source``, ``category``.

    Prompt and scoring: the official mantis/benchmark/eval.py — options appended one a line, labelled ``(A)``
    unless already labelled; template ``{question}\\nAnswer with the option's letter from the given choices
    directly.``; missing ``<image>`` tokens prepended; the letter extracted. The official score is accuracy over
    all 217 items, short answers included: combine with ``mantis_eval_short`` weighted by their counts.
    """
    base.check_split(split, ("test",), root)
    return [r for src, i, row in _mantis_rows(root, split)
            if (r := _mantis_record(row, src, i, cache, "multi-choice")) is not None]


def read_mantis_eval_short(root: Path, split: str, cache: Path) -> list[dict]:
    """Mantis-Eval's short-answer items (same files as `read_mantis_eval`), kind ``vqa`` with the one reference
    answer (``meta.answers``). The official scorer compares the answer after "Final Answer:" with the reference,
    lower-cased; mmlink asks for a short answer directly (``…using a single word or phrase.``, LLaVA's VQA
    instruction) and scores exact match after the VQA normalization, so no free-text analysis needs parsing."""
    base.check_split(split, ("test",), root)
    return [r for src, i, row in _mantis_rows(root, split)
            if (r := _mantis_record(row, src, i, cache, "short-answer")) is not None]


# --------------------------------------------------------------------------------------------- MMIU

MMIU_DOMAINS = ("2D-spatial", "3D-spatial", "Continuous-temporal", "Discrete-temporal", "High-level-obj-semantic",
                "High-level-sub-semantic", "Low-level-semantic")
MMIU_LAYOUT = ("DIR/all.parquet (FanqingM/MMIU-Benchmark) with its seven image archives unzipped beside it, each "
               "into the folder of its own name (DIR/Low-level-semantic/<task>/…, DIR/2D-spatial/…, …) so that "
               "DIR/<input_image_path> exists; or DIR/all.json, a JSON list of the same records")
MMIU_SOURCE = "https://huggingface.co/datasets/FanqingM/MMIU-Benchmark"
_OPTION_LINE = re.compile(r"^\s*\(?([A-Z])\s*[:.)]\s?(.*)$")


def _mmiu_options(text: str, src: str, rid: str) -> list[str]:
    """``"A: x\\nB: y"`` → ``["x", "y"]``; a line with no label continues the option before it."""
    options: list[str] = []
    for line in text.strip().splitlines():
        m = _OPTION_LINE.match(line)
        expected = base.LETTERS[len(options)] if len(options) < len(base.LETTERS) else None
        if m and m.group(1) == expected:  # the next label in order; any other line continues the last option
            options.append(m.group(2).strip())
        elif options:
            options[-1] = f"{options[-1]}\n{line}".strip()
        else:
            raise base.fail(src, rid, "options", f"must start with the label 'A:', got {line!r}")
    if len(options) < 2:
        raise base.fail(src, rid, "options", f"must label at least 2 options A:, B:, …, got {text!r}")
    return options


def _mmiu_rows(root: Path) -> tuple[str, list[dict]]:
    path = base.find_file(root, ["all.parquet", "all.json"], MMIU_LAYOUT)
    if path.suffix == ".json":
        rows = base.read_json(path)
        if not isinstance(rows, list):
            raise base.DataError(f"{path}: must hold a JSON list of records, got {type(rows).__name__}")
    else:
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    flat = []
    for row in rows:  # early copies nest the inputs: {"input": {question, context, input_image_path}, "output": …}
        if isinstance(row, dict) and isinstance(row.get("input"), dict):
            out = row.get("output")
            row = {**row, **row["input"], "output": out.get("output_text") if isinstance(out, dict) else out}
        flat.append(row)
    return str(path), flat


def _mmiu_image(root: Path, name: str, src: str, rid: str) -> str:
    rel = name[2:] if name.startswith("./") else name
    path = Path(rel) if Path(rel).is_absolute() else Path(root) / rel
    if path.is_file():
        return str(path.resolve())
    domain = Path(rel).parts[0] if Path(rel).parts else "?"
    hint = f"; unzip {domain}.zip into {Path(root) / domain}" if domain in MMIU_DOMAINS else ""
    raise base.fail(src, rid, "input_image_path", f"names an image that is not there (looked for {path}){hint}")


def read_mmiu(root: Path, split: str, cache: Path) -> list[dict]:
    """MMIU (Meng et al. 2024): 11,698 multiple-choice questions over 2-32 images, 52 tasks in 7 image
    relationships (low-level semantic … 3D spatial).

    Layout: the release (huggingface.co/datasets/FanqingM/MMIU-Benchmark) is ``all.parquet`` — text only — and
    seven archives ``2D-spatial.zip``, ``3D-spatial.zip``, ``Continuous-temporal.zip``, ``Discrete-temporal.zip``,
    ``High-level-obj-semantic.zip``, ``High-level-sub-semantic.zip``, ``Low-level-semantic.zip``; unzip each into
    a folder of its name beside ``all.parquet``, so that the paths in ``input_image_path``
    (``./Low-level-semantic/<task>/<task>_0_0.jpg``) resolve from DIR. Fields: ``task``,
    ``visual_input_component``, ``source``, ``options`` (one string, ``"A: …\\nB: …"``), ``question``,
    ``context`` (the task's instruction), ``input_image_path`` (list), ``output`` (the letter). A JSON list of the
    same records (``DIR/all.json``; the nested ``input``/``output`` form too) is read the same way. Records have no
    id: ``<task>_<row>``.

    Prompt: the images, the context, the question, the options as released and lmms-eval's "Answer with the
    option's letter from the given choices directly." The authors' inference prompt is not published (their repo
    holds only the scoring: evaluate.py maps a free answer to a letter with GPT-4o-mini, a bare letter directly;
    evaluate_correct.py averages accuracy over tasks — the README's headline). ``meta.category`` keeps the task.
    """
    base.check_split(split, ("test",), root)
    src, rows = _mmiu_rows(root)
    out = []
    for i, row in enumerate(rows):
        task = _text(row, "task", src, f"row {i}")
        rid = f"{task}_{i}"
        question = _text(row, "question", src, rid)
        context = row.get("context") or ""
        if not isinstance(context, str):
            raise base.fail(src, rid, "context", f"must be str, got {type(context).__name__}")
        options_text = _text(row, "options", src, rid)
        options = _mmiu_options(options_text, src, rid)
        paths = _strings(row, "input_image_path", src, rid)
        images = [_mmiu_image(root, p, src, rid) for p in paths]
        answer = _answer_letter(base.get(row, "output", src, rid), len(options), src, rid, "output")
        body = "\n".join(t for t in (context.strip(), question.strip(), options_text.strip(), ANSWER_LETTER) if t)
        prompt = _with_images(body, len(images), src, rid, "question")
        extra = {k: row[k] for k in ("visual_input_component", "source") if row.get(k)}
        out.append(base.record(rid, images, prompt, answer,
                               **_choice_meta(len(options), answer, category=task, task=task, options=options,
                                              **extra)))
    return out


# --------------------------------------------------------------------------------------------- tasks

_MC = dict(kind="rank", max_new_tokens=16, option_scoring="generate")

TASKS: list[dict] = [
    dict(name="muirbench", title="MuirBench", reader=read_muirbench, splits=("test",), **_MC,
         description="2,600 multiple-choice questions over 2-9 images, 12 tasks, half unanswerable twins "
                     "(Wang et al. 2024); answer letter generated and matched",
         layout=MUIRBENCH_LAYOUT, source=MUIRBENCH_SOURCE),
    dict(name="blink", title="BLINK", reader=read_blink, splits=("val",), chance=38.1, **_MC,
         description="14 visual-perception subtasks as multiple choice over 1-4 images (Fu et al. 2024; val: "
                     "test answers are hidden); chance 38.1 is the paper's random-choice val accuracy",
         layout=BLINK_LAYOUT, source=BLINK_SOURCE),
    dict(name="mantis_eval", title="Mantis-Eval", reader=read_mantis_eval, splits=("test",), **_MC,
         description="Mantis-Eval's multiple-choice questions over 2-5 images (Jiang et al. 2024); its short-answer "
                     "items are mantis_eval_short",
         layout=MANTIS_LAYOUT, source=MANTIS_SOURCE),
    dict(name="mantis_eval_short", title="Mantis-Eval (short answer)", kind="vqa", reader=read_mantis_eval_short,
         splits=("test",), max_new_tokens=16,
         description="Mantis-Eval's short-answer questions, exact match to the one reference after VQA "
                     "normalization",
         layout=MANTIS_LAYOUT, source=MANTIS_SOURCE),
    dict(name="mmiu", title="MMIU", reader=read_mmiu, splits=("test",), chance=27.4, **_MC,
         description="11,698 multiple-choice questions over 2-32 images, 52 tasks, 7 image relationships (Meng "
                     "et al. 2024); chance 27.4 is the authors' random guess",
         layout=MMIU_LAYOUT, source=MMIU_SOURCE),
]

__all__ = ["BLINK_SUBTASKS", "MMIU_DOMAINS", "TASKS", "read_blink", "read_mantis_eval", "read_mantis_eval_short",
           "read_mmiu", "read_muirbench"]
