"""CaD-VI Phase 1 on user data: images with captions → two-turn CaD conversations in LLaVA format.

``mmlink synth cad --captions FILE.jsonl --backend SPEC --out DIR --n N --seed S``. The input has one
``{"image": path, "caption": str}`` per line (relative paths start at the file's directory). Then, as CaD-VI §3.1:

1. **Pairing.** Each caption's nouns (`mmlink.data.nouns`, or exactly the words of a ``--nouns`` lexicon) are
   compared by Jaccard similarity; pairs sharing at least ``min_shared`` nouns fall into similarity levels
   (`PairingSettings.levels`, default high ≥ 0.5 > medium ≥ 0.25 > low ≥ 0.1), and pairs are drawn from the levels
   in turn, so every level is represented, each image in at most ``max_pairs_per_image`` pairs. Two images whose
   captions are the same text are never paired (the retrieval turn could not be answered).
2. **Summary.** The text LLM (`mmlink.textllm`: ``template``, ``local``, ``openai:MODEL@URL``) reads the two captions
   and writes the commonalities and differences over the six axes, only those that apply (prompt:
   ``prompts/cad_summary_v1.txt``). A summary out of format, or naming an object neither caption has, is replaced by
   the template summary (`mmlink.data.caption_facts`); ``report.json`` counts each reason. The template backend
   writes the template summary directly.
3. **Retrieval.** The second turn quotes one of the two captions and asks which image it describes; the answer
   ("Image 1"/"Image 2") is known, not generated.

Records have the world ``cad`` task's format exactly — ``{"id", "task": "cad", "image": [p1, p2],
"conversations": [human, gpt, human, gpt], "meta"}``, the first human turn ``"Image 1: <image>\\nImage 2: <image>\\n
<instruction>"`` — with image paths relative to ``--out``. On the world, ``mmlink synth cad`` without ``--captions``
keeps the exact scene-graph summary. Output files and resuming are as for the world (`mmlink.data.synth`): a killed
run continues where it stopped when given the same arguments; a larger ``--n`` grows the set.

Pairing looks at every pair of images that share a noun: fine for thousands of captions, slow for millions.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from mmlink.data.caption_facts import caption_facts, compare, parse_summary, template_summary, ungrounded
from mmlink.data.formats import dumps_record, json_list_bytes, validate_record
from mmlink.fileio import atomic_write
from mmlink.settings import check_fields, setting
from mmlink.data.nouns import jaccard, nouns
from mmlink.data.preview import make_preview
from mmlink.data.synth import DATA_JSON, DATA_JSONL, PARAMS_FILE, PREVIEW_FILE, REPORT_FILE
from mmlink.data.synth import _dir_lock, _recover  # the world writer's crash-safe resume, shared
from mmlink.data.tasks.pairs import CAD_INSTRUCTIONS, RETRIEVAL_TEMPLATES, format_cad
from mmlink.data.world.text import choose, conversation, image_prompt
from mmlink.textllm import SPEC_FORMS, TextLLM, TextLLMError, TextLLMSettings, load_prompt, make_backend

TASK, SPLIT = "cad", "user"  # record ids: cad-user-s<seed>-<index>
CAD_PROMPT = load_prompt("mmlink.data", "cad_summary_v1", template=template_summary)
SYSTEM = "You compare two images from their captions. Follow the requested format exactly."


@dataclass(frozen=True)
class Captioned:
    """One input line: the image's absolute path, its caption and the caption's nouns."""

    image: str
    caption: str
    nouns: frozenset[str]


@dataclass(frozen=True)
class PairingSettings:
    """How images are paired. ``levels``: (name, lowest Jaccard) from the most similar down; a pair belongs to the
    first level whose bound it reaches. ``partners_per_level``: candidate partners kept per image and level."""

    levels: tuple[tuple[str, float], ...] = setting((("high", 0.5), ("medium", 0.25), ("low", 0.1)),
                                                    help="(name, lowest Jaccard), most similar first")
    min_shared: int = setting(1, min=1, help="nouns two captions must share")
    max_pairs_per_image: int = setting(4, min=1, help="pairs an image takes part in")
    partners_per_level: int = setting(3, min=1, help="candidate partners kept per image and level")

    def __post_init__(self) -> None:
        check_fields(self, "pairing.")
        bounds = [b for _, b in self.levels]
        names = [n for n, _ in self.levels]
        if not self.levels or len(set(names)) != len(names):
            raise ValueError(f"levels must name at least one level, each once, got {self.levels!r}")
        if any(not 0.0 < b <= 1.0 for b in bounds) or bounds != sorted(bounds, reverse=True):
            raise ValueError(f"level bounds must be in (0, 1] and decreasing, got {bounds}")

    def level(self, similarity: float) -> str | None:
        return next((name for name, bound in self.levels if similarity >= bound), None)


@dataclass(frozen=True)
class Pair:
    first: int
    second: int
    level: str
    jaccard: float
    shared: tuple[str, ...]


@dataclass(frozen=True)
class Phase1Config:
    """One ``mmlink synth cad --captions`` run. ``backend`` is a `mmlink.textllm.make_backend` spec; ``lexicon``
    a file of nouns (one per line) to use instead of the built-in noun finder."""

    captions: str = setting(help='JSONL of {"image": path, "caption": text}')
    out: str = setting(help="output directory (resumed if it exists)")
    n: int = setting(min=1, help="pairs")
    seed: int = setting(0, min=0, help="seed of the pairing and of the LLM's sampling")
    backend: str = setting("template", help="the text LLM, a mmlink.textllm spec")
    model: Optional[str] = setting(None, help="the server's model name, for backend openai:URL")
    api_key_env: str = setting("OPENAI_API_KEY", help="environment variable holding the server's API key")
    max_new_tokens: int = setting(320, min=16, help="summary length limit")
    lexicon: Optional[str] = setting(None, help="a noun lexicon (one per line) instead of the built-in finder")
    pairing: PairingSettings = setting(factory=PairingSettings, help="how images are paired")
    preview: bool = setting(False, help="also write preview.png")
    progress: bool = setting(True, help="progress bar")

    def __post_init__(self) -> None:
        check_fields(self)


# --------------------------------------------------------------------------- input and pairing


def read_lexicon(path: str | os.PathLike) -> frozenset[str]:
    """Nouns, one per line (``#`` comments and blank lines skipped), lower case."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return frozenset(w.strip().lower() for w in lines if w.strip() and not w.lstrip().startswith("#"))


def read_captions(path: str | os.PathLike, lexicon: frozenset[str] | None = None) -> list[Captioned]:
    """The images and captions of a JSONL file; every image must exist. Errors name the line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--captions {path}: no such file")
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            raise ValueError(f"{path}:{number}: not JSON ({err})") from None
        if not (isinstance(row, dict) and isinstance(row.get("image"), str) and isinstance(row.get("caption"), str)):
            raise ValueError(f'{path}:{number}: expected {{"image": path, "caption": text}}, got {line[:120]!r}')
        image = row["image"] if os.path.isabs(row["image"]) else os.path.join(path.parent, row["image"])
        if not os.path.isfile(image):
            raise FileNotFoundError(f"{path}:{number}: image {row['image']!r} not found ({os.path.abspath(image)})")
        caption = " ".join(row["caption"].split())
        if not caption:
            raise ValueError(f"{path}:{number}: empty caption")
        items.append(Captioned(os.path.abspath(image), caption, nouns(caption, lexicon)))
    if len(items) < 2:
        raise ValueError(f"{path}: {len(items)} captioned image(s); pairing needs at least two")
    return items


def pair_images(items: Sequence[Captioned], n: int, settings: PairingSettings, seed: int) -> tuple[list[Pair], dict]:
    """Up to ``n`` pairs drawn from the similarity levels in turn (see the module docstring), deterministic for a
    seed; and the number of candidate pairs found per level."""
    rng = np.random.default_rng([seed, 1])
    index: dict[str, list[int]] = defaultdict(list)
    for k, item in enumerate(items):
        for noun in sorted(item.nouns):
            index[noun].append(k)
    by_level: dict[str, list[Pair]] = {name: [] for name, _ in settings.levels}
    candidates: Counter = Counter()
    for i, item in enumerate(items):
        partners = sorted({j for noun in item.nouns for j in index[noun] if j > i})
        per_level: dict[str, list[Pair]] = defaultdict(list)
        for j in partners:
            other = items[j]
            shared = item.nouns & other.nouns
            if len(shared) < settings.min_shared or other.caption.lower() == item.caption.lower():
                continue
            similarity = jaccard(item.nouns, other.nouns)
            level = settings.level(similarity)
            if level is not None:
                per_level[level].append(Pair(i, j, level, round(similarity, 4), tuple(sorted(shared))))
        for level, pairs in per_level.items():
            candidates[level] += len(pairs)
            keep = rng.permutation(len(pairs))[: settings.partners_per_level]
            by_level[level] += [pairs[k] for k in sorted(keep)]
    for pairs in by_level.values():  # a random order within a level, fixed by the seed
        order = rng.permutation(len(pairs))
        pairs[:] = [pairs[k] for k in order]
    uses: Counter = Counter()
    chosen: list[Pair] = []
    seen: set[tuple[int, int]] = set()
    cursors = {name: 0 for name in by_level}
    while len(chosen) < n and any(cursors[name] < len(by_level[name]) for name in by_level):
        for name in by_level:  # one pair per level in turn: every level represented
            pairs = by_level[name]
            while cursors[name] < len(pairs):
                pair = pairs[cursors[name]]
                cursors[name] += 1
                key = (pair.first, pair.second)
                if key not in seen and max(uses[pair.first], uses[pair.second]) < settings.max_pairs_per_image:
                    chosen.append(pair)
                    seen.add(key)
                    uses.update(key)
                    break
            if len(chosen) == n:
                break
    return chosen, {name: candidates[name] for name, _ in settings.levels}


# --------------------------------------------------------------------------- records


def summarize(llm: TextLLM, caption1: str, caption2: str) -> tuple[dict, str, str | None]:
    """The CaD summary (sections per axis) of two captions, where it came from — ``template``, ``llm``, or
    ``fallback:<reason>`` when the LLM's text was replaced by the template summary — and the rejected text (or the
    backend's error), so that a user can see why."""
    if llm.deterministic:
        text = llm.ask(CAD_PROMPT, system=SYSTEM, caption1=caption1, caption2=caption2)
        return parse_summary(text) or {"commonalities": {}, "differences": {}}, "template", None
    try:
        text = llm.ask(CAD_PROMPT, system=SYSTEM, caption1=caption1, caption2=caption2)
    except TextLLMError as err:
        reason, text = "error", str(err)
    else:
        facts = parse_summary(text)
        if facts is None:
            reason = "unparseable"
        elif ungrounded(facts, caption1, caption2):
            reason = "ungrounded"
        else:
            return facts, "llm", None
    return compare(caption_facts(caption1), caption_facts(caption2)), f"fallback:{reason}", text[:2000]


def make_record(index: int, pair: Pair, items: Sequence[Captioned], llm: TextLLM, seed: int, out: Path) -> dict:
    """Record ``index`` of the data set: the world ``cad`` format (see the module docstring)."""
    from mmlink.data.synth import sample_id

    rng = np.random.default_rng([seed, 2, index])  # record i depends on (seed, i) only: resuming is exact
    a, b = items[pair.first], items[pair.second]
    facts, source, rejected = summarize(llm, a.caption, b.caption)
    j = int(rng.integers(1, 3))
    quoted = (a, b)[j - 1].caption
    turns = conversation(image_prompt(2, str(choose(rng, CAD_INSTRUCTIONS))), format_cad(facts),
                         str(choose(rng, RETRIEVAL_TEMPLATES)).format(c=quoted), f"Image {j}")
    meta = {
        "similarity": pair.level,
        "axes": {"commonalities": list(facts["commonalities"]), "differences": list(facts["differences"])},
        "summary": facts,
        "retrieval_answer": j,
        "retrieval_caption": quoted,
        "source": "captions",
        "jaccard": pair.jaccard,
        "shared_nouns": list(pair.shared),
        "captions": [a.caption, b.caption],
        "summary_source": source,
        "backend": llm.name,
        "prompt_version": CAD_PROMPT.name,
    }
    if rejected is not None:
        meta["rejected_summary"] = rejected
    images = [os.path.relpath(x.image, out) for x in (a, b)]
    record = {"id": sample_id(TASK, SPLIT, seed, index), "task": TASK, "image": images, "conversations": turns,
              "meta": meta}
    return validate_record(record, index, source="phase 1 (a bug)", image_root=out)


def _sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _check_params(out: Path, params: dict[str, Any]) -> None:
    path = out / PARAMS_FILE
    if not path.exists():
        if (out / DATA_JSONL).exists():
            raise ValueError(f"{out}: holds {DATA_JSONL} but no {PARAMS_FILE}; use a new --out directory")
        return
    old = json.loads(path.read_text(encoding="utf-8"))
    diffs = sorted(k for k in params if old.get(k) != params[k])
    if diffs:
        raise ValueError(f"{out} was made with other settings ({', '.join(diffs)} differ); resume with the same "
                         "captions, backend, seed, pairing and prompt, or use a new --out directory")


def synthesize_cad(config: Phase1Config, llm: TextLLM | None = None) -> dict[str, Any]:
    """Write up to ``config.n`` CaD records from ``config.captions`` into ``config.out``; resumable. ``llm``: a
    ready backend (tests), else the one ``config.backend`` names. Returns a summary (what `format_summary` prints)."""
    t0 = time.perf_counter()
    if llm is None:
        settings = TextLLMSettings(max_new_tokens=config.max_new_tokens, model=config.model,
                                   api_key_env=config.api_key_env)
        llm = make_backend(config.backend, settings)
    lexicon = read_lexicon(config.lexicon) if config.lexicon else None
    items = read_captions(config.captions, lexicon)
    pairs, candidates = pair_images(items, config.n, config.pairing, config.seed)
    if not pairs:
        raise ValueError(f"{config.captions}: no two captions share enough nouns for any similarity level "
                         f"{config.pairing.levels}")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    params = {"task": TASK, "source": "captions", "captions_sha256": _sha256(config.captions), "seed": config.seed,
              "backend": llm.name, "prompt_version": CAD_PROMPT.name, "pairing": json.loads(json.dumps(
                  asdict(config.pairing))), "lexicon_sha256": _sha256(config.lexicon) if config.lexicon else None}
    with _dir_lock(out):
        _check_params(out, params)
        lines, _ = _recover(out, TASK, SPLIT, config.seed)
        if len(lines) > len(pairs):
            raise ValueError(f"{out} already holds {len(lines)} records; ask for at least that many")
        atomic_write(out / PARAMS_FILE, (json.dumps({**params, "captions": os.path.abspath(config.captions),
                                                           "n": len(pairs)}, indent=2) + "\n").encode())
        start = len(lines)
        from tqdm.auto import tqdm

        with open(out / DATA_JSONL, "ab") as jsonl:
            for index in tqdm(range(start, len(pairs)), initial=start, total=len(pairs), unit="pair",
                              desc=f"synth cad ({llm.name})", disable=not config.progress, file=sys.stderr):
                line = dumps_record(make_record(index, pairs[index], items, llm, config.seed, out))
                jsonl.write((line + "\n").encode("utf-8"))
                jsonl.flush()
                os.fsync(jsonl.fileno())
                lines.append(line)
        atomic_write(out / DATA_JSON, json_list_bytes(lines))
        records = [json.loads(line) for line in lines]
        report = {
            "images": len(items), "pairs": len(records), "candidates": candidates,
            "levels": dict(Counter(r["meta"]["similarity"] for r in records)),
            "summary_sources": dict(Counter(r["meta"]["summary_source"] for r in records)),
            "axes": {s: dict(Counter(a for r in records for a in r["meta"]["axes"][s]))
                     for s in ("commonalities", "differences")},
        }
        atomic_write(out / REPORT_FILE, (json.dumps(report, indent=2) + "\n").encode("utf-8"))
        if config.preview:
            make_preview(records[:6], out, out / PREVIEW_FILE)
    return {"out_dir": str(out), "records": len(records), "resumed_from": start, "backend": llm.name,
            "seconds": round(time.perf_counter() - t0, 3), "asked": config.n, **report}


def format_summary(result: dict[str, Any]) -> str:
    """What ``mmlink synth cad --captions`` prints."""
    short = f" (only {result['records']} pairs found)" if result["records"] < result["asked"] else ""
    resumed = f", resumed from {result['resumed_from']}" if result["resumed_from"] else ""
    return (f"synth cad from captions: {result['records']} records{short} over {result['images']} images in "
            f"{result['out_dir']} ({result['backend']}{resumed}, {result['seconds']:g} s)\n"
            f"  levels {result['levels']}; summaries {result['summary_sources']}\n"
            f"  {DATA_JSONL}, {DATA_JSON}, {REPORT_FILE}, {PARAMS_FILE}")


__all__ = ["CAD_PROMPT", "SPEC_FORMS", "Captioned", "Pair", "PairingSettings", "Phase1Config", "format_summary",
           "make_record", "pair_images", "read_captions", "read_lexicon", "summarize", "synthesize_cad"]
