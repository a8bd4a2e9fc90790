"""The evaluation task registry: what each task asks, how an answer is scored, and where its data comes from.

A task is an `EvalTask` (a frozen dataclass). Built-in tasks register below; users add their own from YAML
(`load_task_file`) with the same fields, or from Python with `register`. A task turns one LLaVA-format record into
`Item`s — the unit that is answered and scored:

* ``generate``   — free text, scored against the record's last gpt turn with BLEU-4 / ROUGE-L / CIDEr (SAM §5);
* ``rank``       — pick one of ``meta.choices`` by the model's log-likelihood of each candidate; accuracy against
  ``meta.answer`` (BISON, SVO-Probes, NLVR2, multiple-choice VQA);
* ``pair_match`` — two images, two texts (``meta.texts`` ``{"A": …, "B": …}``, ``meta.answer`` ``"1-B, 2-A"``): each
  image is asked which text goes with it; a sample counts as correct only if both are right, so chance is 25 %
  as in CaD-VI's EQBEN/COLA protocol;
* ``judge``      — free text rated 0–5 by an LLM given the question and the reference (CaD-VI §4, CaD-QA);
* ``vqa``        — a short free answer scored by the standard VQA accuracy against ``meta.answers`` (the human
  answers; `mmlink.eval.vqa`: the official answer normalization, min(#humans who said it / 3, 1) averaged over
  the 10 leave-one-out subsets; one reference answer: exact match after normalization, as GQA scores).

A ``rank`` task's ``metric`` says what its ranking is scored by: ``accuracy`` (the top candidate is the answer),
``retrieval`` (the answer's rank among the candidates: MRR, R@1/5/10, mean rank — VisDial) or ``auc`` (two
candidates, the first the positive class: ROC AUC of the score margin, plus accuracy — Hateful Memes).

Tasks read the world's generated test sets by default (``world_task``), a data set as its authors released it
(``reader``: `mmlink.eval.benchmarks`, from ``--data-root``) or any user file in LLaVA format (``--data``).
This module is light: no torch import.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Sequence, get_args

from mmlink.eval.options import OPTION_SCORINGS
from mmlink.registry import Registry

Kind = Literal["generate", "rank", "pair_match", "judge", "vqa"]
KINDS: tuple[str, ...] = get_args(Kind)
RankMetric = Literal["accuracy", "retrieval", "auc"]
RANK_METRICS: tuple[str, ...] = get_args(RankMetric)

IMAGE_PLACEHOLDER = "<image>"


@dataclass
class Item:
    """One question to answer: ``turns`` is the prompt (LLaVA turns ending with a human turn).

    generate/judge: ``refs`` are the reference answers; rank: ``candidates`` and the correct ``answer``.
    ``sample`` is the record id; a pair_match record gives two items (``part`` 1 and 2) that are scored together.
    ``category``: the record's ``meta.category`` (BLINK's subtask, MuirBench's task, ...), scored separately too.
    ``scenes``: the record's ``meta.scenes`` (one scene-graph dict per image, `mmlink.data.world.scene.scene_to_dict`)
    when it has them, else empty; generated answers are then also scored fact by fact (`mmlink.eval.facts`).
    """

    id: str
    sample: str
    images: list[str]
    turns: list[dict[str, str]]
    refs: list[str] = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)
    answer: str | None = None
    question: str = ""
    part: int = 0
    scenes: list[dict[str, Any]] = field(default_factory=list)
    category: str = ""  # the record's ``meta.category`` (a benchmark's subtask): scores are also given per category


ItemsHook = Callable[[dict[str, Any]], list[Item]]
# A released data set's reader: (its directory, the split, a cache directory for images stored inside the data
# files) -> LLaVA-format records with absolute image paths (`mmlink.eval.benchmarks`).
Reader = Callable[[Path, str, Path], list[dict[str, Any]]]


@dataclass(frozen=True)
class EvalTask:
    """One evaluation task. ``chance`` is the accuracy of random guessing in percent (closed-ended kinds)."""

    name: str
    kind: Kind
    title: str = ""  # column header in reports (default: the name)
    world_task: Optional[str] = None  # generator in `mmlink.data.tasks` that makes its default data; None: --data
    default_n: int = 100  # samples generated from the world when no --limit is given
    max_new_tokens: int = 64  # generate/judge
    chance: Optional[float] = None  # rank/pair_match, percent
    description: str = ""
    items: Optional[ItemsHook] = None  # optional hook: record -> items (default: by kind)
    reader: Optional[Reader] = None  # the released data set's reader (--data-root); None: no released format
    splits: tuple[str, ...] = ()  # the reader's splits, its default first
    metric: RankMetric = "accuracy"  # rank tasks: what the ranking is scored by
    option_scoring: Optional[str] = None  # closed-ended: the protocol's own scoring (None: --option-scoring's default)
    layout: str = ""  # the directory layout the reader expects (help and docs)
    source: str = ""  # where the released format is documented

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise ValueError(f"task name must be letters, digits, '_', '-', '.', got {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name!r}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        for key in ("default_n", "max_new_tokens"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"task {self.name!r}: {key} must be an integer >= 1, got {value!r}")
        if self.chance is not None and not (isinstance(self.chance, (int, float)) and 0 < self.chance < 100):
            raise ValueError(f"task {self.name!r}: chance must be a percentage in (0, 100), got {self.chance!r}")
        if self.items is not None and not callable(self.items):
            raise ValueError(f"task {self.name!r}: items must be callable (record -> list[Item])")
        if self.reader is not None and not callable(self.reader):
            raise ValueError(f"task {self.name!r}: reader must be callable (root, split, cache) -> records")
        if self.reader is not None and not (isinstance(self.splits, tuple) and self.splits
                                            and all(isinstance(s, str) and s for s in self.splits)):
            raise ValueError(f"task {self.name!r}: a reader needs its splits (a non-empty tuple, the default first)")
        if self.metric not in RANK_METRICS or (self.metric != "accuracy" and self.kind != "rank"):
            raise ValueError(f"task {self.name!r}: metric must be one of {', '.join(RANK_METRICS)} (other than "
                             f"accuracy only for rank tasks), got {self.metric!r}")
        if self.option_scoring is not None and self.option_scoring not in OPTION_SCORINGS:
            raise ValueError(f"task {self.name!r}: option_scoring must be one of {', '.join(OPTION_SCORINGS)}, "
                             f"got {self.option_scoring!r}")
        if not self.title:
            object.__setattr__(self, "title", self.name)

    def build_items(self, record: dict[str, Any]) -> list[Item]:
        """The items of one record (images already resolved to paths). Errors name the record id and field."""
        if self.items is not None:
            return self.items(record)
        return _BUILDERS[self.kind](record)


EVAL_TASKS: Registry[EvalTask] = Registry("eval task")


def register(task: EvalTask) -> EvalTask:
    """Add ``task`` to `EVAL_TASKS` (a second task with the same name is an error)."""
    return EVAL_TASKS.register(task.name)(task)


# --------------------------------------------------------------------------------------------- record -> items


def _split_answer(record: dict[str, Any]) -> tuple[list[dict[str, str]], str]:
    turns = list(record["conversations"])
    if len(turns) < 2 or turns[-1].get("from") != "gpt":
        raise ValueError(f"record {record.get('id')!r}: field 'conversations' must end with the gpt answer")
    return turns[:-1], turns[-1]["value"]


def _question(turns: list[dict[str, str]]) -> str:
    """The last human turn without image placeholders and "Image k:" labels (what a judge is shown)."""
    text = turns[-1]["value"].replace(IMAGE_PLACEHOLDER, "")
    return re.sub(r"Image \d+:\s*", "", text).strip()


def _meta(record: dict[str, Any], key: str) -> Any:
    meta = record.get("meta") or {}
    if key not in meta:
        raise ValueError(f"record {record.get('id')!r}: field 'meta.{key}' is missing (needed by this task kind)")
    return meta[key]


def _scenes(record: dict[str, Any]) -> list[dict[str, Any]]:
    """``meta.scenes`` checked for shape only (one dict per image); their content is read when facts are scored."""
    scenes = (record.get("meta") or {}).get("scenes")
    if scenes is None:
        return []
    if not isinstance(scenes, list) or not all(isinstance(s, dict) for s in scenes):
        raise ValueError(f"record {record.get('id')!r}: field 'meta.scenes' must be a list of scene objects")
    if len(scenes) != len(record["image"]):
        raise ValueError(f"record {record.get('id')!r}: field 'meta.scenes' holds {len(scenes)} scene(s) for "
                         f"{len(record['image'])} image(s)")
    return scenes


def _category(record: dict[str, Any]) -> str:
    value = (record.get("meta") or {}).get("category", "")
    if not isinstance(value, str):
        raise ValueError(f"record {record.get('id')!r}: field 'meta.category' must be a string, got {value!r}")
    return value


def generate_items(record: dict[str, Any]) -> list[Item]:
    turns, answer = _split_answer(record)
    refs = (record.get("meta") or {}).get("refs") or [answer]
    return [Item(record["id"], record["id"], record["image"], turns, refs=list(refs), question=_question(turns),
                 scenes=_scenes(record), category=_category(record))]


def rank_items(record: dict[str, Any]) -> list[Item]:
    turns, _ = _split_answer(record)
    choices, answer = _meta(record, "choices"), _meta(record, "answer")
    if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c for c in choices):
        raise ValueError(f"record {record['id']!r}: field 'meta.choices' must be a list of >= 2 non-empty strings")
    if answer not in choices:
        raise ValueError(f"record {record['id']!r}: field 'meta.answer' {answer!r} is not one of meta.choices")
    return [Item(record["id"], record["id"], record["image"], turns, candidates=list(choices), answer=answer,
                 category=_category(record))]


def vqa_items(record: dict[str, Any]) -> list[Item]:
    """A short-answer question: ``meta.answers`` are the human answers (10 in VQAv2/VizWiz/TextVQA, 1 in GQA)."""
    turns, _ = _split_answer(record)
    answers = _meta(record, "answers")
    if not isinstance(answers, list) or not answers or not all(isinstance(a, str) for a in answers):
        raise ValueError(f"record {record['id']!r}: field 'meta.answers' must be a non-empty list of strings")
    return [Item(record["id"], record["id"], record["image"], turns, refs=list(answers), question=_question(turns),
                 category=_category(record))]


_PAIR = re.compile(r"\s*1-([AB]),\s*2-([AB])\s*")


def pair_match_items(record: dict[str, Any]) -> list[Item]:
    """Two items: "which text goes with Image k?" for k = 1, 2 (candidates "A", "B"). With ``meta.rounds``
    ``"caption"`` the rounds ask the other way, as CaD-VI's EQBEN/COLA files do: ``meta.round_prompts`` are the
    questions about image 1's and image 2's caption, each with the options "A. Image 1" / "B. Image 2"."""
    texts, answer = _meta(record, "texts"), _meta(record, "answer")
    match = _PAIR.fullmatch(answer) if isinstance(answer, str) else None
    if not isinstance(texts, dict) or set(texts) != {"A", "B"} or match is None or match[1] == match[2]:
        raise ValueError(f"record {record['id']!r}: fields 'meta.texts' ({{'A', 'B'}}) and 'meta.answer' "
                         f"('1-A, 2-B' or '1-B, 2-A') are required, got {texts!r} / {answer!r}")
    if len(record["image"]) != 2:
        raise ValueError(f"record {record['id']!r}: field 'image' must hold 2 images, got {len(record['image'])}")
    rounds = (record.get("meta") or {}).get("rounds", "image")
    if rounds == "caption":
        prompts = _meta(record, "round_prompts")
        if not (isinstance(prompts, list) and len(prompts) == 2 and all(isinstance(p, str) for p in prompts)):
            raise ValueError(f"record {record['id']!r}: field 'meta.round_prompts' must hold 2 prompts")
        return [Item(f"{record['id']}#{k}", record["id"], record["image"], [{"from": "human", "value": p}],
                     candidates=["A", "B"], answer="AB"[k - 1], part=k) for k, p in enumerate(prompts, 1)]
    if rounds != "image":
        raise ValueError(f"record {record['id']!r}: field 'meta.rounds' must be 'image' or 'caption', got {rounds!r}")
    items = []
    for k in (1, 2):
        prompt = (f"Image 1: {IMAGE_PLACEHOLDER}\nImage 2: {IMAGE_PLACEHOLDER}\n"
                  f"Text A: \"{texts['A']}\"\nText B: \"{texts['B']}\"\n"
                  f"Which text goes with Image {k}? Answer A or B.")
        items.append(Item(f"{record['id']}#{k}", record["id"], record["image"], [{"from": "human", "value": prompt}],
                          candidates=["A", "B"], answer=match[k], part=k))
    return items


_BUILDERS: dict[str, ItemsHook] = {
    "generate": generate_items,
    "rank": rank_items,
    "pair_match": pair_match_items,
    "judge": generate_items,  # answered like generation, then rated
    "vqa": vqa_items,
}


# --------------------------------------------------------------------------------------------- user tasks


def task_from_dict(data: dict[str, Any], source: str = "task definition") -> EvalTask:
    """An `EvalTask` from a mapping (YAML); ``items`` may name a hook as ``"package.module:function"``."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: a task definition must be a mapping, got {type(data).__name__}")
    known = {f.name for f in fields(EvalTask)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{source}: unknown field(s) {unknown}; valid fields: {', '.join(sorted(known))}")
    data = dict(data)
    hook = data.get("items")
    if isinstance(hook, str):
        data["items"] = _resolve_hook(hook, source)
    try:
        return EvalTask(**data)
    except TypeError as err:  # a required field is missing
        raise ValueError(f"{source}: {err}") from None


def _resolve_hook(spec: str, source: str) -> ItemsHook:
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"{source}: items hook must look like 'package.module:function', got {spec!r}")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"{source}: cannot import items hook {spec!r}: {err}") from None
    return fn


