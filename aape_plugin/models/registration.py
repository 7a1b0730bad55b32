"""Registers the ``aape`` and ``aape_encoder`` model families with fairseq2."""

from __future__ import annotations

from fairseq2.composition import register_model_family
from fairseq2.runtime.dependency import DependencyContainer

from aape_plugin.models.archs import register_aape_archs
from aape_plugin.models.config import AAPE_ENCODER_FAMILY, AAPE_FAMILY, AapeConfig
from aape_plugin.models.encoder_model import AapeEncoderModel, convert_aape_state_dict
from aape_plugin.models.factory import create_aape_encoder, create_aape_model
from aape_plugin.models.parallelism import apply_ac_to_aape, apply_fsdp_to_aape, compile_aape
from aape_plugin.models.ssl_model import AapeSslModel


def register_aape_models(container: DependencyContainer) -> None:
    # Checkpoints load through the plugin's loader (state files or .safetensors; nothing is unpickled).
    register_model_family(
        container,
        AAPE_FAMILY,
        kls=AapeSslModel,
        config_kls=AapeConfig,
        factory=create_aape_model,
        compiler=compile_aape,
        fsdp_applier=apply_fsdp_to_aape,
        layerwise_ac_applier=apply_ac_to_aape,
    )

    # The same config class, hence the same archs, for the encoder-only view.
    register_model_family(
        container,
        AAPE_ENCODER_FAMILY,
        kls=AapeEncoderModel,
        config_kls=AapeConfig,
        factory=create_aape_encoder,
        state_dict_converter=convert_aape_state_dict,
        compiler=compile_aape,
        fsdp_applier=apply_fsdp_to_aape,
        layerwise_ac_applier=apply_ac_to_aape,
    )

    register_aape_archs(container)
