"""CaD-VI Phase 2a: the Phase-1 model annotates new image pairs (CaD-VI §3.3, "LMM-based CaD Instruction Collection").

Two annotation *sources* per pair, as the paper's Table 5 compares them:

* ``scratch`` — the pair and the Phase-1 instruction ("Summarize the commonalities and differences between the two
  images."): the model writes the CaD summary from the images alone (Table 5 row C);
* ``refine`` — the pair, its difference-only annotation (the world's change caption, Scene-Difference's summary for
  COCO pairs) and the same instruction (prompt ``prompts/cadvi_phase2_refine_v1.txt``): the model turns a
  differences-only description into the full commonalities-and-differences summary (row D, the paper's CaD-Inst^V2).

Pairs are the world's ``change_caption`` pairs (two nearly identical scenes with one or two changes, and the change
caption as the difference-only annotation: the world's Scene-Difference) or a user file. Output:
``annotations.jsonl``, one row per (source, pair), appended and fsynced per batch (`mmlink.eval.harness.
PredictionStore`): a killed run loses at most the batch in flight, and a re-run skips every row already there.
``annotate.json`` records what decides the rows (model, requested dtype, prompts, token limit); a re-run with other
values is refused, so one file never mixes two annotators (each row records the dtype it was computed in).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from mmlink.data.tasks.pairs import CAD_INSTRUCTIONS
from mmlink.data.world.text import image_prompt
from mmlink.fileio import atomic_write
from mmlink.textllm import load_prompt

SOURCES = ("scratch", "refine")
# The Phase-1 instruction the scratch source asks with, verbatim: the Phase-1 model was trained on exactly this text.
SCRATCH_INSTRUCTION = CAD_INSTRUCTIONS[0]
REFINE_PROMPT = load_prompt("mmlink.recipes", "cadvi_phase2_refine_v1")
PROMPT_VERSIONS = {"scratch": "phase1-instruction-0", "refine": REFINE_PROMPT.name}
PAIRS_DIR = "pairs"
ANNOTATIONS = "annotations.jsonl"
ANNOTATE_CLAIM = "annotate.json"


@dataclass(frozen=True)
class Pair:
    """One image pair to annotate. ``images``: two absolute paths; ``change``: its difference-only annotation (None:
    the pair has none, so it gets the scratch source only); ``scenes``: the two scene graphs (``meta.scenes`` dicts)
    of a world pair, else None (user data: no fact check)."""

    id: str
    images: tuple[str, str]
    change: str | None
    scenes: tuple[dict, dict] | None


def prompt_turns(source: str, pair: Pair) -> list[dict[str, str]]:
    """The human turn the annotator answers, as a one-turn LLaVA conversation."""
    if source == "scratch":
        text = SCRATCH_INSTRUCTION
    elif source == "refine":
        if not pair.change:
            raise ValueError(f"pair {pair.id!r} has no difference-only annotation to refine")
        text = REFINE_PROMPT.render(change=pair.change.strip())
    else:
        raise ValueError(f"unknown annotation source {source!r} (expected one of {', '.join(SOURCES)})")
    return [{"from": "human", "value": image_prompt(2, text)}]


# ------------------------------------------------------------------------------------------------------- pairs


def world_pairs(out: Path, n: int, split: str, seed: int, image_size: int, progress: bool) -> Path:
    """Synthesize (or resume) ``n`` world change-caption pairs into ``out/pairs``; returns their data.jsonl."""
    from mmlink.data.synth import synthesize

    synthesize("change_caption", out / PAIRS_DIR, n, split, seed, image_size=image_size, progress=progress)
    return out / PAIRS_DIR / "data.jsonl"


def read_pairs(path: Path) -> list[Pair]:
    """The pairs of a LLaVA-format file: two images per record; the first gpt turn, when there is one, is the pair's
    difference-only annotation; ``meta.scenes`` (world records) enables the fact check."""
    from mmlink.data.formats import read_dataset, resolve_image

    records, _ = read_dataset(path)
    if not records:
        raise ValueError(f"{path}: no records")
    pairs = []
    for index, rec in enumerate(records):
        where = f"{path}: record {index} (id {rec['id']!r})"
        if len(rec["image"]) != 2:
            raise ValueError(f"{where}: field 'image' holds {len(rec['image'])} images; a pair needs exactly 2")
        gpt = [t["value"] for t in rec["conversations"] if t["from"] == "gpt"]
        scenes = (rec.get("meta") or {}).get("scenes")
        if scenes is not None and (not isinstance(scenes, list) or len(scenes) != 2):
            raise ValueError(f"{where}: field 'meta.scenes' must be a list of 2 scene graphs, one per image")
        pairs.append(Pair(rec["id"], tuple(resolve_image(p, path.parent) for p in rec["image"]),
                          gpt[0] if gpt and gpt[0].strip() else None, tuple(scenes) if scenes else None))
    return pairs


# ------------------------------------------------------------------------------------------------------- generation


def generate(model, processor, conversations: Sequence[list[dict]], images: Sequence[Sequence[str]],
             max_new_tokens: int) -> tuple[list[str], list[bool]]:
    """Greedy answers of one left-padded batch, and per answer whether it ended (an EOS before the token limit): a
    summary cut off at ``max_new_tokens`` is incomplete, which the filter needs to know exactly."""
    import torch

    batch = processor.encode_conversation(list(conversations), [[Path(p) for p in imgs] for imgs in images],
                                          padding_side="left")
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    batch = batch.to(device, dtype=dtype)  # BatchFeature casts the floating tensors only (pixel values)
    with torch.inference_mode():
        new = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                             pad_token_id=processor.pad_token_id)  # (B, T_new)
    eos = _eos_ids(model, processor)
    ended = [bool(any(int(t) in eos for t in row)) for row in new]
    return processor.batch_decode(new), ended


def _eos_ids(model, processor) -> set[int]:
    ids = getattr(model.generation_config, "eos_token_id", None)
    ids = set(ids) if isinstance(ids, (list, tuple)) else ({ids} if ids is not None else set())
    if processor.tokenizer.eos_token_id is not None:
        ids.add(processor.tokenizer.eos_token_id)
    return ids


# ------------------------------------------------------------------------------------------------------- annotate


def _claim(path: Path, run: dict[str, Any]) -> None:
    """``annotate.json``: refuse to append another annotator's rows to this output directory."""
    if path.exists():
        old = json.loads(path.read_text())
        changed = sorted(k for k in set(old) | set(run) if old.get(k) != run.get(k))
        if changed:
            diff = "; ".join(f"{k}: {old.get(k)!r} then, {run.get(k)!r} now" for k in changed)
            raise ValueError(f"{path}: this directory holds annotations made with other settings ({diff}); use "
                             "another out directory, or the settings it was made with")
        return
    atomic_write(path, json.dumps(run, indent=2) + "\n")


