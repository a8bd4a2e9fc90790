"""Speed of candidate ranking (closed-ended tasks): image features once per question vs once per candidate row.

`mmlink.eval.ranking.score_candidates` scores every candidate answer of a batch of questions by its log-likelihood.
It used to encode one row per (question, candidate), pixel values included, so a question's images went through the
vision tower and the Q-Former once per candidate, although the Q-Former's instruction comes from the human turns
alone and every candidate row of a question gets the same image features. Now each question's images run once and
the candidate rows are text only, taking their question's features.

This script times both on the same batch (default: 8 questions x 4 candidates x 2 images, random-noise PNGs):

* ``per-row (old)`` — `per_row_score_candidates` below, a faithful copy of the previous algorithm (the baseline);
* ``per question``  — today's `score_candidates`;

with interleaved repeats after warm-up (medians), and reports the speed-up, the noise (quartiles of the per-repeat
ratio), how many images reached the vision tower per call, and the largest difference between the two scores.

Usage: python benchmarks/ranking_speed.py [--models tiny,mini] [--questions 8] [--candidates 4] [--images 2]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

# benchlib sits next to this script (on sys.path when it runs); it sets the environment before torch is imported.
import benchlib
import torch
from benchlib import OtherCpuLoad, fmt_time, make_images, time_interleaved

from mmlink.eval.ranking import CandidateScores, score_candidates

DESCRIPTION = """\
Time candidate ranking (closed-ended tasks) the old way, each candidate row running its question's images through
the vision tower and the Q-Former (a copy of the previous algorithm, the baseline), against today's
mmlink.eval.ranking.score_candidates, which runs each question's images once. Same batch for both (random-noise
images, fp32); interleaved repeats after warm-up; reports medians, the speed-up, images through the vision tower
per call and the largest score difference.
"""
OLD, NEW = "per-row (old)", "per question"
# Options of different lengths, so that the candidate rows get different amounts of padding.
OPTIONS = ["A", "the left one", "B, the one on the right", "neither of the two images"]


# --------------------------------------------------------------------------- baseline


@torch.inference_mode()
def per_row_score_candidates(
    model,
    processor,
    turns: Sequence[Sequence[dict]],
    images: Sequence[Sequence[str | Path]],
    candidates: Sequence[Sequence[str]],
) -> list[CandidateScores]:
    """BASELINE, kept for this comparison only: `score_candidates` before image features were shared. Every
    (question, candidate) row carries its question's pixel values, so the vision tower and the Q-Former run once
    per candidate. Otherwise the same: one forward pass, left padding with position ids, trimmed logits."""
    if not (len(turns) == len(images) == len(candidates)):
        raise ValueError(f"got {len(turns)} prompts, {len(images)} image lists, {len(candidates)} candidate lists")
    convs, imgs, owner = [], [], []
    for q, (t, im, cands) in enumerate(zip(turns, images, candidates)):
        if not cands:
            raise ValueError(f"question {q}: no candidates")
        for c in cands:
            convs.append([*t, {"from": "gpt", "value": c}])
            imgs.append([Path(p) for p in im])
            owner.append(q)
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    decoder_only = model.config.use_decoder_only_language_model
    batch = processor.encode_conversation(convs, imgs, padding_side="left" if decoder_only else "right")
    batch = {k: v.to(device) for k, v in batch.items()}
    batch["pixel_values"] = batch["pixel_values"].to(dtype)
    labels = batch.pop("labels")  # (R, T) decoder-only; (R, T_ans) encoder-decoder
    if decoder_only:
        # Left padding puts every candidate at the end of its row: keep only the last L+1 positions' logits.
        width = int((labels != -100).sum(1).max())
        mask = batch["attention_mask"]
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)  # (R, T): each row counts from its first real token
        out = model(**batch, position_ids=position_ids, logits_to_keep=width + 1)
        logits = out.logits[:, :-1].float()  # (R, L, V): position t predicts token t+1
        targets = labels[:, -width:]  # (R, L)
    else:
        decoder_input_ids = model.language_model._shift_right(labels)
        out = model(**batch, decoder_input_ids=decoder_input_ids)
        logits, targets = out.logits.float(), labels  # (R, T_ans, V), (R, T_ans)
    keep = targets != -100
    token_logprob = torch.log_softmax(logits, -1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    sums = (token_logprob * keep).sum(1).tolist()  # (R,)
    counts = keep.sum(1).tolist()
    results = [CandidateScores([], []) for _ in turns]
    for row, q in enumerate(owner):
        results[q].logprob.append(sums[row])
        results[q].tokens.append(int(counts[row]))
    return results


# --------------------------------------------------------------------------- inputs


def make_questions(directory: Path, questions: int, candidates: int, n_images: int):
    """``questions`` prompts with ``n_images`` distinct random-noise PNGs each (score_candidates takes paths) and
    ``candidates`` options each."""
    paths = []
    for i, img in enumerate(make_images(questions * n_images, size=224, seed=0)):
        path = directory / f"{i}.png"
        img.save(path)
        paths.append(str(path))
    prompt = "".join(f"Image {j + 1}: <image>\n" for j in range(n_images))
    prompt += "Which image shows the larger red object? Answer with one of the options."
    turns = [[{"from": "human", "value": prompt}] for _ in range(questions)]
    images = [paths[q * n_images : (q + 1) * n_images] for q in range(questions)]
    # More candidates than OPTIONS: repeat them with a suffix, so that every candidate stays distinct.
    options = [OPTIONS[j % len(OPTIONS)] + (f" ({j // len(OPTIONS)})" if j >= len(OPTIONS) else "")
               for j in range(candidates)]
    return turns, images, [options] * questions


# --------------------------------------------------------------------------- timing


@dataclass
class Result:
    model: str
    questions: int
    candidates: int
    images: int
    old_s: float  # median
    new_s: float  # median
    vision_images: dict[str, int]  # images through the vision tower in one call, per variant
    max_abs_diff: float  # largest |old score - new score| over every candidate
    samples_s: dict[str, list[float]] = field(repr=False)
    others_cpu_pct: float | None = None

    @property
    def speedup(self) -> float:
        return self.old_s / self.new_s

    def speedup_iqr(self) -> tuple[float, float]:
        """Quartiles of the per-repeat speed-up (each new call vs the old call next to it): the noise band."""
        return benchlib.quartiles([o / n for o, n in zip(self.samples_s[OLD], self.samples_s[NEW])])


def call_counting_images(model, fn):
    """Call ``fn`` once; return its result and the number of images that reached the vision tower. This wraps
    ``patch_features`` (a forward hook would miss towers such as EfficientNet-Lite that bypass ``forward``)."""
    tower, seen = model.vision_model, []
    original = tower.patch_features

    def counting(pixel_values):
        seen.append(pixel_values.shape[0])
        return original(pixel_values)

    tower.patch_features = counting  # an instance attribute shadows the method
    try:
        result = fn()
    finally:
        del tower.patch_features
    return result, sum(seen)


def run(args, log) -> list[Result]:
    from mmlink.models import load

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        turns, images, cands = make_questions(Path(tmp), args.questions, args.candidates, args.images)
        for model_name in args.models:
            log(f"loading {model_name}")
            model, processor = load(model_name)
            model = model.to(device=args.device, dtype=torch.float32).eval()
            fns = {
                OLD: lambda: per_row_score_candidates(model, processor, turns, images, cands),
                NEW: lambda: score_candidates(model, processor, turns, images, cands),
            }
            # A first, untimed call of each variant gives the scores to compare and the image counts; it is also
            # the warm-up (a `mini` call takes tens of seconds on 2 cores: no call is spent on warm-up alone).
            log(f"checking {model_name}: one call per variant")
            (old, vision_old), (new, vision_new) = (call_counting_images(model, fns[name]) for name in (OLD, NEW))
            vision = {OLD: vision_old, NEW: vision_new}
            diff = max(abs(a - b) for o, n in zip(old, new) for a, b in zip(o.logprob, n.logprob))
            if any(o.tokens != n.tokens for o, n in zip(old, new)):
                raise RuntimeError("the two variants counted different candidate tokens")
            log(f"timing {model_name} ({args.repeats} interleaved repeats after {args.warmup} more warm-up)")
            with torch.inference_mode(), OtherCpuLoad() as others:
                times = time_interleaved(fns, args.warmup, args.repeats, args.device)
            results.append(
                Result(
                    model_name,
                    args.questions,
                    args.candidates,
                    args.images,
                    statistics.median(times[OLD]),
                    statistics.median(times[NEW]),
                    vision,
                    diff,
                    times,
                    others.pct,
                )
            )
            del model, processor, fns
            gc.collect()
    return results


# --------------------------------------------------------------------------- report


def print_report(args, machine: dict, results: list[Result]) -> None:
    from rich.table import Table

    console = benchlib.console(width=140)
    table = Table(
        title=f"candidate ranking: {args.questions} questions x {args.candidates} candidates x {args.images} images"
    )
    columns = ("model", "vision imgs old→new", OLD, NEW, "speed-up", "noise", "max |Δscore|")
    for name in columns:
        table.add_column(name, justify="left" if name == "model" else "right")
    for r in results:
        q1, q3 = r.speedup_iqr()
        busy = benchlib.is_busy(r.others_cpu_pct)
        table.add_row(
            r.model,
            f"{r.vision_images[OLD]} → {r.vision_images[NEW]}",
            fmt_time(r.old_s),
            fmt_time(r.new_s),
            f"{r.speedup:.2f}x" + (" *" if busy else ""),
            f"{q1:.2f}..{q3:.2f}x",
            f"{r.max_abs_diff:.2e}",
        )
    console.print(table)
    notes = [
        benchlib.machine_note(machine) + f"; CPU capability {machine['cpu_capability']}",
        f"timing: medians of {args.repeats} interleaved repeats after {1 + args.warmup} untimed call(s) per variant, "
        "fp32, whole score_candidates call (encoding included); noise: quartiles of the per-repeat speed-up",
        f"{OLD}: the previous algorithm, copied into this script (every candidate row runs its question's images); "
        f"{NEW}: mmlink.eval.ranking.score_candidates",
    ]
    console.print("\n".join(notes), highlight=False)
    busy = [r.others_cpu_pct for r in results if benchlib.is_busy(r.others_cpu_pct)]
    benchlib.print_busy_warning(console, busy, "timing row(s)")


# --------------------------------------------------------------------------- CLI


def parse_args(argv=None) -> argparse.Namespace:
    parser = benchlib.arg_parser(DESCRIPTION)
    parser.add_argument("--questions", type=int, default=8, help="questions in the batch")
    parser.add_argument("--candidates", type=int, default=4, help="candidate answers per question")
    parser.add_argument("--images", type=int, default=2, help="images per question")
    parser.add_argument("--repeats", type=int, default=4, help="interleaved timing repeats")
    parser.add_argument(
        "--warmup", type=int, default=0, help="untimed calls per variant after the first (checked) one"
    )
    parser.add_argument("--out", default=None, help="also write all results (raw timings included) as JSON here")
    benchlib.add_run_args(parser)
    parser.set_defaults(memory_child=None)  # benchlib.start's memory-child hook; this script measures no memory
    args = parser.parse_args(argv)
    if min(args.questions, args.candidates, args.images, args.repeats) < 1 or args.warmup < 0:
        parser.error("--questions, --candidates, --images and --repeats must be >= 1, --warmup >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    log = benchlib.start(args, lambda spec: None)
    results = run(args, log)
    machine = {**benchlib.machine_info(args.device), "cpu_capability": str(torch.backends.cpu.get_cpu_capability())}
    log("done")
    print_report(args, machine, results)
    if args.out:
        rows = [{**asdict(r), "speedup": r.speedup} for r in results]
        benchlib.write_report(args, machine, {"timings": rows}, [])
    return 0


if __name__ == "__main__":
    sys.exit(main())
