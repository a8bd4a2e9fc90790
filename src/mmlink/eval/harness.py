"""`mmlink eval`: answer a task's items with a model, score them the papers' way, write a report.

Per run directory (``--out``):

* ``run.json``          — the model and settings this directory belongs to, with the resolved dtype (a re-run with
  another model, or whose ``--dtype auto`` resolves differently on another machine, is refused);
* ``predictions.jsonl`` — one line per answered item, appended and fsynced per batch: a killed run loses at most
  the batch in flight, and a re-run skips every ``(task, id)`` already there;
* ``judgements.jsonl``  — judge tasks: the rating of each prediction (the judge caches its responses on disk);
* ``metrics.json``      — scores per task with model, settings, config, commit, seed and the dtype choice
  (``dtype``: `mmlink.runtime.DtypeChoice.to_dict`, the resolved dtype, why, and the CPU/GPU facts behind it);
  per task ``ci`` ``{metric: [lo, hi]}``, 95 % percentile-bootstrap intervals (`mmlink.eval.intervals`);
* ``blind/``            — with ``--blind``: ``predictions.jsonl`` (and ``judgements.jsonl``) of the same items
  answered with flat gray images (`mmlink.eval.blind`), resumable like the real ones; metrics.json then has per
  task ``blind`` ``{metric: value}``, ``gap`` ``{metric: real − blind}`` and ``gap_ci`` (paired bootstrap);
* ``report.md``         — one table per task kind in the papers' layout.

Data: each task reads the world's test set by default (synthesized once into ``--data-dir``, reused by every model
evaluated with the same seed and size), a data set as its authors released it (``--data-root``: the task's reader,
`mmlink.eval.benchmarks`) or a user file given with ``--data TASK=PATH``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Literal, Optional, Sequence

from mmlink.eval.blind import gap
from mmlink.fileio import atomic_write
from mmlink.metrics import MIN_CIDER_SET, cider_unreliable
from mmlink.eval.intervals import intervals, paired_intervals, read_judgements, task_statistics
from mmlink.eval.options import OPTION_SCORING_HELP, OptionScoring
from mmlink.eval.tasks import EVAL_TASKS, EvalTask, Item, expand_tasks
from mmlink.models import SamMode
from mmlink.runtime import DEVICE_HELP, DTYPE_HELP, QUANTIZE_HELP, choose_dtype, resolve_device
from mmlink.settings import check_fields, setting

FORMAT = "mmlink-eval-v1"
SETTING_KEYS = ("sam_mode", "sam_context_pool", "sam_guide_layer", "sam_context_layer")


BLIND_HELP = ("blind control: answer the same items a second time with every image replaced by a flat gray "
              "image of the processor's input size in the vision tower's normalisation mean (so the normalised "
              "pixels are 0: no visual signal); its predictions go to OUT/blind/ (resumable), and metrics.json and "
              "report.md add per task the blind scores and the gap real - blind with a paired 95% bootstrap "
              "interval. The real pass runs too, or is reused from OUT")


@dataclass
class EvalConfig:
    """Settings of one `mmlink eval` run (everything but the model and the tasks); each field is a flag of the
    command (`mmlink.settings.add_flags`) and a key of its ``--config`` file."""

    out: str = setting(help="run directory, resumable")
    data: dict[str, str] = setting(factory=dict, help="evaluate TASK on this LLaVA-format .json/.jsonl file instead "
                                   "of the world's test set")
    data_root: dict[str, str] = setting(factory=dict, help="read the task's released data set from DIR (its layout: "
                                        "docs/evaluation.md); a bare DIR serves every task, each from DIR/<task> when "
                                        "that exists, else DIR itself")
    data_dir: Optional[str] = setting(None, help="where world test sets are synthesized and images stored inside "
                                      "released data files are written (null: OUT/data)")
    split: Optional[str] = setting(None, help="world: train, val or test (null: test); released data: the task's own "
                                   "splits (null: the one its paper reports, e.g. nlvr2 test1, gqa testdev)")
    limit: Optional[int] = setting(None, min=1, help="items per task (null: each task's own size)")
    seed: int = setting(0, min=0, help="seed of the world's test sets and of decoding")
    batch_size: int = setting(8, min=1, help="items per forward/generate")
    option_scoring: Optional[OptionScoring] = setting(
        None, help=OPTION_SCORING_HELP + " (null: the task's own protocol — generate for the multi-image benchmarks, "
        "whose official code extracts the option letter — else sum)")
    blind: bool = setting(False, help=BLIND_HELP)
    max_new_tokens: Optional[int] = setting(None, min=1, help="override each task's answer length")
    tokenize: Literal["simple", "ptb"] = setting("simple", help="caption metric tokenization: simple (SAM's script) "
                                                 "or ptb (needs java)")
    min_cider_set: int = setting(MIN_CIDER_SET, min=0, help="generation tasks with fewer items (a --limit smoke run) "
                                 "report CIDEr as null with the reason instead of a meaningless number: its IDF is "
                                 "computed over the evaluated items (0: always compute it)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = setting(
        "auto", help=DTYPE_HELP + "; the choice and its reason are recorded in run.json and metrics.json")
    device: Optional[str] = setting(None, help=DEVICE_HELP)
    quantize: Literal["none", "int8", "int4"] = setting("none", help=QUANTIZE_HELP)
    fast_greedy: bool = setting(True, help="mmlink's static-cache greedy loop (false: transformers' generate on the "
                                "model as loaded)")
    image_size: int = setting(224, min=8, help="world image size")
    sam_mode: Optional[SamMode] = setting(None, help="override the model's SAM variant")
    label: Optional[str] = setting(None, help="display name in reports (null: the model's name)")
    progress: bool = setting(True, help="progress bars")
    aio: bool = setting(False, help="optimize every item's instruction first (VisLingInstruct's AIO, "
                        "src/mmlink/aio.py): each prediction row records the candidates, their IAS and the optimized "
                        "instruction, and the report AIO's cost (x time per item)")
    aio_rewrites: int = setting(1, min=1, help="with aio: rewrites per instruction")
    aio_backend: Optional[str] = setting(None, help="with aio: the rewriter, a mmlink.textllm spec (null: the model's "
                                         "own LLM)")
    judge_backend: Optional[str] = setting(None, help="the judge as a text-LLM spec: template (word overlap with the "
                                           "reference, no model), local, local:PATH, openai:MODEL@URL; instead of "
                                           "judge_url, judge_model and judge_local_model")
    judge_url: Optional[str] = setting(None, help="OpenAI-compatible endpoint of the judge (e.g. .../v1)")
    judge_model: Optional[str] = setting(None, help="model name at judge_url")
    judge_key_env: str = setting("OPENAI_API_KEY", help="environment variable holding the judge's API key")
    judge_local_model: Optional[str] = setting(None, help="a local transformers causal LM as judge (null without "
                                               "judge_url: mini's SmolLM2, weak)")
    judge_cache: Optional[str] = setting(None, help="judge response cache (null: $MMLINK_CACHE/judge)")
    judge_retries: int = setting(2, min=0, help="re-asks after an unparseable rating before it counts as a failure")
    tolerate_judge_failures: bool = setting(False, help="report the mean rating over the items the judge could rate; "
                                            "otherwise any item the judge fails on (unreachable, no rating) stops "
                                            "the run with the reason")

    def __post_init__(self) -> None:
        check_fields(self)
        if self.split == "":
            raise ValueError("split (--split) must be a split name, got ''")
        if not self.aio and (self.aio_rewrites != 1 or self.aio_backend):
            raise ValueError("aio_rewrites and aio_backend (--aio-rewrites, --aio-backend) need aio (--aio)")


# --------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class TaskData:
    """Where a task's records come from: a LLaVA-format file (the world's test set or the user's ``--data``), or a
    released data set's directory read by the task's reader (``split`` set then)."""

    path: Path
    split: Optional[str] = None  # released data only
    cache: Optional[Path] = None  # released data: where images stored inside its files are written

    def to_dict(self) -> dict:
        return {"data": str(self.path), **({"split": self.split} if self.split is not None else {})}


WORLD_SPLITS = ("train", "val", "test")


def data_root(task: EvalTask, config: EvalConfig) -> Optional[Path]:
    """The released data set directory of ``task`` from ``config.data_root`` (None: the task reads other data)."""
    if task.name in config.data_root:
        root = Path(config.data_root[task.name])
    elif "*" in config.data_root:
        base = Path(config.data_root["*"])
        root = base / task.name if (base / task.name).is_dir() else base
    else:
        return None
    if task.reader is None:
        readers = ", ".join(n for n in EVAL_TASKS if EVAL_TASKS.get(n).reader is not None)
        raise ValueError(f"--data-root: task {task.name!r} has no reader for a released data set; tasks with one: "
                         f"{readers}")
    return root


def task_data(task: EvalTask, config: EvalConfig) -> TaskData:
    """The data of ``task``: the user's file (``config.data``), its released data set (``config.data_root``), or
    the world's test set, synthesized if needed."""
    if task.name in config.data:
        from mmlink.data.formats import resolve_data_path

        path = Path(config.data[task.name])
        if not path.exists():
            raise FileNotFoundError(f"--data {task.name}={path}: no such file or directory")
        return TaskData(resolve_data_path(path))  # a file, what mmlink synth wrote, or a save_to_disk directory
    root = data_root(task, config)
    if root is not None:
        split = config.split or task.splits[0]
        if split not in task.splits:
            raise ValueError(f"--split {split!r}: task {task.name!r} has split(s) {', '.join(task.splits)}")
        cache = (Path(config.data_dir) if config.data_dir else Path(config.out) / "data") / f"{task.name}-images"
        return TaskData(root, split, cache)
    if task.world_task is None:
        layout = f" (layout: {task.layout})" if task.layout else ""
        raise ValueError(f"task {task.name!r} reads a released data set: give its directory with --data-root DIR"
                         f"{layout}, or a LLaVA-format file with --data {task.name}=PATH")
    split = config.split or "test"
    if split not in WORLD_SPLITS:
        raise ValueError(f"--split {split!r}: the world's splits are {', '.join(WORLD_SPLITS)}")
    from mmlink.data.synth import synthesize

    n = config.limit or task.default_n
    root = Path(config.data_dir) if config.data_dir else Path(config.out) / "data"
    out = root / f"{task.world_task}-{split}-s{config.seed}-n{n}-{config.image_size}px"
    if not (out / "data.jsonl").exists() or not _synth_complete(out, n):
        synthesize(task.world_task, out, n, split, config.seed, image_size=config.image_size,
                   progress=config.progress)
    return TaskData(out / "data.jsonl")


