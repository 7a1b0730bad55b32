"""Recipe config sections shared by AaPE recipes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fairseq2.recipe.component import ComponentNotKnownError
from fairseq2.recipe.config import DatasetSection, SupportsStructure, structure_component_config
from fairseq2.runtime.dependency import DependencyResolver
from fairseq2.utils.validation import ValidationResult

from aape_plugin.losses import AAPE_MULTI_MASK_CRITERION, AapeCriterion, AapeCriterionConfig


@dataclass(kw_only=True)
class AudioDatasetSection(DatasetSection):
    """Which data set (an asset card ``name``, or a ``family`` with ``config_overrides``) and
    how to read it."""

    root: Path | None = None
    """Shorthand for ``config_overrides.root``: the data set's folder."""

    stats_file: Path | None = None
    """Log-mel statistics to normalise with; default: the data set's own (``stats`` in its
    config), else those stored with the run (``OUTPUT_DIR/feature_stats.json``), else computed
    over ``stats_max_clips`` clips of the training split at start and stored there."""

    stats_max_clips: int = 2000
    """Clips sampled when the statistics are computed at start."""

    batch_size: int = 12
    """Clips per batch and data-parallel rank (in pre-training, each is seen as
    ``model.masking.num_clones`` masked views)."""

    shuffle_window: int = 0
    """Shuffle buffer in clips (0: the whole split)."""

    num_parallel_calls: int = 4
    """Clips decoded in parallel per rank."""

    num_prefetch: int = 4
    """Batches prepared ahead."""

    max_bad_fraction: float = 0.01
    """Stop with a summary when more than this fraction of the clips read is unreadable."""

    def validate(self) -> ValidationResult:
        result = super().validate()
        if self.batch_size < 1:
            result.add_error(f"`batch_size` must be >= 1, but is {self.batch_size}.")
        if not 0.0 <= self.max_bad_fraction <= 1.0:
            result.add_error(f"`max_bad_fraction` must be in [0, 1], but is {self.max_bad_fraction}.")
        return result


@dataclass(kw_only=True)
class CriterionSection(SupportsStructure):
    """The training criterion, chosen by name among the registered components."""

    name: str = AAPE_MULTI_MASK_CRITERION

    config: object = field(default_factory=AapeCriterionConfig)

    def structure(self, resolver: DependencyResolver) -> None:
        try:
            self.config = structure_component_config(resolver, AapeCriterion, self.name, self.config)
        except ComponentNotKnownError:
            raise CriterionNotKnownError(self.name) from None


class CriterionNotKnownError(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"{name!r} is not a known criterion; registered: {AAPE_MULTI_MASK_CRITERION!r}.")

        self.name = name
