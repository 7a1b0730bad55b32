"""A fairseq2 ``Task`` for recipes that are one function, not a training loop."""

from __future__ import annotations

from abc import abstractmethod

from fairseq2.task import Task


class SimpleTask(Task):
    """Counts its steps and honours stop requests; subclasses implement :meth:`run`."""

    def __init__(self) -> None:
        self._step_nr = 0
        self._stop_requested = False

    @property
    def step_nr(self) -> int:
        return self._step_nr

    def request_stop(self) -> None:
        self._stop_requested = True

    def close(self) -> None:
        pass

    @abstractmethod
    def run(self) -> None: ...