def _synth_complete(out: Path, n: int) -> bool:
    try:
        return json.loads((out / "synth.json").read_text()).get("records") == n
    except (OSError, json.JSONDecodeError):
        return False


def task_items(task: EvalTask, data: TaskData | Path, limit: int | None) -> list[Item]:
    """The items of ``task`` from ``data`` (a file is validated as LLaVA format; a released data set is read by the
    task's reader), its first ``limit`` records."""
    data = data if isinstance(data, TaskData) else TaskData(Path(data))
    if data.split is not None:
        records = task.reader(data.path, data.split, data.cache or data.path / ".mmlink-images")
        source = f"{data.path} ({task.name}, split {data.split})"
    else:
        from mmlink.data.formats import default_image_root, read_dataset, resolve_image

        records, _ = read_dataset(data.path)
        root = default_image_root(data.path)
        records = [{**r, "image": [resolve_image(p, root) for p in r["image"]]} for r in records]
        source = str(data.path)
    if limit is not None:
        records = records[:limit]
    if not records:
        raise ValueError(f"{source}: no records")
    items = []
    for r in records:
        try:
            items += task.build_items(r)
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None
    return items


# --------------------------------------------------------------------------------------------- predictions file


class PredictionStore:
    """``predictions.jsonl``: append-only, one JSON object per item with ``task`` and ``id``; torn tails dropped."""

    def __init__(self, path: Path):
        self.path = path
        self.done: dict[tuple[str, str], dict] = {}
        if path.exists():
            raw = path.read_bytes()
            good = raw[: raw.rfind(b"\n") + 1]  # a crash mid-write leaves at most one partial last line
            if len(good) != len(raw):
                with open(path, "r+b") as f:
                    f.truncate(len(good))
            for line in good.decode().splitlines():
                if line.strip():
                    row = json.loads(line)
                    self.done[(row["task"], row["id"])] = row

    def rows(self, task: str) -> list[dict]:
        return [r for (t, _), r in self.done.items() if t == task]

    def append(self, rows: Iterable[dict]) -> None:
        rows = list(rows)
        with open(self.path, "a") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        for r in rows:
            self.done[(r["task"], r["id"])] = r


