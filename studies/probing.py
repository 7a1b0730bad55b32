"""Frozen-encoder measurements of the study: the converged linear probe (all labels and the
low-label subsets) and shift stability, cached by what they depend on.

A probe result is stored under a hash of the encoder's weights (not its file's name or date),
the statistics it normalises with, the task's clips (paths, sizes, modification times), the
label regime and the probe's settings, so a rebuilt corpus or a rewritten checkpoint is measured
again and nothing stale is reused.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch
from fairseq2.device import CPU
from fairseq2.gang import create_fake_gangs

from aape_plugin.data.hub import get_audio_manifest_hub
from aape_plugin.data.stats import FeatureStats
from aape_plugin.eval.embedding_cache import EmbeddingCache, clips_fingerprint
from aape_plugin.eval.linear_eval import linear_evaluation
from aape_plugin.eval.probe import ProbeSettings
from aape_plugin.eval.protocol import limit_train, plan_rounds
from aape_plugin.eval.shift_stability import shift_stability
from aape_plugin.inference.embedder import Embedder, EncoderEmbedder
from studies.common import TASKS, StudySettings, say

PROBE_VERSION = 3
"""Raised when what a stored probe result holds changes (older results are redone; embeddings
stay cached under their own keys)."""

SHIFT_VERSION = 1


@dataclass
class ProbeScore:
    """One probe on one task in one label regime."""

    valid: float
    test: float
    clips: list[str]
    """Test clips, in the order of ``correct``."""
    correct: list[int]
    penalty: float
    penalty_at_edge: bool
    iterations: int
    gradient: float
    converged: bool
    train_clips: int
    sklearn_test: float | None = None
    subset: list[str] = field(default_factory=list)
    """The low-label regime's training clips (empty with all labels)."""


def task_clips(task: str) -> list[Path]:
    dataset = get_audio_manifest_hub().open_dataset(task)
    return [e.path for split in sorted(dataset.splits) for e in dataset.entries(split)]


@dataclass
class Prober:
    """Probes embedders on the study tasks, with results stored in ``folder``."""

    settings: StudySettings
    folder: Path
    measure_new: bool = True
    """``False``: return only what is stored (``None`` for the rest), measure nothing."""
    tasks: tuple[str, ...] = TASKS
    """The tasks probed (the study's five; the modulation group is probed by ``studies.modulation``)."""

    def __post_init__(self) -> None:
        self.cache = EmbeddingCache(self.folder / "embeddings")
        # float32 objective: 2-5x faster here; the scikit-learn check (float64) bounds what it costs.
        self.probe_settings = ProbeSettings(penalties=list(self.settings.penalties), widen=self.settings.widen,
                                            max_iter=self.settings.probe_max_iter,
                                            precision="single")
        self._clip_prints = {task: clips_fingerprint(task_clips(task)) for task in self.tasks}

    def _path(self, kind: str, model_key: dict[str, Any], extra: object) -> Path:
        digest = hashlib.sha256(json.dumps([kind, model_key, self._clip_prints, extra], sort_keys=True, default=str).encode()).hexdigest()[:20]
        return self.folder / kind / f"{digest}.json"

    def probe(self, name: str, embedder: Embedder, model_key: dict[str, Any], *, per_class: int | None,
              sklearn_check: bool = False) -> dict[str, ProbeScore] | None:
        """Scores on every task with all training labels (``per_class=None``) or the low-label
        subsets (stored; computed once)."""
        extra = [PROBE_VERSION, per_class, self.settings.subset_seed, asdict(self.probe_settings), sklearn_check, self.settings.clip_seconds]
        path = self._path("probes", model_key, extra)
        if path.is_file():
            return {t: ProbeScore(**v) for t, v in json.loads(path.read_text())["scores"].items()}
        if not self.measure_new:
            return None
        say(f"probing {name} ({'all labels' if per_class is None else f'{per_class} per class'})")
        started = time.monotonic()
        hub = get_audio_manifest_hub()
        scores = {}
        for task in self.tasks:
            dataset = hub.open_dataset(task)
            labels_of = {s: [e.labels[0] for e in dataset.entries(s)] for s in dataset.splits}
            rounds = plan_rounds(dataset.splits, labels_of, folds=None, valid_fraction=0.1, seed=2)
            if per_class is not None:
                rounds = limit_train(rounds, labels_of, per_class, self.settings.subset_seed)
            with torch.inference_mode(False), torch.enable_grad():
                payload = linear_evaluation(dataset, embedder, model_key, rounds, create_fake_gangs(CPU),
                                            clip_seconds=self.settings.clip_seconds, settings=self.probe_settings, cache=self.cache,
                                            batch_size=64, num_parallel_calls=2, reference_check=sklearn_check)
            assert payload is not None
            run, pred = payload["runs"][0], payload["predictions"]["test"]["test"]
            subset = []
            if per_class is not None:
                entries = dataset.entries("train")
                subset = [str(entries[row].path) for part in rounds[0].train for row in (part.rows or ())]
            scores[task] = ProbeScore(
                valid=run["valid_score"], test=run["test_score"], clips=pred["clips"],
                correct=[int(p == y) for p, y in zip(pred["predicted"][0], pred["labels"])],
                penalty=run["penalty"], penalty_at_edge=bool(run["penalty_at_edge"]), iterations=run["iterations"],
                gradient=run["gradient"], converged=run["converged"], train_clips=run["train"],
                sklearn_test=run.get("sklearn_test_score"), subset=subset)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"name": name, "key": model_key, "seconds": time.monotonic() - started,
                                    "scores": {t: asdict(s) for t, s in scores.items()}}) + "\n")
        return scores

    def shift(self, name: str, embedder: EncoderEmbedder, model_key: dict[str, Any]) -> dict[str, dict[str, list[float]]] | None:
        """Per task, per test clip (the first ``shift_clips`` of each task, spread over its test
        split), the mean over sub-patch shifts of the clip and frame cosines (stored)."""
        path = self._path("shift", model_key, [SHIFT_VERSION, self.settings.shift_clips])
        if path.is_file():
            return json.loads(path.read_text())["tasks"]
        if not self.measure_new:
            return None
        say(f"shift stability of {name}")
        started = time.monotonic()
        out = {}
        for task, (clips, logmels) in shift_clips(self.settings, embedder, self.tasks).items():
            result = shift_stability(embedder, logmels, window=embedder.num_frames)
            out[task] = {"clips": clips, "clip_cosine": result.clip_cosine_per_clip.tolist(),
                         "frame_cosine": result.frame_cosine_per_clip.tolist()}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"name": name, "key": model_key, "seconds": time.monotonic() - started, "tasks": out}) + "\n")
        return out


