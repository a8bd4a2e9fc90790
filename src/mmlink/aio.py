"""VisLingInstruct's Autonomous Instruction Optimization (AIO, paper §3.2, Algorithm 2, App. B and C), for every
model family.

For a prompt ``<images> instruction``:

1. **rewrite** the instruction with the paper's template (``prompts/aio_rewrite_v1.txt``: "There is the text {}.
   Please modify the text to make it better while retaining the sentence structure and keywords.") by a text LLM —
   by default the model's own LLM, or any `mmlink.textllm` backend, every instruction of the batch in one call.
   ``rewrites`` > 1 rewrites the last rewrite again (greedy decoding gives one answer per input), so the candidates
   stay distinct;
2. score every candidate (the instruction and its rewrites) with the **Instruction Alignment Score**, Eq. 3: the
   mean negative log-likelihood of the candidate's tokens (+ EOS, as the released scorer's target text ends) after the
   images and the IAS template (App. C, ``prompts/aio_ias_v1.txt``). All candidates of all prompts go through the LLM
   in one forward pass, each with its own mask (`mmlink.eval.ranking.score_candidates`; the released scorer averages
   the loss over the batch, which is right only at batch size 1);
3. put the candidates with their scores into the **in-context comparison** prompt, worse (higher IAS) first
   (``prompts/aio_compare_v1.txt``; the paper shows the layout, Fig. 3, not the text), after the same images, and
   let the model write the optimized instruction (its first line; if it writes nothing, the best-scored candidate);
4. the caller answers the prompt with the images and the optimized instruction.

Image placeholders stay where they were: only the text after the last ``<image>`` is the instruction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from mmlink.models.processing import IMAGE_PLACEHOLDER
from mmlink.settings import check_fields, setting
from mmlink.textllm import TextLLM, load_prompt

REWRITE_PROMPT = load_prompt("mmlink", "aio_rewrite_v1")
IAS_PROMPT = load_prompt("mmlink", "aio_ias_v1")
COMPARE_PROMPT = load_prompt("mmlink", "aio_compare_v1")
PROMPT_VERSIONS = (REWRITE_PROMPT.name, IAS_PROMPT.name, COMPARE_PROMPT.name)


@dataclass(frozen=True)
class AioSettings:
    """``rewrites``: rewritten candidates per instruction (paper: 1); ``max_new_tokens``: the longest rewrite and
    optimized instruction; ``backend``: the rewriter, a `mmlink.textllm` spec (None: the model's own LLM)."""

    rewrites: int = setting(1, min=1, help="rewritten candidates per instruction (paper: 1)")
    max_new_tokens: int = setting(48, min=1, help="the longest rewrite and optimized instruction")
    backend: str | None = setting(None, help="the rewriter, a mmlink.textllm spec (null: the model's own LLM)")

    def __post_init__(self) -> None:
        check_fields(self, "aio.")


@dataclass
class AioResult:
    """Every step of one prompt's optimization, as `predictions.jsonl` records it."""

    instruction: str
    candidates: list[str] = field(default_factory=list)
    ias: list[float] = field(default_factory=list)
    optimized: str = ""
    fallback: bool = False  # the model wrote no instruction: the best-scored candidate was used
    reused: bool = False  # the rewrites of this same instruction were already made in the run (``memo``)
    prompt: str = ""  # the prompt answered: the images as they were, then the optimized instruction

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_prompt(prompt: str) -> tuple[str, str]:
    """``(image part, instruction)``: everything up to the last ``<image>`` and the whitespace after it, then the
    instruction text. A prompt without an instruction is an error (there is nothing to optimize)."""
    cut = prompt.rfind(IMAGE_PLACEHOLDER)
    head_end = 0 if cut < 0 else cut + len(IMAGE_PLACEHOLDER)
    rest = prompt[head_end:]
    instruction = rest.strip()
    if not instruction:
        raise ValueError(f"AIO needs an instruction after the images; the prompt has none: {prompt!r}")
    return prompt[:head_end] + rest[: len(rest) - len(rest.lstrip())], instruction


def clean(text: str) -> str:
    """A model's rewrite or optimized instruction: its first non-empty line, without wrapping quotes or a label."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    for label in ("Instruction:", "Text:", "Modified text:"):
        if line.lower().startswith(label.lower()):
            line = line[len(label):].strip()
    if len(line) >= 2 and line[0] == line[-1] and line[0] in "\"'":
        line = line[1:-1].strip()
    return line.replace(IMAGE_PLACEHOLDER, "").strip()


def rewriter(model, processor, settings: AioSettings) -> TextLLM:
    """The text LLM that rewrites: ``settings.backend``, else the model's own LLM through its tokenizer."""
    from mmlink.textllm import LocalLLM, make_backend

    if settings.backend:
        return make_backend(settings.backend, max_new_tokens=settings.max_new_tokens)
    return LocalLLM(model=model.language_model, tokenizer=processor.tokenizer, max_new_tokens=settings.max_new_tokens)


def candidates_of(instructions: Sequence[str], llm: TextLLM, rewrites: int) -> list[list[str]]:
    """Per instruction, itself and up to ``rewrites`` distinct rewrites (each of the previous candidate); each round
    asks for all instructions' next rewrite at once (`TextLLM.complete_many`)."""
    out = [[instruction] for instruction in instructions]
    open_ = list(range(len(out)))  # the instructions whose last rewrite was new
    for _ in range(rewrites):
        if not open_:
            break
        written = llm.complete_many([REWRITE_PROMPT.render(text=out[i][-1]) for i in open_])
        still = []
        for i, text in zip(open_, written):
            new = clean(text)
            if new and new not in out[i]:
                out[i].append(new)
                still.append(i)
        open_ = still
    return out


def ias_scores(model, processor, heads: Sequence[str], images: Sequence[Sequence[Any]],
               candidates: Sequence[Sequence[str]]) -> list[list[float]]:
    """IAS of every candidate of every prompt (lower is better), all in one batched forward pass."""
    from mmlink.eval.ranking import score_candidates

    turns = [[{"from": "human", "value": head + IAS_PROMPT.render()}] for head in heads]
    scores = score_candidates(model, processor, turns, images, candidates)
    return [[-s for s in sc.scores("mean")] for sc in scores]


def compare_prompt(head: str, candidates: Sequence[str], ias: Sequence[float]) -> str:
    """The in-context comparison prompt: the images, then the candidates worse (higher IAS) first."""
    order = sorted(range(len(candidates)), key=lambda i: -ias[i])
    examples = "\n".join(f"Instruction: {candidates[i]}\nScore: {ias[i]:.3f}" for i in order)
    return head + COMPARE_PROMPT.render(examples=examples)


def optimize(model, processor, prompts: Sequence[str], images: Sequence[Sequence[Any]],
             settings: AioSettings | None = None, llm: TextLLM | None = None,
             memo: dict[str, list[str]] | None = None) -> list[AioResult]:
    """AIO steps 1–3 for a batch of prompts → one `AioResult` each (``result.prompt`` is what to answer).

    ``memo`` (instruction → candidates) keeps the rewrites across calls: step 1 reads the instruction alone and
    decodes greedily, so an instruction seen before (the same question under other images, a blind pass) gets the
    same rewrites without asking again. Steps 2 and 3 see the images and always run."""
    from mmlink.generate import answer, make_generation_config

    settings = settings or AioSettings()
    llm = llm or rewriter(model, processor, settings)
    split = [split_prompt(p) for p in prompts]
    results = [AioResult(instruction) for _, instruction in split]
    memo = {} if memo is None else memo
    new = list(dict.fromkeys(r.instruction for r in results if r.instruction not in memo))
    memo.update(zip(new, candidates_of(new, llm, settings.rewrites)))  # 1. rewrite, all new instructions at once
    fresh = set(new)  # the first item with a new instruction paid for its rewrites; the others reuse them
    for r in results:
        r.reused, r.candidates = r.instruction not in fresh, list(memo[r.instruction])
        fresh.discard(r.instruction)
    heads = [head for head, _ in split]
    for r, scores in zip(results, ias_scores(model, processor, heads, images, [r.candidates for r in results])):
        r.ias = scores  # 2. IAS
    compare = [compare_prompt(head, r.candidates, r.ias) for head, r in zip(heads, results)]
    written = answer(model, processor, compare, list(images),
                     make_generation_config(max_new_tokens=settings.max_new_tokens))
    for head, r, text in zip(heads, results, written):  # 3. the optimized instruction
        r.optimized = clean(text)
        if not r.optimized:
            r.optimized, r.fallback = r.candidates[min(range(len(r.ias)), key=r.ias.__getitem__)], True
        r.prompt = head + r.optimized
    return results


__all__ = ["AioResult", "AioSettings", "COMPARE_PROMPT", "IAS_PROMPT", "PROMPT_VERSIONS", "REWRITE_PROMPT",
           "candidates_of", "clean", "compare_prompt", "ias_scores", "optimize", "rewriter", "split_prompt"]