# --------------------------------------------------------------------------------------------- answering


def _batches(items: list[Item], size: int) -> Iterable[list[Item]]:
    # Similar shapes in one batch: fewer padded positions and image rows of one size.
    ordered = sorted(items, key=lambda it: (len(it.images), len(it.turns[-1]["value"])))
    for i in range(0, len(ordered), size):
        yield ordered[i : i + size]


def generate_answers(model, processor, items: Sequence[Item], max_new_tokens: int,
                     fast_greedy: bool = True, images: Optional[Sequence[Sequence[Any]]] = None) -> list[str]:
    """Greedy answers (KV cache) for a batch of items, left-padded in one `generate` call.

    ``images``: per item, the images to show instead of its own (paths or PIL images; the blind pass's gray)."""
    import torch

    if images is None:
        images = [[Path(p) for p in it.images] for it in items]
    batch = processor.encode_conversation([it.turns for it in items], list(images), padding_side="left")
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    batch = batch.to(device, dtype=dtype)  # BatchFeature casts the floating tensors only (pixel values)
    with torch.inference_mode():
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                             pad_token_id=processor.pad_token_id, fast_greedy=fast_greedy)
    return processor.batch_decode(out)


def _answer_task(model, processor, task: EvalTask, items: list[Item], store: PredictionStore, config: EvalConfig,
                 gray=None, aio=None):
    """Answer the items ``store`` lacks; ``gray``: a PIL image shown in place of every image (the blind pass);
    ``aio``: `_aio`'s optimizer, each item answered with the instruction it writes."""
    from tqdm.auto import tqdm

    from mmlink.eval.blind import item_images
    from mmlink.eval.options import OPTION_ANSWER_TOKENS, match_option
    from mmlink.eval.ranking import score_candidates

    todo = [it for it in items if (task.name, it.id) not in store.done]
    desc = f"eval {task.name}" if gray is None else f"eval {task.name} (blind)"
    bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=desc, unit="item", disable=not config.progress)
    closed, scoring = task.kind in CLOSED_KINDS, option_scoring(task, config)
    max_new = config.max_new_tokens or (OPTION_ANSWER_TOKENS if closed else task.max_new_tokens)
    for batch in _batches(todo, config.batch_size):
        images = item_images([it.images for it in batch], gray)
        steps, t0 = None, time.perf_counter()
        if aio is not None:  # the instruction each item is answered with: AIO's, written beside the answer
            steps = aio(batch, images)
            batch = [replace(it, turns=[*it.turns[:-1], {**it.turns[-1], "value": r.prompt}])
                     for it, r in zip(batch, steps)]
        t1 = time.perf_counter()
        if not closed:
            texts = generate_answers(model, processor, batch, max_new, config.fast_greedy, images=images)
            rows = [{"task": task.name, "id": it.id, "text": t, "refs": it.refs} for it, t in zip(batch, texts)]
        elif scoring == "generate":
            texts = generate_answers(model, processor, batch, max_new, config.fast_greedy, images=images)
            rows = []
            for it, text in zip(batch, texts):
                match = match_option(text, it.candidates, it.turns[-1]["value"])
                choice = None if match.index is None else it.candidates[match.index]
                rows.append({"task": task.name, "id": it.id, "sample": it.sample, "choice": choice,
                             "answer": it.answer, "correct": choice == it.answer, "text": text,
                             "match": match.rule})
        else:
            scored = score_candidates(model, processor, [it.turns for it in batch], images,
                                      [it.candidates for it in batch])
            rows = []
            for it, s in zip(batch, scored):
                choice = it.candidates[s.best(scoring)]
                rows.append({"task": task.name, "id": it.id, "sample": it.sample, "choice": choice,
                             "answer": it.answer, "correct": choice == it.answer, "logprob": s.logprob,
                             "tokens": s.tokens})
        if steps is not None:  # per item: every AIO step and its share of the batch's time
            t2 = time.perf_counter()
            for row, r in zip(rows, steps):
                row.update(aio=r.to_dict(), aio_seconds=(t1 - t0) / len(rows), answer_seconds=(t2 - t1) / len(rows))
        store.append(rows)
        bar.update(len(batch))
    bar.close()


