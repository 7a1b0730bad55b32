"""Named architectures of the ``aape`` family (shared by ``aape_encoder``).

``aape_*`` use the AaPE stem, ``vit_*`` the plain conv stem with everything else identical,
so every result can be shown against the ablation without AaPE.
"""

from __future__ import annotations

from collections.abc import Callable

from fairseq2.runtime.config_registry import ConfigRegistrar
from fairseq2.runtime.dependency import DependencyContainer

from aape_plugin.models.config import AapeConfig


def aape_config() -> AapeConfig:
    """The paper's method: the AaPE stem and the paper's objective (masked-token, CLS and multi-mask
    contrastive terms). What this project adds (the alias-feature target, a frozen Lambda
    Encoder) is a named option, turned on by the ``study`` and ``demo`` presets at the scale where
    it was measured (``docs/design.md``, "Defaults and the project's options")."""
    return AapeConfig()


def aape_base() -> AapeConfig:
    """ViT-B (768 / 12 layers / 12 heads) on 80 x 608 log-mel: the paper's scale."""
    return aape_config()


def aape_small() -> AapeConfig:
    """ViT-S (384 / 12 layers / 6 heads)."""
    config = aape_config()
    config.encoder.model_dim = 384
    config.encoder.num_heads = 6
    config.predictor.dim = 256
    config.predictor.num_heads = 4
    return config


def aape_tiny() -> AapeConfig:
    """CPU-sized (128 / 4 layers / 4 heads) on 80 x 96 log-mel (about 1 s): tests and demo."""
    config = aape_config()
    encoder = config.encoder
    encoder.num_frames = 96
    encoder.model_dim = 128
    encoder.num_layers = 4
    encoder.num_heads = 4
    encoder.stem.alias_dim = 32
    encoder.stem.lambda_dim = 32
    encoder.stem.lambda_depth = 1
    encoder.stem.lambda_num_heads = 2
    config.masking.num_clones = 4
    config.predictor.dim = 64
    config.predictor.num_layers = 2
    config.predictor.num_heads = 4
    config.targets.num_layers = 2
    config.contrastive_dim = 64
    return config


def plain(make: Callable[[], AapeConfig]) -> Callable[[], AapeConfig]:
    """The same architecture with the standard conv stem."""

    def make_plain() -> AapeConfig:
        config = make()
        config.encoder.stem.kind = "plain"
        return config

    make_plain.__doc__ = f"{make.__doc__} Plain conv stem (no AaPE)."

    return make_plain


ARCHS: dict[str, Callable[[], AapeConfig]] = {
    "aape_base": aape_base,
    "aape_small": aape_small,
    "aape_tiny": aape_tiny,
    "vit_base": plain(aape_base),
    "vit_small": plain(aape_small),
    "vit_tiny": plain(aape_tiny),
}


def register_aape_archs(container: DependencyContainer) -> None:
    arch = ConfigRegistrar(container, AapeConfig)

    for name, make in ARCHS.items():
        arch(name)(make)
