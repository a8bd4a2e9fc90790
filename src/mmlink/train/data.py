"""Training data: LLaVA-format multi-image records → model batches, and the deterministic batch order.

* `ConversationDataset` — records from `mmlink.data.formats.read_dataset` (a file, a directory such as
  ``mmlink synth``'s output, or a ``datasets.save_to_disk`` directory), image paths resolved; item = record.
  Text-only records (no images) are kept: the processors encode them without image tokens.
* `ConversationCollator` — a list of records → one batch via the model's processor
  (`MmlinkQFormerProcessor.encode_conversation`): text right-padded, the images of all samples stacked in
  sample order into ``pixel_values (n_images, C, H, W)`` (samples may hold different numbers of images), one
  Q-Former row per image, and ``labels`` on every gpt turn (+EOS) — -100 on human turns, image tokens and padding.
  Targets are never truncated.
* `ShardedBatchSampler` — the index lists one process reads, from a seeded permutation per epoch; the same seed
  gives the same global batches for any number of processes (process r reads slice r of every global batch), and
  ``start`` skips exactly the micro-batches a resumed run already consumed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch.utils.data import Dataset

from mmlink.data.formats import default_image_root, read_dataset, resolve_data_path, resolve_image


class ConversationDataset(Dataset):
    """Records of LLaVA-format data (see `mmlink.data.formats.resolve_data_path` for what ``path`` may be), each
    with ``image`` resolved to absolute paths. ``self.path`` is the file (or saved data set) actually read."""

    def __init__(self, path: str | os.PathLike, image_root: str | os.PathLike | None = None):
        self.path = resolve_data_path(path)
        records, self.report = read_dataset(self.path, image_root=image_root)
        root = Path(image_root) if image_root is not None else default_image_root(self.path)
        self.records = [{**r, "image": [resolve_image(p, root) for p in r["image"]]} for r in records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.records[index]


def prompt_turns(record: dict[str, Any]) -> list[dict]:
    """The conversation up to (not including) its last gpt turn: a generation prompt."""
    turns = list(record["conversations"])
    return turns[:-1] if turns and turns[-1]["from"] == "gpt" else turns


class ConversationCollator:
    """Records → a training batch (``labels`` set), or with ``for_generation`` a left-padded prompt batch."""

    def __init__(self, processor, for_generation: bool = False):
        self.processor = processor
        self.for_generation = for_generation

    def __call__(self, records: Sequence[dict[str, Any]]):
        images = [[Path(p) for p in r.get("image") or []] for r in records]  # none: a text-only record
        if self.for_generation:
            convs = [prompt_turns(r) for r in records]
            return self.processor.encode_conversation(convs, images, padding_side="left")
        return self.processor.encode_conversation([r["conversations"] for r in records], images)


class ShardedBatchSampler:
    """Infinite stream of this process's micro-batches (lists of dataset indices), starting at micro-batch ``start``.

    Global micro-batch ``m`` belongs to epoch ``m // per_epoch`` and covers positions
    ``[(m % per_epoch) * G, … + G)`` of that epoch's permutation (``G = batch_size × num_processes``,
    permutation = ``torch.randperm(n)`` seeded with ``seed + epoch``); the incomplete tail of an epoch is dropped so
    every global batch has the same size. Process ``rank`` takes slice ``[rank*b, (rank+1)*b)`` of it.
    """

    def __init__(self, n: int, batch_size: int, num_processes: int = 1, rank: int = 0, seed: int = 0, start: int = 0):
        self.n, self.b, self.p, self.rank, self.seed, self.start = n, batch_size, num_processes, rank, seed, start
        self.global_batch = batch_size * num_processes
        self.per_epoch = n // self.global_batch
        if self.per_epoch == 0:
            raise ValueError(
                f"the data set has {n} samples, fewer than one global batch ({batch_size} per process × "
                f"{num_processes} processes = {self.global_batch})"
            )

    def permutation(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(self.n, generator=g).tolist()

    def global_indices(self, m: int) -> list[int]:
        """All indices of global micro-batch ``m`` (every process's share, in rank order)."""
        epoch, k = divmod(m, self.per_epoch)
        return self.permutation(epoch)[k * self.global_batch : (k + 1) * self.global_batch]

    def __iter__(self) -> Iterator[list[int]]:
        m, epoch, perm = self.start, None, None
        while True:
            e, k = divmod(m, self.per_epoch)
            if e != epoch:
                epoch, perm = e, self.permutation(e)
            lo = k * self.global_batch + self.rank * self.b
            yield perm[lo : lo + self.b]
            m += 1


def count_targets(labels: torch.Tensor, decoder_only: bool = True) -> int:
    """Number of supervised tokens (after the causal shift for a decoder-only LLM)."""
    return int((labels[:, 1:] != -100).sum()) if decoder_only else int((labels != -100).sum())


__all__ = ["ConversationDataset", "ConversationCollator", "ShardedBatchSampler", "prompt_turns", "count_targets"]