CLOSED_KINDS = ("rank", "pair_match")  # answered by picking a candidate; the other kinds generate text


def option_scoring(task: EvalTask, config: EvalConfig) -> str:
    """How ``task``'s candidates are picked: ``--option-scoring`` when given, else the task's protocol, else sum."""
    return config.option_scoring or task.option_scoring or "sum"


def _aio(model, processor, config: EvalConfig):
    """``(items, images) -> [AioResult]`` optimizing each item's last human turn, or None without ``config.aio``.
    One per run: its rewrites of an instruction serve every later item with the same one (`mmlink.aio.optimize`)."""
    if not config.aio:
        return None
    from mmlink.aio import AioSettings, optimize, rewriter

    settings = AioSettings(rewrites=config.aio_rewrites, backend=config.aio_backend)
    llm, memo = rewriter(model, processor, settings), {}
    return lambda items, images: optimize(model, processor, [it.turns[-1]["value"] for it in items], images,
                                          settings, llm=llm, memo=memo)


def aio_cost(rows: Sequence[dict]) -> Optional[dict]:
    """AIO's share of the work over a task's prediction rows: seconds per item answering alone and with AIO, the
    ratio (× time per item), and how often the optimized instruction differs from the original or fell back."""
    rows = [r for r in rows if "aio" in r]
    if not rows:
        return None
    answer = sum(r["answer_seconds"] for r in rows) / len(rows)
    extra = sum(r["aio_seconds"] for r in rows) / len(rows)
    return {"items": len(rows), "answer_s_per_item": answer, "aio_s_per_item": extra,
            "cost_x": (answer + extra) / answer if answer > 0 else None,
            "changed": sum(r["aio"]["optimized"] != r["aio"]["instruction"] for r in rows) / len(rows),
            "fallbacks": sum(bool(r["aio"]["fallback"]) for r in rows),
            "rewrites_reused": sum(bool(r["aio"].get("reused")) for r in rows)}


