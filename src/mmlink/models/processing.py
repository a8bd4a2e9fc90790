"""Turn interleaved images and text into a multi-image model's inputs — the part both families share.

A sample is either

* an interleaved list ``[image, "text", image, "text", ...]`` — images are ``PIL.Image`` or ``pathlib.Path``
  (a plain ``str`` is always text), or
* a prompt string with ``<image>`` placeholders plus a list of images, one per placeholder, in order.

A prompt with **no** placeholder and ``k`` images puts the ``k`` images first, then the prompt — InstructBLIP's
layout for one image (image tokens, then the BOS-prefixed prompt). Any other mismatch between placeholders and
images is an error.

Each image becomes ``image_seq_length`` copies of ``image_token_index`` in ``input_ids`` (the Q-Former family: its
query tokens; the LLaVA family: the tower's patch tokens). A family adds its own image tensors in `_image_inputs`
(both: ``pixel_values``; the Q-Former family also one instruction row per image). Processors are transformers
``ProcessorMixin`` subclasses, so ``save_pretrained`` / ``from_pretrained`` round-trip them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence, Union

import torch
from PIL import Image
from transformers import BatchFeature, ProcessorMixin

from mmlink.images import load_images

IMAGE_PLACEHOLDER = "<image>"
ImageLike = Union[Image.Image, Path]
Sample = Union[str, Sequence[Union[str, ImageLike]]]


@dataclass
class _Encoded:
    input_ids: list[int]
    labels: list[int]
    images: list[Image.Image]
    instruction: str


class MultiImageProcessor(ProcessorMixin):
    """Images + text → ``input_ids``/``attention_mask`` (and ``labels`` when targets are given) + the family's image
    tensors. Subclasses set ``image_seq_length``, ``image_token_index``, ``max_images``, ``is_encoder_decoder``
    before calling `_setup`, and implement `_image_inputs`."""

    is_encoder_decoder: bool = False

    def _setup(self) -> None:
        # Special tokens the tokenizer puts before any text (e.g. Llama's BOS; nothing for SmolLM2).
        self._prefix = list(self.tokenizer("", add_special_tokens=True)["input_ids"])
        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        if pad is None:
            raise ValueError("the LLM tokenizer has neither a pad nor an eos token to pad with")
        self.pad_token_id = pad

    def _image_inputs(self, encoded: list[_Encoded]) -> dict[str, torch.Tensor]:
        """The family's image tensors for a batch (every image of every sample, in order)."""
        raise NotImplementedError

    def _pixel_values(self, images: list[Image.Image]) -> torch.Tensor:
        """``(n, C, H, W)`` for ``images``; ``(0, C, H, W)`` for none (a text-only batch), with the size and dtype
        the image processor gives, so models and the training loop get the usual tensor."""
        if images:
            return self.image_processor(images, return_tensors="pt")["pixel_values"]
        return self.image_processor([Image.new("RGB", (8, 8))], return_tensors="pt")["pixel_values"][:0]

    # ------------------------------------------------------------------ encoding

    def _split(self, sample: Sample, images: Sequence[ImageLike] | None, index: int) -> tuple[list, list]:
        """Normalise a sample into (text pieces, images): ``len(pieces) == len(images) + 1``."""
        where = f"sample {index}"
        if isinstance(sample, str):
            images = list(images or [])
            for item in images:
                if not isinstance(item, (Image.Image, Path)):
                    raise ValueError(f"{where}: images must be PIL.Image or pathlib.Path, got {type(item).__name__}")
            if not sample.strip():
                raise ValueError(f"{where}: the prompt is empty")
            pieces = sample.split(IMAGE_PLACEHOLDER)
            n_placeholders = len(pieces) - 1
            if n_placeholders == 0 and images:
                pieces = [""] * len(images) + [sample]  # images first, InstructBLIP style
            elif n_placeholders != len(images):
                raise ValueError(
                    f"{where}: the prompt has {n_placeholders} {IMAGE_PLACEHOLDER} placeholder(s) but "
                    f"{len(images)} image(s) were given"
                )
            return pieces, images
        if images:
            raise ValueError(f"{where}: pass images either interleaved in the sample or as `images`, not both")
        pieces, imgs, text = [], [], ""
        for item in sample:
            if isinstance(item, str):
                text += item
            elif isinstance(item, (Image.Image, Path)):
                pieces.append(text)
                imgs.append(item)
                text = ""
            else:
                raise ValueError(f"{where}: items must be str, PIL.Image or pathlib.Path, got {type(item).__name__}")
        pieces.append(text)
        if not "".join(pieces).strip() and not imgs:
            raise ValueError(f"{where}: the prompt is empty")
        return pieces, imgs

    def _encode(self, sample, images, target, index) -> _Encoded:
        pieces, imgs = self._split(sample, images, index)
        if not imgs:
            raise ValueError(f"sample {index}: no image given; the model needs at least one image per sample")
        if len(imgs) > self.max_images:
            raise ValueError(f"sample {index}: {len(imgs)} images exceed max_images={self.max_images}")
        try:
            loaded = load_images(imgs)
        except (ValueError, FileNotFoundError) as err:
            raise type(err)(f"sample {index}: {err}") from None
        ids: list[int] = []
        image_run = [self.image_token_index] * self.image_seq_length
        if _images_first(pieces):
            # InstructBLIP layout: image tokens, then the tokenizer's specials and the prompt.
            ids += image_run * len(imgs)
            ids += self.tokenizer(pieces[-1], add_special_tokens=True)["input_ids"]
        else:
            ids += self._prefix
            for j, piece in enumerate(pieces):
                if piece:
                    ids += self.tokenizer(piece, add_special_tokens=False)["input_ids"]
                if j < len(imgs):
                    ids += image_run
        labels = [-100] * len(ids)
        if target is not None:
            target_ids = self.tokenizer(target, add_special_tokens=False)["input_ids"]
            if self.tokenizer.eos_token_id is not None:
                target_ids = target_ids + [self.tokenizer.eos_token_id]
            if self.is_encoder_decoder:
                labels = target_ids
            else:
                ids, labels = ids + target_ids, labels + target_ids
        instruction = " ".join(p.strip() for p in pieces if p.strip())
        return _Encoded(ids, labels, loaded, instruction)

    def __call__(
        self,
        samples: Sample | Sequence[Sample],
        images: Sequence[ImageLike] | Sequence[Sequence[ImageLike]] | None = None,
        *,
        targets: str | Sequence[str] | None = None,
        padding_side: Literal["left", "right"] | None = None,
    ) -> BatchFeature:
        """Encode one sample or a batch. ``images``: a list per sample (or one list for a single sample).
        ``targets``: answers to learn (adds ``labels``; -100 on images, prompt and padding). Padding defaults to
        left (generation) without targets and right with them."""
        single = isinstance(samples, str) or (
            isinstance(samples, Sequence) and any(isinstance(x, (Image.Image, Path)) for x in samples)
        )
        batch = [samples] if single else list(samples)
        if not batch:
            raise ValueError("no samples given")
        if images is None:
            per_sample_images = [None] * len(batch)
        elif single:
            per_sample_images = [images]
        else:
            if len(images) != len(batch):
                raise ValueError(f"got {len(batch)} samples but {len(images)} image lists")
            per_sample_images = images
        if targets is not None:
            targets = [targets] if isinstance(targets, str) else list(targets)
            if len(targets) != len(batch):
                raise ValueError(f"got {len(batch)} samples but {len(targets)} targets")
        encoded = [
            self._encode(s, imgs, None if targets is None else targets[i], i)
            for i, (s, imgs) in enumerate(zip(batch, per_sample_images))
        ]
        side = padding_side or ("right" if targets is not None else "left")
        return self._collate(encoded, side, with_labels=targets is not None)

    # ------------------------------------------------------------------ conversations (training)

    def encode_conversation(
        self,
        conversations: Sequence[Sequence[dict]],
        images: Sequence[Sequence[ImageLike]],
        *,
        padding_side: Literal["left", "right"] = "right",
        encode_images: bool = True,
    ) -> BatchFeature:
        """Encode a batch of LLaVA-style conversations (``[{"from": "human"|"gpt", "value": str}, ...]``).

        Turns are concatenated without a chat template (InstructBLIP layout): each human turn's text (its
        ``<image>`` placeholders become the images' query tokens, in order), each gpt turn's text + EOS.
        ``labels`` supervise **every** gpt turn (+ its EOS) — never truncated — and are -100 on human turns, image
        tokens and padding. A conversation ending with a human turn is a generation prompt (no labels are added
        when no conversation has a gpt turn). For one human + one gpt turn the ids equal
        ``self(prompt, images, targets=answer)``. Encoder-decoder LLMs: the last gpt turn is the target, every
        earlier turn is prompt. A conversation may have no image (the text-only records of instruction mixes): its
        row holds no image token, and a batch without any image has ``pixel_values`` ``(0, C, H, W)``.

        ``encode_images=False`` gives the text rows alone (``input_ids``, ``attention_mask``, ``labels``, the same
        as with images): the images are counted and checked against the placeholders but neither loaded nor
        processed, and there are no ``pixel_values``/``qformer_*`` — for rows whose image features the caller
        already has (`mmlink.eval.ranking` runs each question's images once for all its candidates).
        """
        if not conversations:
            raise ValueError("no conversations given")
        if len(images) != len(conversations):
            raise ValueError(f"got {len(conversations)} conversations but {len(images)} image lists")
        encoded = [
            self._encode_turns(list(c), list(imgs), i, encode_images)
            for i, (c, imgs) in enumerate(zip(conversations, images))
        ]
        with_labels = any(c and c[-1].get("from") == "gpt" for c in conversations)
        return self._collate(encoded, padding_side, with_labels=with_labels, encode_images=encode_images)

    def _encode_turns(self, turns: list[dict], imgs: list, index: int, encode_images: bool = True) -> _Encoded:
        where = f"conversation {index}"
        if not turns or turns[0].get("from") != "human":
            raise ValueError(f"{where}: must start with a human turn")
        # No image is allowed here (unlike a prompt to `__call__`): instruction mixes hold text-only conversations.
        if len(imgs) > self.max_images:
            raise ValueError(f"{where}: {len(imgs)} images exceed max_images={self.max_images}")
        n_placeholders = sum(t["value"].count(IMAGE_PLACEHOLDER) for t in turns if t.get("from") == "human")
        if n_placeholders not in (0, len(imgs)):
            raise ValueError(f"{where}: {n_placeholders} {IMAGE_PLACEHOLDER} placeholder(s) but {len(imgs)} image(s)")
        try:
            loaded = load_images(imgs) if encode_images else []  # the text needs only their number
        except (ValueError, FileNotFoundError) as err:
            raise type(err)(f"{where}: {err}") from None
        image_run = [self.image_token_index] * self.image_seq_length
        eos = [] if self.tokenizer.eos_token_id is None else [self.tokenizer.eos_token_id]
        if self.is_encoder_decoder and turns[-1].get("from") == "gpt":
            prompt_turns, answer = turns[:-1], turns[-1]["value"]
        else:
            prompt_turns, answer = turns, None
        ids: list[int] = []
        labels: list[int] = []
        if n_placeholders == 0:  # InstructBLIP layout: the images (if any) first, then the specials and the text
            ids += image_run * len(imgs)
            ids += self._prefix
        else:
            ids += self._prefix
        labels += [-100] * len(ids)
        instruction = []
        for t, turn in enumerate(prompt_turns):
            role, value = turn.get("from"), turn.get("value")
            if role not in ("human", "gpt") or not isinstance(value, str):
                raise ValueError(f"{where}: turn {t} must be {{'from': 'human'|'gpt', 'value': str}}")
            if role == "gpt":
                piece = self.tokenizer(value, add_special_tokens=False)["input_ids"] + eos
                ids += piece
                labels += piece
                continue
            pieces = value.split(IMAGE_PLACEHOLDER)
            instruction += [p.strip() for p in pieces if p.strip()]
            for j, piece in enumerate(pieces):
                if piece:
                    tok = self.tokenizer(piece, add_special_tokens=False)["input_ids"]
                    ids += tok
                    labels += [-100] * len(tok)
                if j < len(pieces) - 1:
                    ids += image_run
                    labels += [-100] * len(image_run)
        if answer is not None:  # encoder-decoder: labels hold the answer alone
            labels = self.tokenizer(answer, add_special_tokens=False)["input_ids"] + eos
        return _Encoded(ids, labels, loaded, " ".join(instruction))

    def _collate(
        self, encoded: list[_Encoded], side: str, with_labels: bool, encode_images: bool = True
    ) -> BatchFeature:
        width = max(len(e.input_ids) for e in encoded)

        def pad(row: list[int], value: int) -> list[int]:
            fill = [value] * (width - len(row))
            return fill + row if side == "left" else row + fill

        input_ids = torch.tensor([pad(e.input_ids, self.pad_token_id) for e in encoded])
        attention_mask = torch.tensor([pad([1] * len(e.input_ids), 0) for e in encoded])
        data = {}
        if encode_images:
            data.update(self._image_inputs(encoded))
        data["input_ids"] = input_ids  # (B, T)
        data["attention_mask"] = attention_mask  # (B, T)
        if with_labels and self.is_encoder_decoder:
            answer_width = max(len(e.labels) for e in encoded)
            data["labels"] = torch.tensor([e.labels + [-100] * (answer_width - len(e.labels)) for e in encoded])
        elif with_labels:
            data["labels"] = torch.tensor([pad(e.labels, -100) for e in encoded])  # (B, T)
        return BatchFeature(data)

    def batch_decode(self, token_ids: torch.Tensor) -> list[str]:
        return [t.strip() for t in self.tokenizer.batch_decode(token_ids, skip_special_tokens=True)]


def _images_first(pieces: list[str]) -> bool:
    """True for the layout produced by a prompt without placeholders: empty pieces before the last one."""
    return len(pieces) > 1 and all(p == "" for p in pieces[:-1])


__all__ = ["IMAGE_PLACEHOLDER", "ImageLike", "MultiImageProcessor", "Sample"]