def annotate(pairs: Sequence[Pair], out: Path, model_name: str, sources: Sequence[str], batch_size: int,
             max_new_tokens: int, dtype: str = "auto", progress: bool = True) -> dict[str, Any]:
    """Annotate every (source, pair) that ``out/annotations.jsonl`` lacks; returns counts.

    Steps: 1. which rows are missing (the done-set of the file); 2. load the annotator once (dtype by measured
    capability, prepared for decoding as ``mmlink eval`` does); 3. batches of one source each, greedy, appended and
    fsynced per batch. A pair without a difference-only annotation gets no ``refine`` row (counted)."""
    from mmlink.eval.harness import PredictionStore

    # 1. the done-set: (source, pair id) of every complete row (a torn last line is dropped by the store)
    store = PredictionStore(out / ANNOTATIONS)
    wanted = [(s, p) for s in sources for p in pairs if s != "refine" or p.change]
    no_change = sum(1 for p in pairs if not p.change) if "refine" in sources else 0
    if "refine" in sources and no_change == len(pairs):
        raise ValueError("source 'refine' needs difference-only annotations, and no pair has one (a pairs file "
                         "gives them as each record's gpt turn); set sources: [scratch]")
    # Claimed before anything is skipped: a re-run with another annotator must not pass off the old rows as its own.
    _claim(out / ANNOTATE_CLAIM, {"model": str(model_name), "dtype": dtype, "max_new_tokens": max_new_tokens,
                                  "prompts": PROMPT_VERSIONS, "decoding": "greedy"})
    todo = [(s, p) for s, p in wanted if (s, p.id) not in store.done]
    summary = {"rows": len(wanted), "resumed": len(wanted) - len(todo), "generated": len(todo),
               "no_annotation_to_refine": no_change, "file": str(out / ANNOTATIONS)}
    if not todo:
        return summary

    # 2. the annotator
    from tqdm.auto import tqdm

    from mmlink.models import load
    from mmlink.models.decoding import ready_for_inference
    from mmlink.runtime import choose_dtype

    model, processor = load(model_name)
    if processor is None:
        raise ValueError(f"{model_name}: a model-only save (no tokenizer files) cannot annotate; give a directory "
                         "with its processor")
    choice = choose_dtype(dtype, str(next(model.parameters()).device))
    ready_for_inference(model, choice.dtype)

    # 3. batches, in the order of `wanted` (all scratch rows, then all refine rows: one prompt shape per batch)
    bar = tqdm(total=len(wanted), initial=summary["resumed"], desc="cadvi annotate", unit="summary",
               disable=not progress, dynamic_ncols=True)
    with bar:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            turns = [prompt_turns(s, p) for s, p in chunk]
            texts, ended = generate(model, processor, turns, [p.images for _, p in chunk], max_new_tokens)
            store.append({"task": s, "id": p.id, "source": s, "prompt_version": PROMPT_VERSIONS[s],
                          "prompt": t[0]["value"], "text": text, "ended": end,
                          "dtype": choice.name}
                         for (s, p), t, text, end in zip(chunk, turns, texts, ended))
            bar.update(len(chunk))
    return summary


def read_annotations(out: Path) -> list[dict[str, Any]]:
    """The rows of ``out/annotations.jsonl`` (complete lines only)."""
    from mmlink.eval.harness import PredictionStore

    path = out / ANNOTATIONS
    if not path.exists():
        raise FileNotFoundError(f"{path}: no annotations yet; run the annotate stage first")
    return list(PredictionStore(path).done.values())


__all__ = ["ANNOTATIONS", "PROMPT_VERSIONS", "Pair", "REFINE_PROMPT", "SCRATCH_INSTRUCTION", "SOURCES", "annotate",
           "generate", "prompt_turns", "read_annotations", "read_pairs", "world_pairs"]