# --------------------------------------------------------------------------------------------- scoring


def score_task(task: EvalTask, items: list[Item], store: PredictionStore, config: EvalConfig, judge=None) -> dict:
    """The task's entry in metrics.json from its predictions."""
    rows = {r["id"]: r for r in store.rows(task.name)}
    ids = [it.id for it in items]
    missing = [i for i in ids if i not in rows]
    if missing:
        raise RuntimeError(f"task {task.name}: {len(missing)} item(s) have no prediction (first: {missing[0]})")
    entry: dict[str, Any] = {"kind": task.kind, "group": task.title}
    scoring = option_scoring(task, config)
    if task.kind == "vqa":
        from mmlink.eval.closed import vqa_scores

        entry["n"] = len(items)
        per_item = vqa_scores(items, rows)
        entry["metrics"] = {"VQA accuracy": 100.0 * sum(per_item) / len(items)}
        _add_categories(entry, items, per_item, "VQA accuracy")
    elif task.kind == "rank" and task.metric != "accuracy":
        from mmlink.eval.bootstrap import weighted_auc
        from mmlink.eval.closed import margins, retrieval_metrics

        entry["n"] = len(items)
        if task.metric == "retrieval":
            entry["metrics"] = retrieval_metrics(items, rows, scoring)
        else:
            margin, labels = margins(items, rows, scoring)
            entry["metrics"] = {"AUC": 100.0 * weighted_auc(margin, labels),
                                "accuracy": 100.0 * sum(bool(rows[it.id]["correct"]) for it in items) / len(items)}
            entry["chance"] = task.chance
        entry["scoring"] = scoring
    elif task.kind == "generate":
        from mmlink.metrics import score

        preds, refs = {i: rows[i]["text"] for i in ids}, {it.id: it.refs for it in items}
        unreliable = cider_unreliable(refs, config.min_cider_set)
        result = score(preds, refs, tokenize=config.tokenize, min_cider_set=None,
                       metrics="bleu4,rougeL" if unreliable else "bleu4,rougeL,cider")
        entry["n"] = result.pop("n")
        entry["metrics"] = {k: result.get(k) for k in ("ROUGE-L", "CIDEr", "BLEU-4")}  # CIDEr None: not meaningful
        if unreliable:
            entry["cider_unreliable"] = unreliable
        _generation_categories(entry, items, preds, refs, config)
        entry["tokenize"] = config.tokenize
        _add_world_facts(entry, items, rows)
    elif task.kind in ("rank", "pair_match"):
        by_sample: dict[str, bool] = {}
        for it in items:  # a pair_match sample is right only when both of its items are
            by_sample[it.sample] = by_sample.get(it.sample, True) and bool(rows[it.id]["correct"])
        entry["n"] = len(by_sample)
        entry["metrics"] = {"accuracy": 100.0 * sum(by_sample.values()) / len(by_sample)}
        if task.kind == "rank":
            _add_categories(entry, items, [float(bool(rows[it.id]["correct"])) for it in items], "accuracy")
        entry["chance"] = task.chance
        entry["scoring"] = scoring
        if scoring == "generate":  # answers naming no option (or several) were counted wrong
            entry["unmatched"] = sum(rows[i].get("choice") is None for i in ids)
        if task.kind == "pair_match":
            entry["item_accuracy"] = 100.0 * sum(bool(rows[i]["correct"]) for i in ids) / len(ids)
    else:
        if judge is None:
            raise ValueError(f"task {task.name} needs a judge")
        summary = judge.rate_all([(it.id, it.question, it.refs[0], rows[it.id]["text"]) for it in items],
                                 progress=config.progress)
        _write_judgements(Path(config.out) / "judgements.jsonl", task.name, summary)
        if summary.failures and not config.tolerate_judge_failures:
            first = summary.failed_ids[0]
            raise JudgeFailedError(
                f"task {task.name}: the judge ({summary.backend}) gave no rating for {summary.failures} of "
                f"{len(items)} item(s); first, {first}: {summary.results[first].raw[:300]!r}. Every response is in "
                f"{Path(config.out) / 'judgements.jsonl'}; the answers are kept, so a re-run only asks the judge "
                "again. --tolerate-judge-failures reports the mean over the rated items instead")
        entry["n"] = len(items)
        entry["metrics"] = {"rating": summary.mean_rating}
        # the judge's measured discrimination (mmlink judge-check) travels with every rating it gave
        entry["judge"] = {"backend": summary.backend, "weak": summary.weak, "prompt_version": summary.prompt_version,
                          "rated": summary.rated, "failures": summary.failures,
                          "discrimination": summary.discrimination}
        _add_world_facts(entry, items, rows)  # exact, where a judge is only as good as its measured AUC
    return entry


