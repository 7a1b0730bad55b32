"""Typed access to the AaPE model families, for Python users and tests.

>>> from aape_plugin.models.hub import get_aape_hub
>>> config = get_aape_hub().get_arch_config("aape_tiny")
>>> model = get_aape_hub().create_new_model(config)
"""

from __future__ import annotations

from fairseq2.models import ModelHubAccessor

from aape_plugin.models.config import AAPE_ENCODER_FAMILY, AAPE_FAMILY, AapeConfig
from aape_plugin.models.encoder_model import AapeEncoderModel
from aape_plugin.models.ssl_model import AapeSslModel

get_aape_hub = ModelHubAccessor(AAPE_FAMILY, AapeSslModel, AapeConfig)

get_aape_encoder_hub = ModelHubAccessor(AAPE_ENCODER_FAMILY, AapeEncoderModel, AapeConfig)


def get_classifier_hub():  # noqa: ANN201 - the accessor's generic type
    """The ``aape_classifier`` family (fine-tuning)."""
    from aape_plugin.models.classifier import AAPE_CLASSIFIER_FAMILY, AapeClassifierConfig, AudioClassifier

    return ModelHubAccessor(AAPE_CLASSIFIER_FAMILY, AudioClassifier, AapeClassifierConfig)()
