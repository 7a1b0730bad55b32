"""User errors of the AaPE recipes: reported in one line (exit code 2), not as a stack trace.

fairseq2's recipe CLI looks exception handlers up by exact type (and prints a stack trace for
its own ``DatasetError``), so every concrete class is registered here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from fairseq2.recipe.cli import register_cli_error
from fairseq2.recipe.error import RecipeError
from fairseq2.runtime.dependency import DependencyContainer
from fairseq2.task import Task


def log_user_error(ex: Exception) -> int:
    """One line; the message says what to change."""
    from fairseq2.logging import log

    log.error(str(ex))
    return 2


class CheckpointRestoreError(RecipeError):
    """A checkpoint state file loaded but does not fit this run (fairseq2's ``CheckpointError``,
    whose own handler prints a stack trace), in one line: fairseq2 logs a ``RecipeError``
    without a cause as its message alone (exit code 2)."""


@contextmanager
def restore_errors_in_one_line(step_numbers: Callable[[], list[int]] | None = None) -> Iterator[None]:
    """Around ``Trainer.run``: a checkpoint that cannot be restored becomes one line naming the
    step and the state, and the earlier checkpoint to resume from, if ``step_numbers`` (the
    run's checkpoint steps) lists one."""
    from fairseq2.checkpoint import CheckpointError

    try:
        yield
    except CheckpointError as ex:
        cause = ex.__cause__
        # torch's strict load names the first wrong key on the line after its heading.
        lines = [line.strip() for line in str(cause).splitlines() if line.strip()] if cause is not None else []
        detail = f" ({' '.join(lines[:2])[:400]})" if lines else ""
        earlier = [step for step in step_numbers() if step < ex.step_nr] if step_numbers is not None else None
        if earlier is None:
            instead = f"or delete checkpoints/step_{ex.step_nr} to resume from an earlier checkpoint"
        elif earlier:
            instead = f"or delete checkpoints/step_{ex.step_nr} to resume from step {max(earlier)}"
        else:
            instead = "or use another OUTPUT_DIR (there is no earlier checkpoint to resume from)"
        raise CheckpointRestoreError(
            f"{ex}{detail} The checkpoint of step {ex.step_nr} holds a {ex.kind} state this run cannot restore: it was "
            f"written by another recipe or configuration, or was altered. Resume with the configuration that wrote it, "
            f"{instead}."
        ) from None


class OneLineRestoreErrors(Task):
    """A task (fairseq2's trainer) whose checkpoint-restore errors are one line."""

    def __init__(self, inner: Task, step_numbers: Callable[[], list[int]] | None = None) -> None:
        self._inner = inner
        self._step_numbers = step_numbers

    def run(self) -> None:
        with restore_errors_in_one_line(self._step_numbers):
            self._inner.run()

    def request_stop(self) -> None:
        self._inner.request_stop()

    @property
    def step_nr(self) -> int:
        return self._inner.step_nr

    def close(self) -> None:
        self._inner.close()


def register_user_errors(container: DependencyContainer) -> None:
    from aape_plugin.data.clips import ManifestError
    from aape_plugin.data.errors import AudioDataError
    from aape_plugin.data.reader import TooManyBadClipsError
    from aape_plugin.data.stats import StatsError
    from aape_plugin.inference.loading import EncoderLoadError
    from aape_plugin.checkpoints import StateNotStorableError, UnsafeCheckpointError
    from aape_plugin.recipes.sections import CriterionNotKnownError

    for kls in (AudioDataError, ManifestError, TooManyBadClipsError, StatsError, EncoderLoadError, CriterionNotKnownError,
                UnsafeCheckpointError, StateNotStorableError):
        register_cli_error(container, kls, log_user_error)

