"""The converged linear probe (all labels) of pre-trained encoders, random initialisations and the
no-model features, as the experiments measure them; results are cached under the root's
measurement folder by what they depend on (:class:`studies.probing.Prober`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from studies.common import MODULATION_TASKS, SHORT, TASKS, StudySettings
from studies.variants import ARCHS, VariantRun

if TYPE_CHECKING:
    import torch

    from studies.probing import ProbeScore

NO_MODEL = ("log-mel statistics", "modulation spectrum")
"""The rows with no model: what the input features alone give the same probe."""


def probe_scores(root: Path, runs: Sequence[VariantRun], seeds: Sequence[int], *, random_archs: Sequence[str] = ARCHS,
                 sklearn_check: bool = False, baselines: bool = False, tasks: tuple[str, ...] = (*MODULATION_TASKS, *TASKS),
                 folder: Path | None = None) -> dict[str, dict[str, ProbeScore]]:
    """The stored (or new) probe results per encoder name and task: the finished ``runs``' teachers,
    the random initialisations of ``random_archs`` at ``seeds`` and (with ``baselines``) the
    no-model rows; with ``sklearn_check``, each probe also fits scikit-learn's logistic
    regression, tuned on validation, on the same features (``ProbeScore.sklearn_test``). Kept in
    ``folder`` (``root/measurements``); the cache key includes every task of ``tasks``."""
    from aape_plugin.eval.embedding_cache import weights_digest
    from aape_plugin.inference.embedder import EncoderEmbedder, LogMelEmbedder
    from aape_plugin.inference.loading import load_encoder, new_encoder
    from aape_plugin.inference.modulation_spectrum import ModulationSpectrumEmbedder
    from studies.probing import Prober, load_pool_stats

    stats = load_pool_stats()
    prober = Prober(StudySettings(), folder or root / "measurements", tasks=tasks)
    encoders: list[tuple[str, torch.nn.Module, int]] = []
    for seed in seeds:
        for arch in (a for a in ARCHS if a in random_archs):
            loaded = new_encoder(arch, seed=seed)
            encoders.append((f"{arch} random init, seed {seed}", loaded.encoder, loaded.config.encoder.num_frames))
    for run in runs:
        if run.finished(root):
            loaded = load_encoder(run.folder(root), weights="teacher")
            encoders.append((run.name, loaded.encoder, loaded.config.encoder.num_frames))
    out = {}
    if baselines:
        for name, embedder, kind in ((NO_MODEL[0], LogMelEmbedder(stats), "logmel"),
                                     (NO_MODEL[1], ModulationSpectrumEmbedder(stats), "modspec")):
            scores = prober.probe(name, embedder, {"kind": kind, "stats": [stats.mean, stats.std]}, per_class=None, sklearn_check=sklearn_check)
            if scores is not None:
                out[name] = scores
    for name, encoder, frames in encoders:
        key = {"kind": "aape", "weights": weights_digest(encoder), "stats": [stats.mean, stats.std]}
        scores = prober.probe(name, EncoderEmbedder(encoder, stats, num_frames=frames), key, per_class=None, sklearn_check=sklearn_check)
        if scores is not None:
            out[name] = scores
    return out


def validation_table(scores: Mapping[str, Mapping[str, float]]) -> str:
    """Accuracy % per encoder and task, with the modulation and five-task means."""
    tasks = (*MODULATION_TASKS, *TASKS)
    lines = ["| encoder | " + " | ".join(SHORT[t] for t in tasks) + " | modulation mean | five-task mean |",
             "|" + "---|" * (len(tasks) + 3)]
    for name, per_task in scores.items():
        mod = sum(per_task[t] for t in MODULATION_TASKS) / len(MODULATION_TASKS)
        five = sum(per_task[t] for t in TASKS) / len(TASKS)
        lines.append(f"| {name} | " + " | ".join(f"{100 * per_task[t]:.1f}" for t in tasks) + f" | {100 * mod:.1f} | {100 * five:.1f} |")
    return "\n".join(lines)


def sklearn_table(scores: Mapping[str, Mapping[str, ProbeScore]], tasks: tuple[str, ...] = (*MODULATION_TASKS, *TASKS)) -> str:
    """Test accuracy %: the study's probe / scikit-learn's logistic regression, per encoder and task."""
    lines = ["| encoder | " + " | ".join(SHORT[t] for t in tasks) + " |", "|" + "---|" * (len(tasks) + 1)]
    for name, per_task in scores.items():
        cells = [f"{100 * per_task[t].test:.1f} / " + ("-" if per_task[t].sklearn_test is None else f"{100 * per_task[t].sklearn_test:.1f}")
                 for t in tasks]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
