"""`mmlink judge-check`: can this judge tell a right answer from a wrong one? Measured on world CaD-QA items.

CaD-VI reports CaD-QA as a mean LLM rating (0-5) and never says how well the judge discriminates. mmlink measures it
before a rating is reported. For each world CaD-QA item (the same items `mmlink eval --task cad_qa` uses by default,
from the given split and seed) the judge rates four answers to the item's question:

* ``reference``     — the reference answer itself: right by construction;
* ``paraphrase``    — the reference in other words (`paraphrase`: the world's own synonyms, "Image 1" for "the first
  image", digits): right too, but not verbatim — what a model's answer looks like at best;
* ``other_item``    — the reference answer of another item with another question type: an answer to something else;
* ``fact_changed``  — the reference with one fact swapped (`change_fact`): a colour, count, action, place or object
  word replaced by a value the scene graphs make certainly false (the object has another colour, the count differs,
  no object in either image has that colour or kind, ...). It reads almost like the reference, so only a judge that
  checks facts rates it low.

The result: mean rating per kind and the AUC of the ``reference`` ratings against the two wrong kinds (`auc`:
Mann-Whitney, ties count one half; 1 = every right answer rated above every wrong one, 0.5 = no better than chance),
with a 95 % bootstrap interval over items, and a table of AUCs for each right kind (reference, paraphrase) against
each wrong kind. A judge with any of them below `MIN_AUC` (0.8) is **flagged**. The pooled reference AUC alone is too
easy a bar: word overlap with the reference (the template backend, `mmlink.eval.judge.lexical_rating`) rates the
verbatim reference 5 every time and an answer to another question near 0, so it passes, though it cannot see a
changed fact — the paraphrase-vs-fact-changed cell is where it fails. Files in
``--out``: ``judge_check.json`` (everything, per item) and ``judge_check.md``; the summary is also recorded beside the
judge's response cache (`mmlink.eval.judge.check_path`), where `mmlink eval` finds it and prints the AUC (or the
flag) beside every CaD-QA rating that judge gives.

    mmlink judge-check --backend local --n 100 --out runs/judge-check/smollm2
    mmlink judge-check --backend openai:qwen2.5-7b-instruct@http://localhost:8000/v1 --n 200 --out runs/jc/qwen
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import numpy as np

from mmlink.eval.bootstrap import auc, percentiles, resample_counts, weighted_auc
from mmlink.eval.judge import JUDGE_MAX_NEW_TOKENS, MAX_RATING, PROMPT_VERSION, Judge, check_path, default_cache_dir
from mmlink.settings import add_command, add_flags, check_fields, from_args, setting
from mmlink.textllm import SPEC_FORMS, TextLLMSettings, make_backend

MIN_AUC = 0.8
KINDS = ("reference", "paraphrase", "other_item", "fact_changed")
RIGHT_KINDS, WRONG_KINDS = KINDS[:2], KINDS[2:]
TASK = "cad_qa"


@dataclass(frozen=True)
class CheckConfig:
    """Settings of one discrimination check. ``backend`` is a `mmlink.textllm.make_backend` spec."""

    out: str = setting(help="where judge_check.json and judge_check.md go")
    backend: str = setting("local", help=f"the judge: {SPEC_FORMS}")
    n: int = setting(100, min=2, help="world CaD-QA items")
    split: Literal["train", "val", "test"] = setting("test", help="world split")
    seed: int = setting(0, min=0, help="seed of the world items")
    cache: Optional[str] = setting(None, help="the judge's response cache (null: mmlink eval's, $MMLINK_CACHE/judge); "
                                   "the result is recorded there too")
    retries: int = setting(2, min=0, help="re-asks after an unparseable rating")
    min_auc: float = setting(MIN_AUC, min=0.5, max=1, help="flag a judge below this AUC")
    bootstrap: int = setting(2000, min=0, help="bootstrap resamples of the AUC's interval")
    model: Optional[str] = setting(None, help="the server's model name, for --backend openai:URL")
    api_key_env: str = setting("OPENAI_API_KEY", help="environment variable holding the server's API key")
    progress: bool = setting(True, help="progress bar")

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class CheckItem:
    """One world CaD-QA item and its answers (``paraphrase``/``changed`` None when nothing could be swapped)."""

    id: str
    qtype: str
    question: str
    reference: str
    paraphrase: str | None
    other: str
    changed: str | None
    change: str | None  # what was swapped, e.g. "colour red -> purple"


# --------------------------------------------------------------------------- AUC


def bootstrap_auc(ratings: dict[str, list[float | None]], kinds: Sequence[str], resamples: int,
                  seed: int = 0, right: str = "reference") -> list[float] | None:
    """95 % percentile interval of the ``right``-vs-``kinds`` AUC, resampling items: an item drawn c times weighs
    each of its ratings c times (`mmlink.eval.bootstrap`'s resamples and weighted AUC)."""
    n = len(ratings[right])
    if resamples < 1 or n < 2:
        return None
    rows = [(i, r, label) for kind, label in ((right, 1.0), *((k, 0.0) for k in kinds))
            for i, r in enumerate(ratings[kind]) if r is not None]
    if not rows:
        return None
    item, score, label = (np.array(column) for column in zip(*rows))
    weights = resample_counts(n, resamples, seed)[:, item]  # (resamples, rows)
    ci = percentiles(weighted_auc(score, label, weights))
    return None if ci is None else [round(ci[0], 4), round(ci[1], 4)]


# --------------------------------------------------------------------------- wrong answers from the world


def _colors_of(scenes) -> set[str]:
    from mmlink.data.world.scene import Character

    out = set()
    for scene in scenes:
        for o in scene.objects:
            if isinstance(o, Character):
                out |= {o.identity.color, o.identity.pattern_color}
            else:
                out.add(o.color)
    return out


def _swap_first(text: str, phrases: Sequence[str], new: str) -> str | None:
    """``text`` with the first occurrence (as whole words) of the longest of ``phrases`` found replaced by ``new``
    (longest first, so "standing still" is swapped whole, not its "standing")."""
    for phrase in sorted(phrases, key=len, reverse=True):
        match = re.search(rf"\b{re.escape(phrase)}\b", text, flags=re.IGNORECASE)
        if match:
            new_text = new[:1].upper() + new[1:] if match.group(0)[:1].isupper() else new
            return text[: match.start()] + new_text + text[match.end():]
    return None


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str | None:
    options = sorted(options)
    return options[int(rng.integers(len(options)))] if options else None


def change_fact(sample, rng: np.random.Generator) -> tuple[str, str] | None:
    """The sample's reference answer with one fact swapped for a value its scene graphs make false, and what was
    swapped; None when the answer states no fact this can swap.

    The question type says which fact the answer is about (its colour, count, action, place or setting); that one is
    changed to another value. Answers about commonalities/differences get a colour, or else an object kind, that no
    object in either image has — a statement about something absent is false whatever it says.
    """
    from mmlink.data.world.scene import ACTIONS, COLORS, CONTEXTS, THINGS
    from mmlink.data.world.text import ACTION_PHRASES, CONTEXT_PHRASES, LOCATION_PHRASES, count_phrase, plural

    answer, qtype, facts = sample.meta["answer"], sample.meta["qtype"], sample.meta["facts"]
    absent_colors = set(COLORS) - _colors_of(sample.scenes)
    if qtype in ("thing_color", "color_one"):
        colors = facts.get("colors") or [facts["color"]]
        new = _pick(rng, absent_colors) or _pick(rng, set(COLORS) - set(colors))
        changed = _swap_first(answer, [colors[0]], new) if new else None
        if changed:
            return changed, f"colour {colors[0]} -> {new}"
    if qtype in ("count", "count_one"):
        kind = facts["kind"]
        counts = facts.get("counts") or [facts["count"]]
        new_n = int(_pick(rng, [str(m) for m in range(2, 7) if m not in counts]))
        new = count_phrase(new_n, kind)
        changed = _swap_first(answer, [count_phrase(counts[0], kind)], new)
        if changed:
            if new_n != 1:  # "There is one tree" -> "There are three trees"
                changed = re.sub(rf"\b([Tt]here) is {re.escape(new)}", rf"\1 are {new}", changed)
            return changed, f"count {counts[0]} -> {new_n} {plural(kind)}"
    if qtype in ("action_one", "char_action"):
        actions = facts.get("actions") or [facts["action"]]
        new = _pick(rng, set(ACTIONS) - set(actions))
        changed = _swap_first(answer, ACTION_PHRASES[actions[0]], ACTION_PHRASES[new][0])
        if changed:
            return changed, f"action {actions[0]} -> {new}"
    if qtype == "where_one":
        h, v = facts["location"]
        new_h = {"left": "right", "right": "left"}.get(h) or _pick(rng, ["left", "right"])
        changed = _swap_first(answer, LOCATION_PHRASES[(h, v)], LOCATION_PHRASES[(new_h, v)][0])
        if changed:
            return changed, f"place {h} -> {new_h}"
    if qtype == "context":
        contexts = facts["contexts"]
        new = _pick(rng, set(CONTEXTS) - set(contexts))
        changed = _swap_first(answer, CONTEXT_PHRASES[contexts[0]], CONTEXT_PHRASES[new][0])
        if changed:
            return changed, f"setting {contexts[0]} -> {new}"
    # Statements about both images (and any answer the targeted swap missed): a colour, else a kind, absent from both.
    present = [c for c in COLORS if re.search(rf"\b{c}\b", answer)]
    new = _pick(rng, absent_colors)
    if present and new:
        old = min(present, key=lambda c: re.search(rf"\b{c}\b", answer).start())  # the first colour stated
        return _swap_first(answer, [old], new), f"colour {old} -> {new} (absent from both images)"
    kinds = {t.kind for scene in sample.scenes for t in scene.things}
    stated = sorted((m.start(), k) for k in THINGS for m in [re.search(rf"\b({k}|{plural(k)})\b", answer)] if m)
    stated = [k for _, k in stated]
    new_kind = _pick(rng, set(THINGS) - kinds)
    if stated and new_kind:
        old = stated[0]
        changed = _swap_first(answer, [plural(old)], plural(new_kind)) or _swap_first(answer, [old], new_kind)
        return changed, f"object {old} -> {new_kind} (absent from both images)"
    return None


def _synonym_groups() -> dict[str, tuple[str, ...]]:
    """phrase -> the world's phrases that state the same fact (actions, settings, places), each phrase in one group."""
    from mmlink.data.world.text import ACTION_PHRASES, CONTEXT_PHRASES, LOCATION_PHRASES

    groups: dict[str, tuple[str, ...]] = {}
    seen: dict[str, int] = {}
    for table in (ACTION_PHRASES, CONTEXT_PHRASES, LOCATION_PHRASES):
        for phrases in table.values():
            for phrase in phrases:
                seen[phrase] = seen.get(phrase, 0) + 1
                groups[phrase] = phrases
    return {p: g for p, g in groups.items() if seen[p] == 1 and len(g) > 1}  # an ambiguous phrase is left alone


# Rewrites that keep the meaning in the world's answers ("in both images" / "in each image" say the same there).
_REWORDINGS = {"the first image": "Image 1", "the second image": "Image 2", "in both images": "in each image",
               "in each image": "in both images", "both images contain": "each image contains",
               **{w: str(i) for i, w in enumerate(("zero", "one", "two", "three", "four", "five", "six", "seven",
                                                   "eight", "nine", "ten")) if i >= 1}}


def paraphrase(answer: str, rng: np.random.Generator) -> str | None:
    """The answer in other words that state the same facts, or None when it has none to swap: each action, setting
    and place phrase becomes another phrase of the world's own synonym tables, "the first image" becomes "Image 1",
    "is red" "is coloured red", number words digits. A right answer that is not the reference verbatim: a judge
    that only rewards identical text (or word overlap) rates it below the reference."""
    from mmlink.data.world.scene import COLORS

    groups = _synonym_groups()
    alternatives = {**{p: tuple(x for x in g if x != p) for p, g in groups.items()},
                    **{k: (v,) for k, v in _REWORDINGS.items()},
                    **{f"is {c}": (f"is coloured {c}",) for c in COLORS}}
    pattern = re.compile(r"\b(" + "|".join(re.escape(p) for p in sorted(alternatives, key=len, reverse=True))
                         + r")\b", re.IGNORECASE)

    def swap(match: re.Match) -> str:
        old = match.group(0)
        options = alternatives[old.lower()]
        new = options[int(rng.integers(len(options)))]
        return new[:1].upper() + new[1:] if old[:1].isupper() else new

    changed = pattern.sub(swap, answer)  # one pass: a replacement is never matched again
    return changed if changed != answer else None


def world_items(n: int, split: str = "test", seed: int = 0) -> list[CheckItem]:
    """``n`` world CaD-QA items (no images rendered: the judge reads text only) with their four answers."""
    from mmlink.data.synth import sample_id
    from mmlink.data.tasks import TASKS
    from mmlink.data.world.scene import rng_for

    fn = TASKS.get(TASK)
    samples = [fn(rng_for(split, seed, i, stream=TASK), split) for i in range(n)]
    items = []
    for i, sample in enumerate(samples):
        meta = sample.meta
        # another question type, and a different text: the other item's answer cannot be right here by accident
        other = next((samples[(i + k) % n].meta["answer"] for k in range(1, n)
                      if samples[(i + k) % n].meta["qtype"] != meta["qtype"]
                      and samples[(i + k) % n].meta["answer"].lower() != meta["answer"].lower()), None)
        if other is None:
            raise ValueError(f"{n} items hold a single question type; ask for more items (--n)")
        rng = rng_for(split, seed, i, stream="judge-check")
        changed = change_fact(sample, rng)
        items.append(CheckItem(sample_id(TASK, split, seed, i), meta["qtype"], meta["question"], meta["answer"],
                               paraphrase(meta["answer"], rng), other, *(changed or (None, None))))
    return items


# --------------------------------------------------------------------------- the check


def _mean(values: list[float | None]) -> float | None:
    rated = [v for v in values if v is not None]
    return round(sum(rated) / len(rated), 3) if rated else None


def run_check(config: CheckConfig, judge: Judge | None = None) -> dict[str, Any]:
    """Rate every item's answers, compute the AUCs, write ``judge_check.json``/``.md`` and record the summary
    beside the judge's cache. ``judge``: an already built `Judge` (tests; ``config.backend`` and ``config.cache`` are
    then unused), else one from ``config``."""
    t0 = time.perf_counter()
    if judge is None:
        cache = Path(config.cache) if config.cache else default_cache_dir()
        settings = TextLLMSettings(max_new_tokens=JUDGE_MAX_NEW_TOKENS, model=config.model,
                                   api_key_env=config.api_key_env)
        judge = Judge(make_backend(config.backend, settings), cache, retries=config.retries)
    items = world_items(config.n, config.split, config.seed)
    answers = {"reference": [it.reference for it in items], "paraphrase": [it.paraphrase for it in items],
               "other_item": [it.other for it in items], "fact_changed": [it.changed for it in items]}
    rows = [(f"{it.id}/{kind}", it.question, it.reference, answers[kind][k])
            for kind in KINDS for k, it in enumerate(items) if answers[kind][k] is not None]
    summary = judge.rate_all(rows, progress=config.progress)
    ratings = {kind: [(summary.results[f"{it.id}/{kind}"].rating if answers[kind][k] is not None else None)
                      for k, it in enumerate(items)] for kind in KINDS}

    def rated(kind: str) -> list[float]:
        return [r for r in ratings[kind] if r is not None]

    wrong = [r for kind in WRONG_KINDS for r in rated(kind)]
    overall = auc(rated("reference"), wrong)
    # rows: the right kinds; columns: each wrong kind and both together
    table = {right: {**{kind: _round(auc(rated(right), rated(kind))) for kind in WRONG_KINDS},
                     "all": _round(auc(rated(right), wrong))} for right in RIGHT_KINDS}
    cells = [v for row in table.values() for v in row.values()]
    worst = None if None in cells else min(cells)
    result: dict[str, Any] = {
        "format": "mmlink-judge-check-v1",
        "backend": judge.backend.name,
        "weak": bool(judge.backend.weak),
        "prompt_version": PROMPT_VERSION,
        "task": TASK, "split": config.split, "seed": config.seed,
        "n_items": len(items),
        "n_rated": {kind: len(rated(kind)) for kind in KINDS},
        "n_fact_changed": sum(it.changed is not None for it in items),
        "failures": summary.failures,
        "mean_ratings": {kind: _mean(ratings[kind]) for kind in KINDS},
        "auc": None if overall is None else round(overall, 4),
        "auc_ci": bootstrap_auc(ratings, WRONG_KINDS, config.bootstrap, config.seed),
        "auc_table": table,
        "auc_paraphrase_ci": bootstrap_auc(ratings, WRONG_KINDS, config.bootstrap, config.seed, right="paraphrase"),
        "auc_worst": worst,
        "min_auc": config.min_auc,
        # A judge passes only if it ranks each kind of right answer above each kind of wrong one: pooled, the easy
        # "other item" answers would hide a judge that cannot see a changed fact.
        "flagged": worst is None or worst < config.min_auc,
        "scale": [0, MAX_RATING],
        "seconds": round(time.perf_counter() - t0, 2),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": {k: v for k, v in asdict(config).items() if k != "progress"},
        "out": str(Path(config.out).resolve()),
    }
    result["seconds_per_rating"] = round(result["seconds"] / max(1, len(rows)), 3)
    if judge.backend.name.startswith("local:"):  # a speed figure on a CPU is read with its capability
        import torch

        result["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    per_item = [{**asdict(it), "ratings": {kind: ratings[kind][k] for kind in KINDS},
                 "responses": {kind: summary.results[f"{it.id}/{kind}"].raw for kind in KINDS
                               if answers[kind][k] is not None}}
                for k, it in enumerate(items)]
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "judge_check.json").write_text(json.dumps({**result, "items": per_item}, indent=1, ensure_ascii=False)
                                          + "\n", encoding="utf-8")
    (out / "judge_check.md").write_text(markdown(result, per_item), encoding="utf-8")
    record = check_path(judge.cache_dir, judge.backend.name)  # where this judge's ratings in `mmlink eval` look
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _f(value: Any, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def markdown(result: dict[str, Any], items: Sequence[dict[str, Any]] = (), examples: int = 5) -> str:
    """The report: verdict, mean rating per kind, AUCs, and a few items with their ratings."""
    aucs = f"AUC {_f(result['auc'])}, worst cell {_f(result['auc_worst'])}"
    verdict = (f"**FLAGGED: {aucs} < {result['min_auc']}** — this judge does not reliably tell right answers from "
               "wrong ones; do not report its ratings as a quality measure."
               if result["flagged"] else f"{aucs} ≥ {result['min_auc']}: the judge passes.")
    table = result["auc_table"]

    def interval(ci: Any) -> str:
        return f" (95 % bootstrap interval over items {ci[0]:.3f}-{ci[1]:.3f})" if ci else ""

    lines = [
        f"# Judge check: `{result['backend']}`", "",
        f"Prompt `{result['prompt_version']}`, rating 0-{MAX_RATING}; {result['n_items']} world `{result['task']}` "
        f"items ({result['split']} split, seed {result['seed']}); {result['failures']} unparseable rating(s) "
        "excluded." + (" The judge is a small local model." if result.get("weak") else ""), "",
        verdict, "",
        "| Answer | n rated | Mean rating |", "|---|---|---|",
        *[f"| {kind} | {result['n_rated'][kind]} | {_f(result['mean_ratings'][kind])} |" for kind in KINDS], "",
        "AUC of right (rows) vs wrong (columns) answers; every cell must reach the bar:", "",
        f"| right \\ wrong | {' | '.join(WRONG_KINDS)} | both |", "|---|---|---|---|",
        *[f"| {right} | {' | '.join(_f(table[right][k], 3) for k in (*WRONG_KINDS, 'all'))} |"
          for right in RIGHT_KINDS],
        "",
        f"- AUC, reference vs both wrong kinds: **{_f(result['auc'], 3)}**{interval(result.get('auc_ci'))}",
        f"- AUC, paraphrase vs both wrong kinds: {_f(table['paraphrase']['all'], 3)}"
        f"{interval(result.get('auc_paraphrase_ci'))}",
        f"- {result['seconds']:.0f} s, {result['seconds_per_rating']} s per rating"
        + (f" (CPU capability {result['cpu_capability']})" if result.get("cpu_capability") else ""), "",
    ]
    if items:
        lines += ["## Examples", "", "| Question | Kind | Answer | Rating |", "|---|---|---|---|"]
        for it in list(items)[:examples]:
            for kind, text in (("reference", it["reference"]), ("paraphrase", it["paraphrase"]),
                               ("other_item", it["other"]), ("fact_changed", it["changed"])):
                if text is not None:
                    lines.append(f"| {it['question']} | {kind} | {text} | {_f(it['ratings'][kind], 0)} |")
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "judge-check",
        help="measure how well a CaD-QA judge tells right answers from wrong ones (AUC) before trusting it",
        description=__doc__,
    )
    add_flags(p, CheckConfig, custom={"progress": {"flag": "--no-progress", "action": "store_false",
                                                    "help": "no progress bar"}})
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = from_args(CheckConfig, args)
    result = run_check(config)
    print(markdown(result))
    print(f"wrote {Path(config.out) / 'judge_check.json'}, {Path(config.out) / 'judge_check.md'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmlink judge-check")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["judge-check", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"mmlink judge-check: error: {err}", file=sys.stderr)
        return 2


__all__ = ["KINDS", "MIN_AUC", "CheckConfig", "CheckItem", "add_parser", "auc", "bootstrap_auc", "change_fact",
           "main", "markdown", "paraphrase", "run", "run_check", "world_items"]


if __name__ == "__main__":
    sys.exit(main())
