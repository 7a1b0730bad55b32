"""Where a recipe run's log goes: all of it to the run folder, the essentials to the terminal.

fairseq2 writes its log to ``OUTPUT_DIR/logs/rank_N.log`` and, on rank 0, also to the
terminal, where its set-up messages (configuration, model summary, host, environment
variables, gangs: hundreds of lines per run) bury what a user watches for. The command keeps
on the terminal only fairseq2's progress (trainer steps and checkpoints, metric lines, start
and end of the task, where the log files are), every warning and error, and the messages of
the recipes themselves (results, skipped clips); the log file receives everything, the
recipes' messages included.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

FRAMEWORK_LOGGER = "fairseq2"

PLUGIN_LOGGER = "aape_plugin"

# fairseq2 modules whose INFO messages are progress rather than set-up.
_PROGRESS_MODULES = (
    "trainer.py",
    "evaluator.py",
    "validator.py",
    "metrics/recorders/log.py",
    "recipe/internal/task.py",
    "recipe/internal/logging.py",
)


class _Forward(logging.Handler):
    """Hands the records it keeps to the handlers of another logger, looked up when a record
    comes (fairseq2 installs its handlers after the command starts)."""

    def __init__(self, targets: Callable[[], list[logging.Handler]], keep: Callable[[logging.LogRecord], bool]) -> None:
        super().__init__()
        self._targets = targets
        self._keep = keep

    def emit(self, record: logging.LogRecord) -> None:
        if not self._keep(record):
            return
        for handler in self._targets():
            if record.levelno >= handler.level:
                handler.handle(record)


def _fairseq2_file(module: str) -> str:
    import fairseq2

    return str(Path(fairseq2.__file__).parent / module)


def _caller_file(skip: frozenset[str]) -> str:
    """The file of the code that logged the record being handled (the first frame outside
    the logging machinery: fairseq2's messages all pass through its ``LogWriter``, so the
    record's own ``pathname`` names that wrapper, not the caller)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename in skip:
        frame = frame.f_back
    return frame.f_code.co_filename if frame is not None else ""


def route_recipe_log() -> None:
    """Installs the routing once per process (before fairseq2 configures its handlers)."""
    framework = logging.getLogger(FRAMEWORK_LOGGER)
    if any(isinstance(h, _Forward) for h in framework.handlers):
        return

    progress = frozenset(_fairseq2_file(m) for m in _PROGRESS_MODULES)
    machinery = frozenset((logging.__file__, _fairseq2_file("logging.py"), __file__))

    def for_terminal(record: logging.LogRecord) -> bool:
        """Warnings and errors, and fairseq2's progress messages."""
        return record.levelno >= logging.WARNING or _caller_file(machinery) in progress

    def terminal() -> list[logging.Handler]:
        return list(logging.getLogger().handlers)

    def run_log() -> list[logging.Handler]:
        return [h for h in framework.handlers if isinstance(h, logging.FileHandler)]

    # fairseq2's records reach the terminal (the root logger's handlers) only through this
    # filter; its own file handler, added to this logger, still receives all of them.
    framework.propagate = False
    framework.addHandler(_Forward(terminal, for_terminal))

    # The recipes' records keep going to the terminal and are copied into the run's log file.
    logging.getLogger(PLUGIN_LOGGER).addHandler(_Forward(run_log, lambda record: True))