def model_label(model: str | os.PathLike) -> str:
    """A report's name for a model: a preset's name, a directory's name — a training run's ``final``/``merged``
    its run's (``runs/stage2/final`` → ``stage2``), a checkpoint ``run@step-000040``."""
    path = Path(str(model))
    if path.name in ("final", "merged") and path.parent.name:
        return path.parent.name if path.name == "final" else f"{path.parent.name}@merged"
    if path.name.startswith("step-") and path.parent.name == "checkpoints" and path.parent.parent.name:
        return f"{path.parent.parent.name}@{path.name}"
    return path.name


class JudgeFailedError(ValueError):
    """The judge could not rate some answers (unreachable, or no parseable rating after the retries)."""


def _add_categories(entry: dict, items: list[Item], scores: list[float], metric: str) -> None:
    """Items with categories (a benchmark's subtasks): ``by_category`` {category: {n, metric}}, and the mean over
    categories as the metric "<metric> (category mean)" — BLINK's and MMIU's headline number."""
    if not any(it.category for it in items):
        return
    groups: dict[str, list[float]] = {}
    for it, value in zip(items, scores):
        groups.setdefault(it.category or "(none)", []).append(value)
    entry["by_category"] = {c: {"n": len(v), metric: 100.0 * sum(v) / len(v)} for c, v in sorted(groups.items())}
    entry["metrics"][f"{metric} (category mean)"] = sum(c[metric] for c in entry["by_category"].values()) / len(groups)


def _generation_categories(entry: dict, items: list[Item], preds: dict, refs: dict, config: EvalConfig) -> None:
    """Generation items with categories (NoCaps' domains, CLEVR-Change's change types): each category scored as its
    own set, as those papers report them (CIDEr's IDF then comes from the category's items; null when too few)."""
    if not any(it.category for it in items):
        return
    from mmlink.metrics import score

    groups: dict[str, list[str]] = {}
    for it in items:
        groups.setdefault(it.category or "(none)", []).append(it.id)
    entry["by_category"] = {}
    for category, ids in sorted(groups.items()):
        sub_refs = {i: refs[i] for i in ids}
        unreliable = cider_unreliable(sub_refs, config.min_cider_set)
        result = score({i: preds[i] for i in ids}, sub_refs, tokenize=config.tokenize, min_cider_set=None,
                       metrics="bleu4,rougeL" if unreliable else "bleu4,rougeL,cider")
        entry["by_category"][category] = {"n": result.pop("n"),
                                          **{k: result.get(k) for k in ("ROUGE-L", "CIDEr", "BLEU-4")}}


