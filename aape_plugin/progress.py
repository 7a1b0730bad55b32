"""Progress bars through fairseq2's progress reporter, so that ``--no-rich`` and
``FAIRSEQ2_NO_PROGRESS=1`` turn them off as they turn off the trainer's."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from fairseq2.runtime.dependency import get_dependency_resolver
from fairseq2.utils.progress import NOOP_PROGRESS_REPORTER, ProgressReporter


@contextmanager
def progress_task(name: str, total: int | None, *, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A bar named ``name``; yields its ``step(n=1)``. Uses the reporter of the running recipe
    (or of ``init_fairseq2()`` outside a recipe)."""
    reporter = get_dependency_resolver().resolve(ProgressReporter) if enabled else NOOP_PROGRESS_REPORTER
    with reporter:
        with reporter.create_task(name, total) as task:
            yield task.step
