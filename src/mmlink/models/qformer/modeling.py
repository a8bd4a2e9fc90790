"""Multi-image Q-Former MLLM (InstructBLIP-compatible) with SAM's bidirectional semantic guidance and
VisLingInstruct's Cross-Modal Alignment Attention (CMAA).

The whole forward pass lives here, in numbered steps:

1. vision tower: every image of the batch at once → patch features ``(n, P, Dv)``
2. Q-Former (+ SAM W-former): learned queries + instruction tokens, queries cross-attend to the patches
   → query outputs ``(n, Q, Dq)``
3. CMAA (``config.cmaa``, off by default): the instruction's states attended by the query outputs, appended to them
   → ``(n, Q + c, Dq)`` (``c = config.cmaa_tokens``)
4. language projection → ``(n, Q + c, Dl)``
5. LLM: each image's Q + c vectors replace its placeholder tokens in the prompt embeddings (for an encoder-decoder
   LLM such as Flan-T5 the prompt is the encoder's input and ``labels`` hold the answer alone).

Steps 1–4 see only the images and their Q-Former instruction, never the LLM prompt: a caller that feeds the same
images to several prompts (candidate ranking: one row per answer) runs them once with `get_image_features` and
passes the result to ``forward(image_features=...)``, which then does step 5 alone.

``n`` is the number of images in the whole batch; which sample an image belongs to follows from the placeholders
in ``input_ids`` (row-major order: sample 0's images first). SAM (paper §4, Eq. 1–6) runs as a second stream
through the *same* Q-Former layer modules, batched over every image of the batch — no Python loop over images or
samples; so does CMAA. Module names match ``InstructBlipForConditionalGeneration`` so its checkpoints load unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import (AutoModelForCausalLM, AutoModelForSeq2SeqLM, GenerationConfig, InstructBlipQFormerModel,
                          PreTrainedModel)
from transformers import initialization as init
from transformers.masking_utils import create_bidirectional_mask
from transformers.utils import ModelOutput

from mmlink.models.common import TrainableMixin, image_to_sample
from mmlink.models.qformer.configuration import MmlinkQFormerConfig
from mmlink.models.vision import build_vision_tower


@dataclass
class MmlinkQFormerOutput(ModelOutput):
    """loss (scalar), logits ``(B, T, V)``, query_output ``(n, Q, Dq)``, image_features ``(n, Q, Dl)``."""

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    query_output: torch.FloatTensor | None = None
    image_features: torch.FloatTensor | None = None
    language_model_outputs: ModelOutput | None = None


class ZeroInitLinear(nn.Linear):
    """A linear layer born at zero (weight and bias), so a new branch starts switched off. It draws no random
    numbers, so adding SAM leaves the random initialisation of every other module unchanged."""

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.bias)


class SamGuidance(nn.Module):
    """SAM's new layers, all zero-initialised so that SAM starts as the base model.

    * ``patch_scorer`` — Eq. 3, ``Linear(Dv, 1)`` scoring every patch (``bsg_adaptive`` only);
    * ``guide_proj`` — Eq. 5, ``Linear(Dq, Dq)`` on the Q-Former's layer-l input ``h_i``;
    * ``context_proj`` — Eq. 6, ``Linear(Dq, Dq)`` on the W-former's layer-k output;
    * ``linear_context`` — the +LIN ablation: ``Linear(Dv, Dq)`` on the averaged contextual features.
    Both guidance linears act on the whole sequence (queries and instruction tokens), as in the released code.
    """

    def __init__(self, config: MmlinkQFormerConfig):
        super().__init__()
        dv, dq = config.vision_config.hidden_size, config.qformer_config.hidden_size
        self.mode, self.pool = config.sam_mode, config.sam_context_pool
        if self.mode == "bsg_adaptive":
            self.patch_scorer = ZeroInitLinear(dv, 1)
        if self.mode in ("bsg_mean", "bsg_adaptive"):
            self.guide_proj = ZeroInitLinear(dq, dq)
            self.context_proj = ZeroInitLinear(dq, dq)
        if self.mode == "linear":
            self.linear_context = ZeroInitLinear(dv, dq)

    def context_features(self, feats: torch.Tensor, image_to_sample: torch.Tensor):
        """Merged contextual features of every image (Eq. 3–4).

        feats ``(n, P, Dv)``; image_to_sample ``(n,)`` sample index of each image.
        Returns merged ``(n, P, Dv)`` and has_context ``(n,)`` (False for an image with no contextual image).
        """
        n = feats.shape[0]
        allowed = image_to_sample[:, None] == image_to_sample[None, :]  # (n_i, n_m): same sample
        if self.pool == "others":
            allowed &= ~torch.eye(n, dtype=torch.bool, device=feats.device)
        has_context = allowed.any(dim=1)  # (n,)
        if self.mode == "bsg_adaptive":
            scores = self.patch_scorer(feats).squeeze(-1)  # (n_m, P)
            logits = scores.unsqueeze(0).expand(n, -1, -1)  # (n_i, n_m, P)
            # finfo.min instead of -inf: a row with no allowed image stays finite (then zeroed), never NaN.
            logits = logits.masked_fill(~allowed.unsqueeze(-1), torch.finfo(logits.dtype).min)
            weights = logits.softmax(dim=1) * allowed.unsqueeze(-1)  # softmax across images, per patch
        else:
            weights = allowed.unsqueeze(-1).to(feats.dtype)  # (n_i, n_m, 1)
            weights = weights / allowed.sum(dim=1).clamp(min=1).to(feats.dtype)[:, None, None]  # plain mean
        merged = torch.einsum("imp,mpd->ipd", weights.to(feats.dtype), feats)  # (n, P, Dv)
        return merged, has_context


def cross_modal_alignment(queries: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor, mode: str,
                          scale: bool = False) -> torch.Tensor:
    """VisLingInstruct's CMAA (Eq. 1, Algorithm 1): the tokens appended to each image's query outputs.

    queries ``(n, Q, D)`` = E_que, the query outputs; text ``(n, L, D)`` = E_text, the instruction's states;
    text_mask ``(n, L)``, 1 for a token, 0 for padding (never attended). ``mode``: ``per_query`` → ``(n, Q, D)``,
    ``U = softmax(E_que · E_textᵀ) · E_text`` — each query is the attention query, the text the keys and values;
    ``pooled`` → ``(n, 1, D)``, U averaged over the queries; ``released`` → ``(n, 2, D)``, the text [CLS] state and
    the mean of the text states (the variant in the authors' code). ``scale`` divides the scores by sqrt(D).
    """
    keep = text_mask.to(torch.bool)  # (n, L)
    if mode == "released":
        w = keep.to(text.dtype).unsqueeze(-1)  # (n, L, 1)
        mean = (text * w).sum(dim=1) / w.sum(dim=1).clamp(min=1)  # (n, D)
        return torch.stack([text[:, 0], mean], dim=1)  # (n, 2, D)
    scores = torch.einsum("nqd,nld->nql", queries.float(), text.float())  # (n, Q, L), in fp32: unscaled, they are large
    if scale:
        scores = scores / math.sqrt(queries.shape[-1])
    scores = scores.masked_fill(~keep.unsqueeze(1), torch.finfo(scores.dtype).min)
    aligned = torch.einsum("nql,nld->nqd", scores.softmax(dim=-1).to(text.dtype), text)  # (n, Q, D)
    return aligned.mean(dim=1, keepdim=True) if mode == "pooled" else aligned  # (n, 1, D) | (n, Q, D)


class MmlinkQFormerForConditionalGeneration(TrainableMixin, PreTrainedModel):
    """InstructBLIP-style multi-image MLLM; ``config.sam_mode`` selects base, +LIN, +BSG or full SAM, and
    ``config.cmaa`` adds VisLingInstruct's CMAA tokens."""

    config_class = MmlinkQFormerConfig
    config: MmlinkQFormerConfig
    main_input_name = "pixel_values"
    base_model_prefix = "mmlink"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_attention_backend = True
    _keep_in_fp32_modules = ["query_tokens"]
    _no_split_modules = ["InstructBlipQFormerLayer", "InstructBlipEncoderLayer", "LlamaDecoderLayer"]
    # Family-neutral names the training code uses: the projector's parameters, and where the LLM lives.
    projector_prefix = "language_projection."
    language_model_prefix = "language_model."
    lm_head_name = "language_model.lm_head"

    def __init__(self, config: MmlinkQFormerConfig):
        super().__init__(config)
        self.vision_model = build_vision_tower(config.vision_config, config.vision_feature_layer)
        self.query_tokens = nn.Parameter(torch.zeros(1, config.num_query_tokens, config.qformer_config.hidden_size))
        self.qformer = InstructBlipQFormerModel._from_config(config.qformer_config)
        self.sam = SamGuidance(config) if config.sam_mode != "none" else None
        self.language_projection = nn.Linear(config.qformer_config.hidden_size, config.text_config.hidden_size)
        if config.use_decoder_only_language_model:
            self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        else:  # InstructBLIP-FlanT5: the prompt (with images) is the encoder input, the answer is decoded
            self.language_model = AutoModelForSeq2SeqLM.from_config(config.text_config)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module):
        if isinstance(module, ZeroInitLinear):
            init.zeros_(module.weight)
            init.zeros_(module.bias)
            return
        super()._init_weights(module)
        if isinstance(module, MmlinkQFormerForConditionalGeneration):
            init.normal_(module.query_tokens, mean=0.0, std=self.config.initializer_range)

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    # ------------------------------------------------------------------ placeholders → images

    def image_to_sample(self, input_ids: torch.Tensor, num_images: int) -> torch.Tensor:
        """Sample index of every image ``(n,)``, from the placeholder runs in ``input_ids (B, T)``."""
        c = self.config
        return image_to_sample(input_ids, num_images, c.image_token_index, c.image_seq_length, c.max_images)

    # ------------------------------------------------------------------ steps 1–4

    def get_image_features(
        self,
        pixel_values: torch.Tensor,
        qformer_input_ids: torch.Tensor,
        qformer_attention_mask: torch.Tensor | None,
        image_to_sample: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """pixel_values ``(n, C, H, W)``, qformer ids/mask ``(n, L)`` → query output ``(n, Q, Dq)``, image features
        ``(n, Q + c, Dl)`` (``c`` CMAA tokens)."""
        # 1. Vision tower, all images of the batch in one call.
        image_embeds = self.vision_model.patch_features(pixel_values)  # (n, P, Dv)

        # 2. Q-Former: queries first, then the instruction (queries get no position embedding).
        n, q = image_embeds.shape[0], self.config.num_query_tokens
        query_tokens = self.query_tokens.expand(n, -1, -1)  # (n, Q, Dq)
        if qformer_attention_mask is None:
            qformer_attention_mask = torch.ones_like(qformer_input_ids)
        mask = torch.cat([qformer_attention_mask.new_ones(n, q), qformer_attention_mask], dim=1)  # (n, Q+L)
        embedded = self.qformer.embeddings(input_ids=qformer_input_ids, query_embeds=query_tokens)  # (n, Q+L, Dq)
        attn = create_bidirectional_mask(config=self.qformer.config, inputs_embeds=embedded, attention_mask=mask)
        hidden = self._qformer_layers(embedded, attn, image_embeds, image_to_sample)  # (n, Q+L, Dq)
        query_output = hidden[:, :q]  # (n, Q, Dq)

        # 3. CMAA: the instruction's states, weighted by their attention from the query outputs, appended to them.
        tokens = query_output
        if self.config.cmaa != "none":
            text = (hidden if self.config.cmaa_text == "output" else embedded)[:, q:]  # (n, L, Dq)
            aligned = cross_modal_alignment(query_output, text, qformer_attention_mask, self.config.cmaa,
                                            self.config.cmaa_scale)  # (n, c, Dq)
            tokens = torch.cat([query_output, aligned], dim=1)  # (n, Q + c, Dq)

        # 4. Projection into the LLM's embedding space.
        return query_output, self.language_projection(tokens)  # (n, Q + c, Dl)

    def _qformer_layers(self, hidden, attn, image_embeds, image_to_sample) -> torch.Tensor:
        """Run the Q-Former layers; with SAM, the W-former stream shares them (hidden ``(n, S, Dq)``)."""
        q = self.config.num_query_tokens
        layers = self.qformer.encoder.layer
        mode = self.config.sam_mode
        if mode == "none":
            for layer in layers:
                hidden = layer(hidden, attn, image_embeds, query_length=q)
            return hidden

        ctx_feats, has_context = self.sam.context_features(image_embeds, image_to_sample)  # (n, P, Dv), (n,)
        gate = has_context.to(hidden.dtype)[:, None, None]  # (n, 1, 1): no context → no guidance
        l0, k0 = self.config.guide_layer - 1, self.config.context_layer - 1  # 0-indexed l, k
        if mode == "linear":  # +LIN: one linear layer on the averaged contextual features, added at layer k
            context = gate * self.sam.linear_context(ctx_feats.mean(dim=1))[:, None]  # (n, 1, Dq), broadcast over S
            for i, layer in enumerate(layers):
                hidden = layer(hidden + context if i == k0 else hidden, attn, image_embeds, query_length=q)
            return hidden

        n = hidden.shape[0]
        both_attn = None if attn is None else torch.cat([attn, attn])  # (2n, 1, S, S)
        both_embeds = torch.cat([image_embeds, ctx_feats])  # (2n, P, Dv)
        w = hidden  # the W-former starts from the same embedding output
        for i, layer in enumerate(layers):
            if i == l0:  # Eq. 1 + 5: w^l += Linear(h_i), h_i = q^l
                w = w + self.sam.guide_proj(hidden)
            if i < k0:  # before layer k the streams are independent: one batched call for both
                both = layer(torch.cat([hidden, w]), both_attn, both_embeds, query_length=q)  # (2n, S, Dq)
                hidden, w = both[:n], both[n:]
                continue
            if i == k0:  # Eq. 6 + 2: c_i = Linear(w^{k+1}); q^k += c_i
                w = layer(w, attn, ctx_feats, query_length=q)
                hidden = hidden + gate * self.sam.context_proj(w)
            hidden = layer(hidden, attn, image_embeds, query_length=q)
        return hidden

    def prompt_image_features(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Steps 1–4 for a processor batch → image features ``(n, Q + c, Dl)`` (what ``forward(image_features=...)``
        takes) and each image's sample index ``(n,)``. The same call exists in every family."""
        image_to_sample = self.image_to_sample(batch["input_ids"], batch["pixel_values"].shape[0])  # (n,)
        _, features = self.get_image_features(
            batch["pixel_values"].to(self.dtype),
            batch["qformer_input_ids"],
            batch.get("qformer_attention_mask"),
            image_to_sample,
        )
        return features, image_to_sample

    # ------------------------------------------------------------------ step 5

    def _merge_inputs(
        self, pixel_values, qformer_input_ids, qformer_attention_mask, input_ids, attention_mask, image_features=None
    ):
        """Steps 1–5's input: prompt embeddings ``(B, T, Dl)`` with every image's features at its placeholders.

        With ``image_features`` ``(n, Q + c, Dl)`` (already projected, as `get_image_features` returns them) steps
        1–4 are skipped and the returned query output is None."""
        if (pixel_values is None) == (image_features is None):
            raise ValueError("pass exactly one of pixel_values and image_features")
        if input_ids is None:
            raise ValueError("input_ids is required")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        num_images = (pixel_values if image_features is None else image_features).shape[0]
        if num_images == 0:
            self.image_to_sample(input_ids, 0)  # a text-only batch must hold no placeholder either
            return self.text_only_embeddings(input_ids), attention_mask, None, None
        if image_features is None:
            if qformer_input_ids is None:
                raise ValueError("qformer_input_ids is required with pixel_values")
            image_to_sample = self.image_to_sample(input_ids, pixel_values.shape[0])
            query_output, image_features = self.get_image_features(
                pixel_values, qformer_input_ids, qformer_attention_mask, image_to_sample
            )
        else:
            # masked_scatter below only checks the element count: a wrong Q or Dl would shift every image silently.
            want = (self.config.image_seq_length, self.config.text_config.hidden_size)
            if image_features.dim() != 3 or tuple(image_features.shape[1:]) != want:
                raise ValueError(f"image_features must be (n, {want[0]}, {want[1]}), got {tuple(image_features.shape)}")
            self.image_to_sample(input_ids, image_features.shape[0])  # the placeholders must match the n images
            query_output = None
        is_image = input_ids == self.config.image_token_index  # (B, T)
        # Placeholder ids may lie outside the LLM vocabulary; their embeddings are overwritten anyway.
        inputs_embeds = self.get_input_embeddings()(input_ids.masked_fill(is_image, 0))  # (B, T, Dl)
        image_features = image_features.to(inputs_embeds.dtype)
        inputs_embeds = inputs_embeds.masked_scatter(is_image.unsqueeze(-1), image_features)
        return inputs_embeds, attention_mask, query_output, image_features

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        qformer_input_ids: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        qformer_attention_mask: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        image_features: torch.Tensor | None = None,
        **kwargs,
    ) -> MmlinkQFormerOutput:
        """pixel_values ``(n, C, H, W)``; qformer_input_ids/mask ``(n, L)``; input_ids/attention_mask ``(B, T)``
        with ``config.image_seq_length`` placeholders per image (Q, plus CMAA's tokens); labels -100 where ignored — ``(B, T)`` for a decoder-only
        LLM, the answer ``(B, T_ans)`` for an encoder-decoder one (which also takes ``decoder_*`` inputs).

        Instead of pixel_values and qformer_*, ``image_features`` ``(n, Q + c, Dl)`` from `get_image_features` may
        be given (exactly one of the two): steps 1–4 are skipped, so images shared by several rows run once, and the
        output's ``query_output`` is None."""
        inputs_embeds, attention_mask, query_output, image_features = self._merge_inputs(
            pixel_values, qformer_input_ids, qformer_attention_mask, input_ids, attention_mask, image_features
        )
        if not self.config.use_decoder_only_language_model:
            kwargs.update(decoder_input_ids=decoder_input_ids, decoder_attention_mask=decoder_attention_mask)
        out = self.language_model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, labels=labels, **kwargs)
        return MmlinkQFormerOutput(
            loss=out.loss,
            logits=out.logits,
            query_output=query_output,
            image_features=image_features,
            language_model_outputs=out,
        )

    @torch.no_grad()
    def generate(
        self,
        pixel_values: torch.Tensor,
        qformer_input_ids: torch.Tensor,
        input_ids: torch.Tensor,
        qformer_attention_mask: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        generation_config: GenerationConfig | None = None,
        fast_greedy: bool = True,
        **generate_kwargs,
    ) -> torch.LongTensor:
        """Decode the answer (KV cache; greedy, beam or sampling per ``generation_config`` and ``generate_kwargs``, as
        transformers' ``generate`` takes them: the kwargs over the config, the LLM's own config for what both leave).

        Greedy decoding of a Llama-family LLM runs mmlink's static-cache loop (`mmlink.models.decoding`),
        token-identical to ``generate`` and faster; everything else (and ``fast_greedy=False``) goes through the
        LLM's own ``generate``. Prompts must be left-padded. Returns only the new tokens
        ``(B * num_return_sequences, T_new)``.
        """
        from mmlink.models.decoding import greedy_decode, greedy_plan

        inputs_embeds, attention_mask, _, _ = self._merge_inputs(
            pixel_values, qformer_input_ids, qformer_attention_mask, input_ids, attention_mask
        )
        plan = greedy_plan(self.language_model, generate_kwargs, generation_config) if fast_greedy else None
        if plan is not None:
            return greedy_decode(self.language_model, inputs_embeds, attention_mask, plan)
        return self.language_model.generate(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, generation_config=generation_config,
            **generate_kwargs,
        )

    # ------------------------------------------------------------------ training helpers

    def set_trainable(self, prefixes: tuple[str, ...] = ("sam.", "language_projection.")) -> tuple[int, int]:
        """Train only parameters whose name starts with one of ``prefixes`` (SAM §4.4 default: the new linears and
        the projection). Returns (trainable, total) parameter counts."""
        return super().set_trainable(prefixes)


__all__ = ["MmlinkQFormerForConditionalGeneration", "MmlinkQFormerOutput", "SamGuidance", "cross_modal_alignment"]
