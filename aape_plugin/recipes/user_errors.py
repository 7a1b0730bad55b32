"""User errors of the AaPE recipes: reported in one line (exit code 2), not as a stack trace.

fairseq2's recipe CLI looks exception handlers up by exact type (and prints a stack trace for
its own ``DatasetError``), so every concrete class is registered here.
"""

from __future__ import annotations

from fairseq2.recipe.cli import register_cli_error
from fairseq2.runtime.dependency import DependencyContainer


def log_user_error(ex: Exception) -> int:
    """One line; the message says what to change."""
    from fairseq2.logging import log

    log.error(str(ex))
    return 2


def register_user_errors(container: DependencyContainer) -> None:
    from aape_plugin.data.clips import ManifestError
    from aape_plugin.data.errors import AudioDataError
    from aape_plugin.data.reader import TooManyBadClipsError
    from aape_plugin.data.stats import StatsError
    from aape_plugin.inference.loading import EncoderLoadError
    from aape_plugin.recipes.safe_checkpoints import UnsafeCheckpointError
    from aape_plugin.recipes.sections import CriterionNotKnownError

    for kls in (AudioDataError, ManifestError, TooManyBadClipsError, StatsError, EncoderLoadError, CriterionNotKnownError,
                UnsafeCheckpointError):
        register_cli_error(container, kls, log_user_error)

