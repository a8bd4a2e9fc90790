"""Closed-ended answers by candidate log-likelihood.

Each candidate is scored as the model's log-likelihood of the candidate's tokens **plus EOS** after the prompt
(the answer ends there, as in training): ``score = Σ_t log p(y_t | prompt, y_<t)`` (scoring ``"sum"``); scoring
``"mean"`` divides the sum by that candidate's own token count. Padding never enters the score — LAVIS averages a
loss over the *padded* length, which favours short answers; here every sum and count runs over the candidate's real
tokens only.

Each question's images are encoded once (`prompt_image_features`: the vision tower, and the Q-Former or the
projector), however many candidates it has: the Q-Former's instruction comes from the human turns alone, so every
candidate row of a question would get the same image features. The candidate rows are then encoded as text only and each row takes its question's features.
All candidates of a batch of questions go through the LLM in one forward pass. For a decoder-only LLM the rows
are left-padded (with explicit position ids, so a row's positions do not depend on its padding) and only the last
``max candidate length + 1`` positions' logits are computed, not the whole vocabulary over the whole prompt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from PIL import Image

from mmlink.eval.closed import CandidateScores


@torch.inference_mode()
def score_candidates(
    model,
    processor,
    turns: Sequence[Sequence[dict]],
    images: Sequence[Sequence[str | Path | Image.Image]],
    candidates: Sequence[Sequence[str]],
) -> list[CandidateScores]:
    """Log-likelihood of every candidate of every question: each question's images through the vision tower and
    the Q-Former once, all candidates through the LLM in one forward pass.

    turns: per question, the prompt (LLaVA turns ending with a human turn); images: per question, its image paths
    or PIL images;
    candidates: per question, its answer strings. Returns one `CandidateScores` per question.
    """
    if not (len(turns) == len(images) == len(candidates)):
        raise ValueError(f"got {len(turns)} prompts, {len(images)} image lists, {len(candidates)} candidate lists")
    paths = [[p if isinstance(p, Image.Image) else Path(p) for p in im] for im in images]
    convs, imgs, owner = [], [], []
    for q, (t, im, cands) in enumerate(zip(turns, paths, candidates)):
        if not cands:
            raise ValueError(f"question {q}: no candidates")
        for c in cands:
            convs.append([*t, {"from": "gpt", "value": c}])
            imgs.append(im)
            owner.append(q)
    device = next(model.parameters()).device
    decoder_only = model.config.use_decoder_only_language_model

    # The images once per question: its prompt alone gives the pixel values (and, for the Q-Former family, the
    # instruction: human turns only, so the same as in each of its candidate rows).
    prompts = processor.encode_conversation([list(t) for t in turns], paths)
    prompts = prompts.to(device)
    features, image_to_sample = model.prompt_image_features(prompts)  # (n, T_img, Dl), (n,) question of each image
    # Each candidate row takes its question's block of images, in order: the nonzero entries of (row, image) in
    # row-major order list row 0's images, then row 1's, ... — the order of the rows' placeholders.
    owner_t = torch.tensor(owner, device=device)  # (R,)
    index = (owner_t[:, None] == image_to_sample[None, :]).nonzero()[:, 1]  # (Σ row images,)
    row_features = features[index]  # (Σ row images, Q, Dl)

    batch = processor.encode_conversation(
        convs, imgs, padding_side="left" if decoder_only else "right", encode_images=False
    )
    batch = batch.to(device)
    batch["image_features"] = row_features
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


__all__ = ["CandidateScores", "score_candidates"]
