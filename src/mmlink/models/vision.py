"""Pluggable vision encoders behind one small interface.

Every tower is an ``nn.Module`` with

* ``hidden_size`` — the feature width ``Dv``;
* ``patch_features(pixel_values) -> (n, P, Dv)`` — one row of patch features per image.

Towers are looked up by the ``model_type`` of the composite config's ``vision_config``, so a checkpoint's config
alone says which encoder to build. The InstructBLIP ViT keeps the exact module layout of
``InstructBlipVisionModel`` so that ``vision_model.*`` weights of an InstructBLIP checkpoint load unchanged.
"""

from __future__ import annotations

from typing import Callable

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    CLIPVisionConfig,
    CLIPVisionModel,
    InstructBlipVisionConfig,
    InstructBlipVisionModel,
    PreTrainedConfig,
    PreTrainedModel,
    SiglipVisionConfig,
    SiglipVisionModel,
)
from transformers.modeling_outputs import BaseModelOutput

from mmlink.registry import Registry

VISION_TOWERS: Registry[Callable[[PreTrainedConfig, int], nn.Module]] = Registry("vision tower")


class InstructBlipVisionTower(InstructBlipVisionModel):
    """EVA-style ViT of InstructBLIP: all tokens (CLS included) of the post-layernormed last layer."""

    def patch_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self(pixel_values=pixel_values).last_hidden_state  # (n, 1 + P, Dv)


class _HFVisionTowerMixin:
    feature_layer: int = -1

    def patch_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.feature_layer == -1:
            return self(pixel_values=pixel_values).last_hidden_state  # (n, P', Dv)
        out = self(pixel_values=pixel_values, output_hidden_states=True)
        return out.hidden_states[self.feature_layer]  # (n, P', Dv)


class ClipVisionTower(_HFVisionTowerMixin, CLIPVisionModel):
    """CLIP ViT; ``feature_layer=-2`` gives LLaVA's penultimate-layer features."""


class SiglipVisionTower(_HFVisionTowerMixin, SiglipVisionModel):
    """SigLIP ViT (no CLS token)."""


@VISION_TOWERS.register("instructblip_vision_model")
def _build_instructblip_vit(config: PreTrainedConfig, feature_layer: int) -> nn.Module:
    if feature_layer != -1:
        raise ValueError("vision_feature_layer must be -1 for the InstructBLIP ViT (its features are post-layernorm)")
    tower = InstructBlipVisionTower(config)
    tower.hidden_size = config.hidden_size
    return tower


@VISION_TOWERS.register("clip_vision_model")
def _build_clip(config: PreTrainedConfig, feature_layer: int) -> nn.Module:
    tower = ClipVisionTower(config)
    tower.feature_layer, tower.hidden_size = feature_layer, config.hidden_size
    return tower


@VISION_TOWERS.register("siglip_vision_model")
def _build_siglip(config: PreTrainedConfig, feature_layer: int) -> nn.Module:
    tower = SiglipVisionTower(config)
    tower.feature_layer, tower.hidden_size = feature_layer, config.hidden_size
    return tower


# --------------------------------------------------------------------------- EfficientNet-Lite0


EFFICIENTNET_LITE_WIDTH = 1280  # channels of the final map, the same for Lite0-4


@strict
class EfficientNetLiteVisionConfig(PreTrainedConfig):
    """EfficientNet-Lite from ``efficientnet-lite-pytorch``; ``extract_features`` gives ``(n, 1280, 7, 7)`` at 224 px.

    Lite models were trained on inputs scaled as ``(x * 255 - 127) / 128``, hence the mean/std below.

    ``color_bins`` > 0 appends to every patch a histogram of its pixels' colours (``color_bins`` levels per RGB
    channel, so ``color_bins**3`` fractions that sum to 1): ImageNet features keep an object's type and the scene's
    place but discard much of its colour (a linear probe on the world reads a lone object's colour from them about
    half the time; ``scripts/probe_vision.py``). ``hidden_size`` is derived: 1280 + ``color_bins**3``.
    """

    model_type = "mmlink_efficientnet_lite"
    base_config_key = "vision_config"
    variant: str = "efficientnet-lite0"
    image_size: int = 224
    hidden_size: int = 1280
    color_bins: int = 0
    image_mean: list[float] | tuple[float, ...] = (127 / 255,) * 3
    image_std: list[float] | tuple[float, ...] = (128 / 255,) * 3

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if not self.variant.startswith("efficientnet-lite"):
            raise ValueError(f"vision_config.variant must name an EfficientNet-Lite model, got {self.variant!r}")
        if isinstance(self.color_bins, bool) or not isinstance(self.color_bins, int) or not 0 <= self.color_bins <= 8:
            raise ValueError(f"vision_config.color_bins must be an integer in [0, 8], got {self.color_bins!r}")
        self.hidden_size = EFFICIENTNET_LITE_WIDTH + self.color_bins**3