def _add_world_facts(entry: dict, items: list[Item], rows: dict) -> None:
    """World records carry their scene graphs: check every fact an answer states (fact precision / recall)."""
    if not all(it.scenes for it in items):
        return
    from mmlink.eval.facts import fact_metrics, pooled_counts, tally_answer

    tallies = [tally_answer(rows[it.id]["text"], it.refs, it.scenes) for it in items]
    facts = fact_metrics(tallies)
    # None (null) when no answer stated a fact: precision is undefined then, neither 0 nor 100
    entry["metrics"]["fact precision"] = facts.pop("fact precision", None)
    entry["metrics"]["fact recall"] = facts.pop("fact recall", None)
    entry["facts"] = facts
    entry["fact_counts"] = {t: asdict(c) for t, c in pooled_counts(tallies).items()}


def _write_judgements(path: Path, task: str, summary) -> None:
    keep = []
    if path.exists():
        keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["task"] != task]
    lines = keep + [json.dumps({"task": task, "id": i, "rating": r.rating, "failed": r.failed,
                                "attempts": r.attempts, "response": r.raw}, ensure_ascii=False)
                    for i, r in summary.results.items()]
    atomic_write(path, "\n".join(lines) + "\n")


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


# --------------------------------------------------------------------------------------------- the run


