"""Naming a problem clip once: the statistics pass, each split's reader and every epoch meet
the same bad clip again, and a log that repeats it hundreds of times hides the others.

Counting is the readers' job (``skipped_clips`` in the metrics); this only keeps the log
readable. Safe to call from fairseq2's data-pipeline worker threads.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

log = logging.getLogger("aape_plugin.data")

_named: set[tuple[str, str]] = set()

_lock = threading.Lock()


def _first_time(kind: str, path: Path | str) -> bool:
    with _lock:
        key = (kind, str(path))
        if key in _named:
            return False
        _named.add(key)
        return True


def forget_named() -> None:
    """Names every clip again from now on (a new run in the same process, and tests)."""
    with _lock:
        _named.clear()


def report_unreadable(path: Path | str, reason: str) -> None:
    """A clip that is skipped (and counted by the reader)."""
    if _first_time("unreadable", path):
        log.warning("Skipping unreadable clip %s: %s", path, reason)


def report_short(path: Path | str, num_samples: int, min_samples: int, sample_rate: int) -> None:
    """A clip shorter than half an STFT window: it is used, padded with silence."""
    if _first_time("short", path):
        log.warning(
            "%s holds only %d sample(s) at %d Hz, fewer than the %d the STFT needs to mirror its "
            "edges; it is padded with silence.", path, num_samples, sample_rate, min_samples,
        )


def report_truncated(path: Path | str, num_samples: int, announced: int) -> None:
    """A file that decodes to fewer samples than its header announces: what is there is used."""
    if _first_time("truncated", path):
        log.warning(
            "%s holds %d samples where its header announces %d (truncated file?); using what is there.",
            path, num_samples, announced,
        )


def report_resampled(path: Path | str, rate: int, target: int) -> None:
    """Clips at another rate than the model's are resampled: said once per rate (the first clip
    named), as a warning when they are upsampled, since they hold nothing above half their rate
    where the model's mel bands reach half of ``target``."""
    if not _first_time("rate", str(rate)):
        return
    if rate < target:
        log.warning("Clips at %d Hz (first: %s) are upsampled to %d Hz: they hold nothing above %g Hz, where the model's "
                    "mel bands reach %g Hz.", rate, path, target, rate / 2, target / 2)
    else:
        log.info("Clips at %d Hz (first: %s) are resampled to %d Hz.", rate, path, target)
