"""The ``aape_classifier`` family: an AaPE (or plain-stem) encoder with a classification head,
for fine-tuning. Its archs are the ``aape`` archs (the same encoders)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

import torch
import torch.nn.functional as F
from fairseq2.composition import register_model_family
from fairseq2.runtime.config_registry import ConfigRegistrar
from fairseq2.runtime.dependency import DependencyContainer
from torch import Tensor
from torch.nn import BatchNorm1d, Dropout, Linear, Module, Sequential

from aape_plugin.models.archs import ARCHS
from aape_plugin.models.config import EncoderConfig
from aape_plugin.models.factory import create_encoder
from aape_plugin.nn.audio_encoder import AudioEncoder

AAPE_CLASSIFIER_FAMILY: Final = "aape_classifier"


@dataclass(kw_only=True)
class AapeClassifierConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    """The encoder (as in the ``aape`` family, so pre-trained weights fit)."""

    num_classes: int = 527
    """Output classes (the recipe sets it from the task)."""

    pooling: Literal["frames", "cls"] = "frames"
    """``frames``: per time patch the frequency tokens concatenated, averaged over time (as the
    probe); ``cls``: the CLS token."""

    dropout_p: float = 0.0
    """Dropout before the head."""


class AudioClassifier(Module):
    """Encoder -> pooled embedding -> BatchNorm (no affine) -> Linear, as EVAR fine-tunes."""

    def __init__(self, config: AapeClassifierConfig, encoder: AudioEncoder) -> None:
        super().__init__()
        self.config = config
        self.encoder = encoder
        subbands = config.encoder.num_mel_bins // config.encoder.patch_size
        dim = encoder.dim * (subbands if config.pooling == "frames" else 1)
        self.head = Sequential(BatchNorm1d(dim, affine=False), Dropout(config.dropout_p), Linear(dim, config.num_classes))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        linear = self.head[2]
        torch.nn.init.normal_(linear.weight, std=0.01)
        torch.nn.init.zeros_(linear.bias)

    def embed(self, x: Tensor) -> Tensor:
        # Any length: pad the time axis to whole patches with zeros (the normalised mean);
        # the fixed 2-D positions extend to longer inputs than pre-training used.
        p = self.config.encoder.patch_size
        x = F.pad(x, (0, (-x.size(-1)) % p))
        out = self.encoder(x)
        if self.config.pooling == "cls":
            assert out.cls is not None
            return out.cls
        s, t = out.grid
        frames = out.patches.view(x.size(0), s, t, -1).permute(0, 2, 1, 3).reshape(x.size(0), t, -1)
        return frames.mean(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """:param x: normalised log-mel ``(B, 1, F, T)``. :returns: logits ``(B, num_classes)``."""
        return self.head(self.embed(x))


def create_aape_classifier(config: AapeClassifierConfig) -> AudioClassifier:
    return AudioClassifier(config, create_encoder(config.encoder))


def apply_fsdp_to_classifier(model: Module, granularity: str, wrapper: object) -> Module:
    from fairseq2.models.utils.fsdp import apply_layerwise_fsdp

    assert isinstance(model, AudioClassifier)
    if granularity == "layer":
        apply_layerwise_fsdp(model.encoder.blocks.blocks, wrapper)  # type: ignore[arg-type]
        return model
    model.encoder.register_module("blocks", wrapper(model.encoder.blocks))  # type: ignore[operator]
    return model


def apply_ac_to_classifier(model: Module, every_nth_layer: int) -> Module:
    from fairseq2.models.utils.ac import apply_layerwise_ac

    assert isinstance(model, AudioClassifier)
    apply_layerwise_ac(model.encoder.blocks.blocks, every_nth_layer)
    return model


def register_aape_classifier(container: DependencyContainer) -> None:
    register_model_family(
        container,
        AAPE_CLASSIFIER_FAMILY,
        kls=AudioClassifier,
        config_kls=AapeClassifierConfig,
        factory=create_aape_classifier,
        fsdp_applier=apply_fsdp_to_classifier,  # type: ignore[arg-type]
        layerwise_ac_applier=apply_ac_to_classifier,
    )

    arch = ConfigRegistrar(container, AapeClassifierConfig)
    for name, make in ARCHS.items():
        arch(name)(lambda make=make: AapeClassifierConfig(encoder=make().encoder))