def evaluate(model: str, tasks: Sequence[str], config: EvalConfig, loaded=None, judge=None) -> dict:
    """Evaluate ``model`` (preset or checkpoint directory) on ``tasks``; returns the metrics.json content.

    ``loaded``: an already loaded ``(model, processor)`` to reuse (``model`` is then only the name recorded).
    ``judge``: a `mmlink.eval.judge.Judge` to use instead of the one the config describes.
    """
    if not tasks:
        raise ValueError("give at least one --task")
    specs = [EVAL_TASKS.get(t) for t in expand_tasks(tasks)]  # groups (sam, cadvi, all, ...) and comma lists
    for flag, given in (("--data", config.data), ("--data-root", config.data_root)):
        unknown = sorted(set(given) - {t.name for t in specs} - {"*"})
        if unknown:
            raise ValueError(f"{flag} names task(s) {unknown} that are not evaluated (--task)")
    for task in specs:  # every data set found and every protocol possible before a model is loaded
        if task.name not in config.data:
            data_root(task, config)
        if task.kind == "rank" and task.metric != "accuracy" and option_scoring(task, config) == "generate":
            raise ValueError(f"task {task.name!r} is scored by {task.metric}, which needs the candidates' "
                             "likelihoods: use --option-scoring sum or mean")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    if judge is None and any(t.kind == "judge" for t in specs):
        judge = _make_judge(config)

    import torch

    from mmlink.models import load
    from mmlink.models.decoding import ready_for_inference

    if loaded is None:
        device = resolve_device(config.device)
        overrides = {} if config.sam_mode is None else {"sam_mode": config.sam_mode}
        net, processor = load(model, **overrides)
        net.to(device)
    else:
        net, processor = loaded
    choice = choose_dtype(config.dtype, str(next(net.parameters()).device))
    quantized = ready_for_inference(net, choice.dtype, config.quantize, config.fast_greedy).to_dict()
    settings = {k: getattr(net.config, k) for k in SETTING_KEYS if hasattr(net.config, k)}  # SAM: Q-Former family
    if getattr(net.config, "cmaa", "none") != "none":  # only when on: runs from before CMAA existed still resume
        settings.update({k: getattr(net.config, k) for k in ("cmaa", "cmaa_text", "cmaa_scale")})
    own = {t.name: option_scoring(t, config) for t in specs
           if t.kind in CLOSED_KINDS and option_scoring(t, config) != (config.option_scoring or "sum")}
    # the resolved name: a re-run with --dtype auto on the same machine matches, one computing in another dtype not
    _claim(out / "run.json", {"model": str(model), "model_settings": settings, "dtype": choice.name,
                              "quantize": config.quantize, "seed": config.seed,
                              "option_scoring": config.option_scoring or "sum",
                              # a task answered by its own protocol (e.g. generate for MuirBench) is recorded as such,
                              # so a re-run that would mix two scorings in one predictions file is refused
                              **({"task_option_scoring": own} if own else {}),
                              **({"aio": {"rewrites": config.aio_rewrites, "backend": config.aio_backend}}
                                 if config.aio else {})})
    torch.manual_seed(config.seed)

    metrics_path = out / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {"tasks": {}}
    store = PredictionStore(out / "predictions.jsonl")
    blind = None
    if config.blind:  # its own directory: its own predictions (resumable alike) and judgements, same run.json
        from mmlink.eval.blind import gray_image

        (out / "blind").mkdir(exist_ok=True)
        blind = (PredictionStore(out / "blind" / "predictions.jsonl"), replace(config, out=str(out / "blind")),
                 gray_image(processor))
    aio = _aio(net, processor, config)
    for task in specs:
        t0 = time.perf_counter()
        data = task_data(task, config)
        items = task_items(task, data, config.limit)
        _answer_task(net, processor, task, items, store, config, aio=aio)
        entry = score_task(task, items, store, config, judge)
        stats = _statistics(task, items, store, config)
        entry["ci"] = intervals(entry["metrics"], stats)
        if blind is not None:
            blind_store, blind_config, gray = blind
            _answer_task(net, processor, task, items, blind_store, blind_config, gray=gray, aio=aio)
            blind_entry = score_task(task, items, blind_store, blind_config, judge)
            entry["blind"] = blind_entry["metrics"]
            entry["gap"] = gap(entry["metrics"], entry["blind"])
            # paired on the same items: is what the images add distinguishable from resampling noise?
            entry["gap_ci"] = paired_intervals(stats, _statistics(task, items, blind_store, blind_config),
                                               list(entry["gap"]))
            if "unmatched" in blind_entry:
                entry["blind_unmatched"] = blind_entry["unmatched"]
        cost = aio_cost(store.rows(task.name))
        if cost is not None:
            entry["aio"] = cost
        entry.update(data.to_dict())
        entry["seconds"] = round(time.perf_counter() - t0, 2)
        metrics["tasks"][task.name] = entry
    cfg = {k: v for k, v in asdict(config).items() if k not in ("progress", "label", "out")}
    metrics = {
        "format": FORMAT,
        "model": str(model),
        "label": config.label or model_label(model),
        "model_settings": settings,
        "commit": _commit(),
        "seed": config.seed,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": cfg,
        "dtype": choice.to_dict(),
        "quantization": quantized,
        "tasks": metrics["tasks"],
    }
    atomic_write(metrics_path, json.dumps(metrics, indent=2) + "\n")
    from mmlink.eval.report import run_markdown

    atomic_write(out / "report.md", run_markdown(metrics))
    return metrics


def _statistics(task: EvalTask, items: list[Item], store: PredictionStore, config: EvalConfig) -> dict:
    """Per-metric bootstrap statistics of the task's predictions in ``store`` (`mmlink.eval.intervals`)."""
    rows = {r["id"]: r for r in store.rows(task.name)}
    judgements = read_judgements(Path(config.out) / "judgements.jsonl", task.name) if task.kind == "judge" else None
    return task_statistics(task.kind, items, rows, config.tokenize, judgements, metric=task.metric,
                           scoring=option_scoring(task, config))


def _claim(path: Path, run: dict) -> None:
    """Refuse to mix two models' predictions in one directory."""
    if path.exists():
        old = json.loads(path.read_text())
        if old != run:
            diff = {k: (old.get(k), v) for k, v in run.items() if old.get(k) != v}
            raise ValueError(f"{path.parent} holds predictions of another run {diff} (was, now); use another --out")
        return
    atomic_write(path, json.dumps(run, indent=2) + "\n")


def _make_judge(config: EvalConfig):
    from mmlink.eval.judge import Judge, default_cache_dir, judge_backend

    backend = judge_backend(url=config.judge_url, model=config.judge_model, api_key_env=config.judge_key_env,
                            local_model=config.judge_local_model, spec=config.judge_backend)
    cache = config.judge_cache or str(default_cache_dir())
    return Judge(backend, cache, retries=config.judge_retries)


__all__ = ["EvalConfig", "PredictionStore", "evaluate", "generate_answers", "score_task", "task_data", "task_items"]
