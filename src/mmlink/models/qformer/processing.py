"""Turn interleaved images and text into the Q-Former family's model inputs.

A sample is either

* an interleaved list ``[image, "text", image, "text", ...]`` — images are ``PIL.Image`` or ``pathlib.Path``
  (a plain ``str`` is always text), or
* a prompt string with ``<image>`` placeholders plus a list of images, one per placeholder, in order.

A prompt with **no** placeholder and ``k`` images puts the ``k`` images first, then the prompt — exactly
InstructBLIP's layout for one image (image tokens, then the BOS-prefixed prompt). Any other mismatch between
placeholders and images is an error.

Each image becomes ``num_query_tokens`` copies of ``image_token_index`` in ``input_ids``; every image gets its own
Q-Former row holding its sample's instruction (the prompt without placeholders), as InstructBLIP feeds the
instruction to the Q-Former.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence, Union

import torch
from PIL import Image
from transformers import BatchFeature, PreTrainedTokenizerBase
from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

from mmlink.data.images import load_images

IMAGE_PLACEHOLDER = "<image>"
ImageLike = Union[Image.Image, Path]
Sample = Union[str, Sequence[Union[str, ImageLike]]]


@dataclass
class _Encoded:
    input_ids: list[int]
    labels: list[int]
    images: list[Image.Image]
    instruction: str


class MmlinkQFormerProcessor:
    """Images + text → ``pixel_values``, ``qformer_input_ids``/``qformer_attention_mask`` (one row per image),
    ``input_ids``/``attention_mask`` (and ``labels`` when targets are given)."""

    def __init__(
        self,
        image_processor: BlipImageProcessorPil,
        tokenizer: PreTrainedTokenizerBase,
        qformer_tokenizer: PreTrainedTokenizerBase,
        *,
        num_query_tokens: int,
        image_token_index: int,
        max_images: int = 8,
        qformer_max_length: int = 128,
        is_encoder_decoder: bool = False,
    ):
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        self.qformer_tokenizer = qformer_tokenizer
        self.num_query_tokens = num_query_tokens
        self.image_token_index = image_token_index
        self.max_images = max_images
        self.qformer_max_length = qformer_max_length
        # An encoder-decoder LLM (Flan-T5) reads the prompt and decodes the answer: targets become `labels` alone.
        self.is_encoder_decoder = is_encoder_decoder
        # Special tokens the tokenizer puts before any text (e.g. Llama's BOS; nothing for SmolLM2).
        self._prefix = list(tokenizer("", add_special_tokens=True)["input_ids"])
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is None:
            raise ValueError("the LLM tokenizer has neither a pad nor an eos token to pad with")
        self.pad_token_id = pad

    @classmethod
    def from_config(cls, config, tokenizer, qformer_tokenizer, image_processor=None) -> "MmlinkQFormerProcessor":
        """Build from a `MmlinkQFormerConfig`; the image processor follows the vision tower unless given."""
        from mmlink.models.vision import image_normalization, image_size

        if image_processor is None:
            mean, std = image_normalization(config.vision_config)
            size = image_size(config.vision_config)
            image_processor = BlipImageProcessorPil(
                size={"height": size, "width": size}, image_mean=mean, image_std=std, do_convert_rgb=True
            )
        return cls(
            image_processor,
            tokenizer,
            qformer_tokenizer,
            num_query_tokens=config.num_query_tokens,
            image_token_index=config.image_token_index,
            max_images=config.max_images,
            qformer_max_length=config.qformer_max_length,
            is_encoder_decoder=not config.use_decoder_only_language_model,
        )

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        directory = Path(directory)
        self.tokenizer.save_pretrained(directory / "tokenizer")
        self.qformer_tokenizer.save_pretrained(directory / "qformer_tokenizer")
        self.image_processor.save_pretrained(directory)

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
        image_run = [self.image_token_index] * self.num_query_tokens
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
        earlier turn is prompt.

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
        if not imgs:
            raise ValueError(f"{where}: no image given; the model needs at least one image per sample")
        if len(imgs) > self.max_images:
            raise ValueError(f"{where}: {len(imgs)} images exceed max_images={self.max_images}")
        n_placeholders = sum(t["value"].count(IMAGE_PLACEHOLDER) for t in turns if t.get("from") == "human")
        if n_placeholders not in (0, len(imgs)):
            raise ValueError(f"{where}: {n_placeholders} {IMAGE_PLACEHOLDER} placeholder(s) but {len(imgs)} image(s)")
        try:
            loaded = load_images(imgs) if encode_images else []  # the text needs only their number
        except (ValueError, FileNotFoundError) as err:
            raise type(err)(f"{where}: {err}") from None
        image_run = [self.image_token_index] * self.num_query_tokens
        eos = [] if self.tokenizer.eos_token_id is None else [self.tokenizer.eos_token_id]
        if self.is_encoder_decoder and turns[-1].get("from") == "gpt":
            prompt_turns, answer = turns[:-1], turns[-1]["value"]
        else:
            prompt_turns, answer = turns, None
        ids: list[int] = []
        labels: list[int] = []
        if n_placeholders == 0:  # InstructBLIP layout: the images first, then the specials and the text
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
            # One Q-Former row per image, repeating its sample's instruction.
            instructions = [e.instruction for e in encoded for _ in e.images]
            q = self.qformer_tokenizer(
                instructions,
                padding="longest",
                truncation=True,
                max_length=self.qformer_max_length,
                return_tensors="pt",
            )
            images = [img for e in encoded for img in e.images]
            data["pixel_values"] = self.image_processor(images, return_tensors="pt")["pixel_values"]  # (n, C, H, W)
            data["qformer_input_ids"] = q["input_ids"]  # (n, L)
            data["qformer_attention_mask"] = q["attention_mask"]  # (n, L)
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


__all__ = ["MmlinkQFormerProcessor", "IMAGE_PLACEHOLDER"]