def shift_clips(settings: StudySettings, embedder: Embedder, tasks: tuple[str, ...] = TASKS) -> dict[str, tuple[list[str], list[torch.Tensor]]]:
    """The shift-stability clips of every task (evenly spread over its test split) as
    normalised log-mel."""
    hub = get_audio_manifest_hub()
    out = {}
    for task in tasks:
        entries = hub.open_dataset(task).entries("test")
        chosen = [entries[int(i)] for i in np.linspace(0, len(entries) - 1, min(settings.shift_clips, len(entries)))]
        logmels = []
        for entry in chosen:
            audio, rate = soundfile.read(str(entry.path), dtype="float32", always_2d=True)
            if rate != embedder.sample_rate:
                raise ValueError(f"{entry.path} is at {rate} Hz; the study corpus is at {embedder.sample_rate} Hz.")
            logmels.append(embedder.normalised_logmel(torch.from_numpy(audio.mean(axis=1))))
        out[task] = ([str(e.path) for e in chosen], logmels)
    return out


def pool_stats_file() -> Path:
    """The statistics of the pre-training pool, which every model of the study normalises with."""
    stats_file = get_audio_manifest_hub().open_dataset("study_pool").stats_file
    if stats_file is None:
        raise FileNotFoundError("The study corpus has no pool statistics; rebuild it with `make study-corpus`.")
    return Path(stats_file)


def load_pool_stats() -> FeatureStats:
    return FeatureStats.load(pool_stats_file())


def measurement_hours(folder: Path) -> tuple[float, int, int]:
    """Wall-clock hours the stored probe and shift results took (as their processes measured
    them), how many of them say, and how many there are."""
    seconds, timed, total = 0.0, 0, 0
    for path in sorted(folder.glob("probes/*.json")) + sorted(folder.glob("shift/*.json")):
        total += 1
        took = json.loads(path.read_text()).get("seconds")
        if took is not None:
            seconds, timed = seconds + float(took), timed + 1
    return seconds / 3600, timed, total
