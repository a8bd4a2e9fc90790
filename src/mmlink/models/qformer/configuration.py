"""Composite config of the Q-Former family: vision tower + Q-Former (+ SAM's W-former, + CMAA) + LLM.

The layout mirrors ``InstructBlipConfig`` (nested ``vision_config`` / ``qformer_config`` / ``text_config``,
``num_query_tokens``, ``image_token_index``) so that an InstructBLIP checkpoint's config converts losslessly, and
adds SAM's settings (SAM §4) and VisLingInstruct's CMAA (VisLingInstruct §3.1).
"""

# No `from __future__ import annotations`: @strict validates field types from the real annotations.
from typing import Literal

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, InstructBlipConfig, InstructBlipQFormerConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
)

from mmlink.models import SAM_MODES, SamMode

ContextPool = Literal["others", "all"]
CmaaMode = Literal["none", "per_query", "pooled", "released"]
CmaaText = Literal["output", "embedding"]
CONTEXT_POOLS: tuple[str, ...] = ContextPool.__args__
CMAA_MODES: tuple[str, ...] = CmaaMode.__args__
CMAA_TEXTS: tuple[str, ...] = CmaaText.__args__


@strict
class MmlinkQFormerConfig(PreTrainedConfig):
    r"""
    vision_config / qformer_config / text_config: nested configs of the vision tower (any registered in
        `mmlink.models.vision`), the Q-Former (`InstructBlipQFormerConfig`) and the LLM (a causal LM, or an encoder-decoder such as
        Flan-T5 as in InstructBLIP-FlanT5).
    num_query_tokens: learned queries per image (InstructBLIP: 32); each image fills this many placeholders.
    image_token_index: LLM token id of the image placeholder.
    max_images: most images one sample may hold (processor and forward refuse more).
    qformer_max_length: instruction tokens given to the Q-Former (LAVIS: 128).
    vision_feature_layer: hidden layer of CLIP/SigLIP towers to use (-1 last, -2 LLaVA's choice).
    sam_mode: ``none`` (base InstructBLIP), ``linear`` (+LIN: one linear on averaged contextual features),
        ``bsg_mean`` (+BSG: W-former on averaged contextual features), ``bsg_adaptive`` (full SAM, default).
    sam_context_pool: which images form the context of image i: ``others`` (m != i, the paper's Eq. 4, default)
        or ``all`` (the current image included, as in the authors' released code).
    sam_guide_layer: l of Eq. 1/5, 1-indexed Q-Former layer whose input ``h_i`` guides the W-former
        (default: last layer).
    sam_context_layer: k of Eq. 2/6, 1-indexed layer after which the W-former's output becomes ``c_i`` and is
        added to the Q-Former's layer-k input (default: last layer). Requires ``l <= k``.
    cmaa: VisLingInstruct's Cross-Modal Alignment Attention, tokens appended to each image's query outputs before
        the language projection: ``none`` (default: the model unchanged); ``per_query`` — Eq. 1 as written,
        ``U = softmax(E_que · E_textᵀ) · E_text``, one aligned text vector per query (Q more tokens per image);
        ``pooled`` — U averaged over the queries (one token), the reading of Eq. 1's sum as a pooling;
        ``released`` — the variant commented out in the authors' code: the text [CLS] state and the mean of the text
        states (two tokens). Parameter-free: only the projection (and SAM) train around it.
    cmaa_text: E_text, the instruction's states in the Q-Former: ``output`` (its last layer, as the released
        variant uses; default) or ``embedding`` (its input embeddings, "the embedding of the textual instruction").
    cmaa_scale: divide E_que · E_textᵀ by sqrt(Dq) as in scaled dot-product attention; Eq. 1 does not (default off).
    """

    model_type = "mmlink_qformer"
    attribute_map = {"image_token_id": "image_token_index"}
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(config_class=AutoConfig, model_type="instructblip_vision_model"),
        "qformer_config": InstructBlipQFormerConfig,
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
    }

    vision_config: dict | PreTrainedConfig | None = None
    qformer_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    num_query_tokens: int = 32
    image_token_index: int = 0
    max_images: int = 8
    qformer_max_length: int = 128
    vision_feature_layer: int = -1
    sam_mode: SamMode = "bsg_adaptive"
    sam_context_pool: ContextPool = "others"
    sam_guide_layer: int | None = None
    sam_context_layer: int | None = None
    cmaa: CmaaMode = "none"
    cmaa_text: CmaaText = "output"
    cmaa_scale: bool = False
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        # The Q-Former cross-attends to the tower's features, whatever the tower.
        self.qformer_config.encoder_hidden_size = self.vision_config.hidden_size
        text_type = self.text_config.model_type
        self.use_decoder_only_language_model = text_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        if not self.use_decoder_only_language_model and text_type not in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES:
            raise ValueError(f"text_config.model_type={text_type!r} is neither a causal nor a seq2seq LM")
        n_layers = self.qformer_config.num_hidden_layers
        l, k = self.guide_layer, self.context_layer
        if not 1 <= l <= n_layers or not 1 <= k <= n_layers:
            raise ValueError(f"sam_guide_layer={l} and sam_context_layer={k} must lie in 1..{n_layers}")
        if k < l:
            raise ValueError(f"sam_context_layer (k={k}) must not precede sam_guide_layer (l={l}), as in SAM §4.2")
        for name in ("num_query_tokens", "max_images", "qformer_max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def cmaa_tokens(self) -> int:
        """Tokens CMAA appends to each image's query outputs."""
        return {"none": 0, "per_query": self.num_query_tokens, "pooled": 1, "released": 2}[self.cmaa]

    @property
    def image_seq_length(self) -> int:
        """LLM placeholders per image: the query outputs plus CMAA's tokens."""
        return self.num_query_tokens + self.cmaa_tokens

    @property
    def guide_layer(self) -> int:
        """l (1-indexed); defaults to the last Q-Former layer as in SAM §4.4."""
        return self.qformer_config.num_hidden_layers if self.sam_guide_layer is None else self.sam_guide_layer

    @property
    def context_layer(self) -> int:
        """k (1-indexed); defaults to the last Q-Former layer as in SAM §4.4."""
        return self.qformer_config.num_hidden_layers if self.sam_context_layer is None else self.sam_context_layer

    @classmethod
    def from_instructblip(cls, config: InstructBlipConfig, **overrides) -> "MmlinkQFormerConfig":
        """Convert an ``InstructBlipConfig`` (SAM settings from ``overrides``, default full SAM)."""
        if config.image_token_index is None:
            raise ValueError("the InstructBLIP config has no image_token_index; re-save it with a recent transformers")
        return cls(
            vision_config=config.vision_config.to_dict(),
            qformer_config=config.qformer_config.to_dict(),
            text_config=config.text_config.to_dict(),
            num_query_tokens=config.num_query_tokens,
            image_token_index=config.image_token_index,
            initializer_range=config.initializer_range,
            **overrides,
        )


AutoConfig.register(MmlinkQFormerConfig.model_type, MmlinkQFormerConfig)

__all__ = ["CMAA_MODES", "CMAA_TEXTS", "CONTEXT_POOLS", "CmaaMode", "CmaaText", "ContextPool", "MmlinkQFormerConfig",
           "SAM_MODES", "SamMode"]
