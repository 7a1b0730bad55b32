"""The encoder alone (family ``aape_encoder``), loadable from an ``aape`` SSL checkpoint."""

from __future__ import annotations

import re

from torch import Tensor
from torch.nn import Module

from aape_plugin.models.config import AapeConfig
from aape_plugin.nn.audio_encoder import AudioEncoder, EncoderOutput


class AapeEncoderModel(Module):
    """A trained AaPE (or plain-stem) encoder for downstream use: no teacher, no predictor."""

    def __init__(self, config: AapeConfig, encoder: AudioEncoder) -> None:
        super().__init__()

        self.config = config

        self.encoder = encoder

    def forward(self, x: Tensor) -> EncoderOutput:
        """:param x: normalised log-mel ``(B, 1, F, T)``, ``T`` a multiple of the patch size."""
        return self.encoder(x)


_SSL_PREFIX = re.compile(r"^(student|teacher)\.")


def convert_aape_state_dict(state_dict: dict[str, object], config: AapeConfig) -> dict[str, object]:
    """Keeps the encoder of an ``aape`` checkpoint (teacher or student, per
    ``config.downstream_encoder``) and renames it to ``encoder.*``.

    A state dict that already is encoder-only (keys ``encoder.*``) passes through, so the same
    family loads both kinds of checkpoint.
    """
    if any(k.startswith("encoder.") for k in state_dict):
        return state_dict

    prefix = f"{config.downstream_encoder}."

    converted = {f"encoder.{k[len(prefix):]}": v for k, v in state_dict.items() if k.startswith(prefix)}

    if not converted:
        raise ValueError(
            f"The checkpoint has no `{prefix}*` (nor `encoder.*`) parameters; it is not an "
            f"AaPE checkpoint. First keys: {sorted(state_dict)[:5]}."
        )

    return converted
