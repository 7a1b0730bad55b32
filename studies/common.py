"""What every part of the study shares: its tasks, its settings, and a small job runner.

The study's runs are the project's public commands (``fairseq2 recipe run aape_pretrain`` and
``aape_finetune``) started as processes; :func:`run_jobs` keeps ``jobs`` of them going at once
(on 2 cores: two one-thread runs use the machine better than one two-thread run), starting a job
as soon as what it needs exists on disk, so one invocation can pre-train, then fine-tune, while
later jobs wait. Every job writes into its own folder and is skipped once finished: the study
resumes wherever it stopped.
"""

from __future__ import annotations

import datetime
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

TASKS = ("study_pitch", "study_instrument", "study_keywords", "study_drums", "study_language")
"""The five study tasks (``docs/data.md``), each split by source, 300-920 test clips."""

FREQUENCY_TASKS = ("study_pitch", "study_instrument")
"""The frequency-structured ones: spectral content of steady notes."""

MODULATION_TASKS = ("study_am_rate", "study_vibrato_rate", "study_roll_rate")
"""The modulation group (``docs/data.md``): the only label is a rate of 4-38 Hz, the band a
16-frame patch stem aliases and AaPE's branch is built to see; held out of the pre-training pool."""

SHORT = {"study_pitch": "pitch", "study_instrument": "instrument", "study_keywords": "keywords",
         "study_drums": "drums", "study_language": "language", "study_am_rate": "AM rate",
         "study_vibrato_rate": "vibrato rate", "study_roll_rate": "roll rate"}

ARCHS = ("aape_tiny", "vit_tiny")
"""AaPE and the same model with the plain conv stem."""


@dataclass(frozen=True)
class StudySettings:
    """The study's protocol (``make study`` uses these defaults)."""

    main_steps: int = 3000
    """Pre-training length of the main runs."""

    main_seeds: tuple[int, ...] = (1, 2, 3, 4)
    """Pre-training seeds of the main runs (and initialisation seeds of the random encoders)."""

    long_steps: int = 30_000
    """Length of the pre-training-length curve's runs (its own schedule: warm-up, decay and EMA
    ramp laid out over this many steps)."""

    curve_steps: tuple[int, ...] = (1000, 3000, 10_000, 30_000)
    """Checkpoints of the long runs measured along the curve."""

    curve_seeded_steps: tuple[int, ...] = (10_000, 30_000)
    """Checkpoints of the long runs fine-tuned with every fine-tuning seed (the others with the
    first only), so that the gap to random there has an interval over fine-tuning seeds as well
    as test clips (the pre-training seed stays 1: there is one long run per stem)."""

    finetune_seeds: tuple[int, ...] = (1, 2, 3)
    """Fine-tuning runs per cell: fine-tuning seed k starts from pre-training seed k (or the
    random initialisation of seed k)."""

    finetune_lrs: tuple[float, ...] = (1e-3, 3e-3)
    """The fine-tuning grid's learning rates; each (model, task, label regime) takes the one whose
    seed-1 run scores best on validation. The grid's other axis, steps, is the checkpoint the
    validation split picks within each run (validated every 50-100 steps)."""

    finetune_lr_widen: int = 1
    """How many steps of the grid's ratio (3x) the learning rates may extend past an end that
    seed-1 validation picks (pre-trained encoders picking the largest rate would otherwise be
    held back by the grid)."""

    per_class: int = 10
    """Clips per class of the low-label regime (fine-tuning and probe)."""

    subset_seed: int = 0
    """Seed of the low-label draw: the same clips for every model."""

    low_label_steps: tuple[tuple[str, int], ...] = (("study_pitch", 650),)
    """Fine-tuning steps in the low-label regime (validated every 50): 300, or at least 40 epochs
    of the 10-per-class subset at batch 32 where that is more (pitch: 49 classes, 490 clips; its
    random initialisations were still improving at 300)."""

    def few_label_steps(self, task: str) -> int:
        return dict(self.low_label_steps).get(task, 300)

    budget_check_factor: int = 3
    """The low-label budget check: the random initialisations are also fine-tuned this many times
    longer (every seed, at their chosen rate), so that a pre-trained model's lead is not the
    random start's shorter schedule (random initialisations learn slower)."""

    penalties: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
    """The probe's starting penalty grid (widened past an end that validation picks)."""

    widen: int = 1
    """How many decades the probe's grid may widen past an end that validation picks (the page
    counts how often the choice is still an end)."""

    probe_max_iter: int = 300
    """L-BFGS iterations per penalty. Weak penalties on thousands of clips do not reach the
    gradient tolerance in 1,000 either (their validation accuracy has long stopped moving); each
    fit records its iterations and final gradient, and the scikit-learn check runs with the
    same limit."""

    clip_seconds: float = 2.0
    """Probes and shift stability embed whole clips (up to this long)."""

    shift_clips: int = 200
    """Test clips per task in the shift-stability measurement."""


def say(message: str) -> None:
    print(f"[study {datetime.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def aape_command(*args: str) -> list[str]:
    """The project's command (``fairseq2`` / ``aape``), as the running interpreter runs it."""
    return [sys.executable, "-m", "aape_plugin", "recipe", "run", *args]


@dataclass
class Job:
    """One process of the study: a pre-training or a fine-tuning run."""

    name: str
    command: list[str]
    log: Path
    """Appended to (a resumed run adds to its log)."""


def _try_lock(job: Job) -> IO[bytes] | None:
    """An exclusive lock on the job's ``.lock`` file beside its log, or ``None`` when another
    process holds it (another study invocation runs this job: it must not be run twice)."""
    job.log.parent.mkdir(parents=True, exist_ok=True)
    handle = open(job.log.with_suffix(".lock"), "ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def run_jobs(pending: Callable[[], list[Job]], *, jobs: int, poll_seconds: float = 5.0) -> list[str]:
    """Runs what ``pending()`` returns, ``jobs`` at a time, asking again whenever one ends (a
    finished job makes others ready) until nothing is pending or running. A job another process
    is running (its lock is held) waits. A job that fails is reported and not retried in this
    invocation; returns the names of the failed jobs."""
    running: dict[str, subprocess.Popen[bytes]] = {}
    failed: list[str] = []
    logs: dict[str, IO[bytes]] = {}
    locks: dict[str, IO[bytes]] = {}
    held_elsewhere = False

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    # A `kill` must stop the runs too (they resume from their checkpoints): without this,
    # SIGTERM ends this process at once and leaves its runs going without their locks.
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            for name, proc in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                del running[name]
                logs.pop(name).close()
                locks.pop(name).close()
                if code != 0:
                    failed.append(name)
                    say(f"FAILED ({code}): {name}; see its log")
                else:
                    say(f"done: {name}")
            ready = [job for job in pending() if job.name not in running and job.name not in failed]
            held_elsewhere = False
            while ready and len(running) < jobs:
                job = ready.pop(0)
                lock = _try_lock(job)
                if lock is None:
                    held_elsewhere = True
                    continue
                locks[job.name] = lock
                logs[job.name] = open(job.log, "ab")
                say(f"start: {job.name}")
                running[job.name] = subprocess.Popen(job.command, stdout=logs[job.name], stderr=subprocess.STDOUT,
                                                     env={**os.environ, "OMP_NUM_THREADS": "1"})
            if not running and not held_elsewhere:
                return failed
            time.sleep(poll_seconds)
    finally:  # interrupted: stop the children (their runs resume from their last checkpoint)
        signal.signal(signal.SIGTERM, previous)
        for proc in running.values():
            proc.terminate()
        for proc in running.values():
            proc.wait()