def load_task_file(path: str | Path) -> list[EvalTask]:
    """Register the tasks of a YAML file (a mapping or a list of mappings with `EvalTask` fields)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise FileNotFoundError(f"{path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from None
    entries = data if isinstance(data, list) else [data]
    return [register(task_from_dict(d, f"{path} (task {i})")) for i, d in enumerate(entries)]


# --------------------------------------------------------------------------------------------- built-in tasks

_BUILT_IN = (
    EvalTask("caption", "generate", "Captioning", "caption", max_new_tokens=64,
             description="describe one image: place, objects, colours, positions (mini's grounding, fact-scored)"),
    EvalTask("group_caption", "generate", "Group captioning", "group_caption", max_new_tokens=32,
             description="one caption that fits every image of a group (SAM Table 1a)"),
    EvalTask("storytelling", "generate", "Storytelling", "storytelling", max_new_tokens=160,
             description="a story across 3-5 images featuring named characters (SAM Table 1b)"),
    EvalTask("change_caption", "generate", "Change captioning", "change_caption", max_new_tokens=48,
             description="what changed between two images (SAM Table 3)"),
    EvalTask("bison", "rank", "BISON", "bison", chance=50.0,
             description="which of two images matches a caption (CaD-VI Table 1)"),
    EvalTask("svo", "rank", "SVO", "svo", chance=50.0,
             description="which of two images shows a subject-verb-object triplet (CaD-VI Table 1)"),
    EvalTask("nlvr2", "rank", "NLVR2", "nlvr2", chance=50.0,
             description="is a statement about two images true or false (CaD-VI Table 1)"),
    EvalTask("eqben", "pair_match", "EQBEN", "eqben", chance=25.0,
             description="match two images to two minimally different texts; both must be right (CaD-VI Table 1)"),
    EvalTask("cola", "pair_match", "COLA", "cola", chance=25.0,
             description="match two images to two attribute-swapped texts; both must be right (CaD-VI Table 1)"),
    EvalTask("vqa_options", "rank", "VQA (options)", "vqa_options", chance=25.0,
             description="zero-shot multiple-choice questions about 1-3 images, 4 options"),
    EvalTask("cad", "judge", "CaD summary", "cad", default_n=50, max_new_tokens=160,
             description="commonalities-and-differences summary of two images, LLM-judged 0-5 (CaD-VI Table 2)"),
    EvalTask("cad_qa", "judge", "CaD-QA", "cad_qa", default_n=50, max_new_tokens=64,
             description="open questions on what two images share or not, LLM-judged 0-5 (CaD-VI Table 2)"),
)
# What a released data set's reader adds to a built-in task of the same name (BISON, NLVR2, CaD-QA, ...).
READER_FIELDS = ("reader", "splits", "layout", "source")


def _register_built_in() -> None:
    from mmlink.eval.benchmarks import TASKS as released  # the readers import nothing from this module

    world = {t.name: t for t in _BUILT_IN}
    for spec in released:
        base = world.get(spec["name"])
        if base is None:
            register(EvalTask(**spec))
        elif spec.get("kind", base.kind) != base.kind:
            raise ValueError(f"released-data task {spec['name']!r}: kind {spec['kind']!r} differs from the "
                             f"built-in task's {base.kind!r}")
        else:
            world[base.name] = replace(base, **{k: spec[k] for k in READER_FIELDS if k in spec})
    for task in world.values():
        register(task)


_register_built_in()


def task_groups() -> dict[str, list[str]]:
    """Names that stand for several tasks in ``--task`` (as lmms-eval's groups): ``all`` = every world task (they
    need no data); ``sam``, ``cadvi`` = the papers' world tasks (CaD-VI's also read their releases with
    ``--data-root``); ``sam_released``, ``vislinginstruct``, ``multi_image`` = the released sets of
    `mmlink.eval.benchmarks` (``--data-root`` needed)."""
    from mmlink.eval import benchmarks

    world = [n for n in EVAL_TASKS if EVAL_TASKS.get(n).world_task]
    return {"all": world, "sam": ["group_caption", "storytelling", "change_caption"],
            "cadvi": ["bison", "svo", "nlvr2", "eqben", "cola", "cad_qa"],
            "sam_released": [t["name"] for t in benchmarks.sam.TASKS],
            "vislinginstruct": [t["name"] for t in benchmarks.vislinginstruct.TASKS],
            "multi_image": [t["name"] for t in benchmarks.multi_image.TASKS]}


def expand_tasks(names: Sequence[str]) -> list[str]:
    """``--task`` values to task names: comma lists split, groups (`task_groups`) expanded, repeats dropped, order
    kept; an unknown name is an error listing the tasks and the groups."""
    groups, out = task_groups(), []
    for value in names:
        for name in (part.strip() for part in str(value).split(",")):
            if not name:
                continue
            if name in groups:
                out += groups[name]
            elif name in EVAL_TASKS:
                out.append(name)
            else:
                raise ValueError(f"unknown task {name!r}; tasks: {', '.join(EVAL_TASKS.names())}; groups: "
                                 f"{', '.join(f'{g} ({len(m)})' for g, m in groups.items())}")
    return list(dict.fromkeys(out))

__all__ = ["EVAL_TASKS", "EvalTask", "Item", "KINDS", "RANK_METRICS", "Reader", "expand_tasks", "load_task_file",
           "register", "task_from_dict", "task_groups"]