class EfficientNetLiteTower(PreTrainedModel):
    """Final convolutional feature map of an EfficientNet-Lite, flattened to patch tokens.

    A ``PreTrainedModel`` registered with ``AutoModel``, so that transformers' LLaVA builds it as its vision tower
    (``AutoModel.from_config(config.vision_config)``) and reads ``hidden_states[-1]`` from its output."""

    config_class = EfficientNetLiteVisionConfig
    config: EfficientNetLiteVisionConfig
    main_input_name = "pixel_values"
    base_model_prefix = "net"
    input_modalities = ("image",)

    def __init__(self, config: EfficientNetLiteVisionConfig):
        super().__init__(config)
        from efficientnet_lite_pytorch import EfficientNet

        self.net = EfficientNet.from_name(config.variant, image_size=config.image_size)
        self.net._fc = nn.Identity()  # the ImageNet classifier is never used
        self.hidden_size = config.hidden_size
        self.color_bins = config.color_bins
        # Plain floats, not buffers: from_pretrained allocates a model's tensors empty and fills only those in the
        # checkpoint, so a non-persistent buffer would hold whatever memory it got (the colours came out garbage).
        self.image_mean, self.image_std = tuple(config.image_mean), tuple(config.image_std)
        self.post_init()

    def _init_weights(self, module) -> None:
        """The ImageNet network initialises itself when built; its weights then come from a checkpoint."""

    def forward(self, pixel_values: torch.Tensor, **kwargs) -> BaseModelOutput:
        """``last_hidden_state`` = ``hidden_states[-1]`` = the patch features ``(n, P, Dv)``: one "layer", as LLaVA's
        ``vision_feature_layer=-1`` with ``vision_feature_select_strategy="full"`` expects."""
        feats = self.patch_features(pixel_values)  # (n, P, Dv)
        return BaseModelOutput(last_hidden_state=feats, hidden_states=(feats,))

    def patch_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        fmap = self.net.extract_features(pixel_values)  # (n, 1280, h, w)
        if self.color_bins:
            # sqrt(bins**3) puts a one-colour cell at unit RMS over its bins, the CNN channels' scale (RMS 0.87 on
            # world images): raw fractions (RMS 1/8 at 4 bins) would start near-invisible to the cross-attention
            hist = self.color_histograms(pixel_values, fmap.shape[-2:]) * self.color_bins**1.5
            fmap = torch.cat([fmap, hist.to(fmap.dtype)], dim=1)
        return fmap.flatten(2).transpose(1, 2)  # (n, h*w, Dv)

    def color_histograms(self, pixel_values: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Per grid cell, the fraction of its pixels in each of ``color_bins**3`` RGB bins: (n, bins**3, h, w).

        Pixel (y, x) belongs to cell (y * h // H, x * w // W) — adaptive average pooling's cells when h divides H.
        One ``bincount`` over (image, cell, bin) keys: a one-hot tensor would be ``bins**3`` times the image.
        """
        b, (h, w) = self.color_bins, grid
        n, _, height, width = pixel_values.shape
        mean = torch.tensor(self.image_mean, device=pixel_values.device).view(1, 3, 1, 1)
        std = torch.tensor(self.image_std, device=pixel_values.device).view(1, 3, 1, 1)
        rgb = (pixel_values.float() * std + mean).clamp(0, 1)  # (n, 3, H, W) in [0, 1]
        level = (rgb * b).long().clamp(max=b - 1)  # (n, 3, H, W)
        color = (level[:, 0] * b + level[:, 1]) * b + level[:, 2]  # (n, H, W)
        rows = torch.arange(height, device=color.device) * h // height
        cols = torch.arange(width, device=color.device) * w // width
        cell = rows[:, None] * w + cols[None, :]  # (H, W)
        image = torch.arange(n, device=color.device)[:, None, None]
        keys = (image * (h * w) + cell) * b**3 + color  # (n, H, W)
        counts = torch.bincount(keys.flatten(), minlength=n * h * w * b**3).view(n, h * w, b**3).float()
        fractions = counts / counts.sum(-1, keepdim=True)  # (n, h*w, bins**3)
        return fractions.transpose(1, 2).reshape(n, b**3, h, w)  # (n, bins**3, h, w)


AutoConfig.register(EfficientNetLiteVisionConfig.model_type, EfficientNetLiteVisionConfig)
AutoModel.register(EfficientNetLiteVisionConfig, EfficientNetLiteTower)


@VISION_TOWERS.register(EfficientNetLiteVisionConfig.model_type)
def _build_efficientnet_lite(config: PreTrainedConfig, feature_layer: int) -> nn.Module:
    if feature_layer != -1:
        raise ValueError("vision_feature_layer must be -1 for EfficientNet-Lite (only the final map is exposed)")
    return EfficientNetLiteTower(config)


def build_vision_tower(config: PreTrainedConfig, feature_layer: int = -1) -> nn.Module:
    """Build the tower registered for ``config.model_type``."""
    return VISION_TOWERS.get(config.model_type)(config, feature_layer)


def image_normalization(config: PreTrainedConfig) -> tuple[list[float], list[float]]:
    """Mean/std the tower was trained with (OpenAI CLIP statistics for the ViTs, as InstructBLIP uses)."""
    if isinstance(config, EfficientNetLiteVisionConfig):
        return list(config.image_mean), list(config.image_std)
    if isinstance(config, SiglipVisionConfig):
        return [0.5] * 3, [0.5] * 3
    return [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]


def image_size(config: PreTrainedConfig) -> int:
    size = config.image_size
    return size if isinstance(size, int) else int(size[0])


__all__ = [
    "VISION_TOWERS",
    "ClipVisionTower",
    "EfficientNetLiteTower",
    "EfficientNetLiteVisionConfig",
    "InstructBlipVisionConfig",
    "InstructBlipVisionTower",
    "CLIPVisionConfig",
    "SiglipVisionTower",
    "build_vision_tower",
    "image_normalization",
    "image_size",
]
