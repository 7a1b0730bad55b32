"""Linear evaluation of one representation on one task: embed (cached), then probe every round
and seed. Used by the ``aape_linear_probe`` recipe and by the study script."""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from fairseq2.gang import Gangs, ReduceOperation
from torch import Tensor

from aape_plugin.data.dataset import AudioDataset
from aape_plugin.data.reader import AudioReaderOptions
from aape_plugin.eval.embedding_cache import EmbeddingCache, clips_fingerprint
from aape_plugin.eval.gather import gather_rows, in_clip_order
from aape_plugin.eval.metrics import metric_name
from aape_plugin.eval.probe import ProbeSettings, train_probe
from aape_plugin.eval.protocol import Part, Round
from aape_plugin.inference.embedder import Embedder
from aape_plugin.progress import progress_task

log = logging.getLogger("aape_plugin.eval")

EMBEDDER_VERSION = 3
"""Part of the cache key: raise it when the embedders compute differently (2: each clip is
encoded at its own length; skipped clips are counted; 3: the key holds the clips' sizes and
modification times)."""


def embed_split(
    embedder: Embedder,
    dataset: AudioDataset,
    split: str,
    gangs: Gangs,
    *,
    clip_seconds: float,
    crop: str,
    seed: int,
    batch_size: int = 32,
    num_parallel_calls: int = 4,
    num_prefetch: int = 4,
    max_bad_fraction: float = 0.01,
) -> dict[str, Tensor]:
    """Clip embeddings of every readable clip of ``split``, with labels and row indices, in
    clip order, and the number of clips skipped as unreadable (``num_skipped``, a 0-d tensor).
    Each data-parallel rank embeds its shard; the rows are gathered onto rank 0 (the others get
    ``num_skipped`` only) and the skipped clips summed."""
    frames = embedder.features.num_frames(int(round(clip_seconds * embedder.features.sample_rate)))
    options = AudioReaderOptions(
        batch_size=batch_size, num_frames=frames, crop=crop, shuffle=False,  # type: ignore[arg-type]
        num_parallel_calls=num_parallel_calls, num_prefetch=num_prefetch,
        max_bad_fraction=max_bad_fraction, seed=seed, sync_mode="until_last",
    )
    reader = dataset.create_reader(split, gangs, embedder.features, embedder.stats, options)
    # Empty shapes for a rank whose shard is empty (fewer clips than ranks).
    num_classes = len(dataset.label_names or [])
    embeddings = [torch.empty(0, embedder.clip_dim)]
    labels = [torch.empty(0, num_classes) if dataset.multi_label else torch.empty(0, dtype=torch.int64)]
    indices = [torch.empty(0, dtype=torch.int64)]
    shard = -(-len(dataset.entries(split)) // gangs.dp.size)  # this rank's share of the clips
    with progress_task(f"embedding {split}", shard, enabled=gangs.root.rank == 0) as step:
        for group in reader:
            for batch in group:
                clip, _, _ = embedder.embed_logmel(batch.features, batch.num_frames)
                embeddings.append(clip)
                labels.append(batch.labels)
                indices.append(batch.indices)
                step(batch.batch_size + batch.num_skipped)
    rows = {"embeddings": torch.cat(embeddings), "labels": torch.cat(labels), "indices": torch.cat(indices)}
    skipped = torch.tensor(reader.num_skipped, dtype=torch.int64, device=gangs.dp.device)
    if gangs.dp.size > 1:
        gangs.dp.all_reduce(skipped, ReduceOperation.SUM)
    gathered = gather_rows(gangs.dp, rows, to="first")  # rank 0 trains the probes; the others only embed
    if gathered is None:
        return {"num_skipped": skipped.cpu()}
    return in_clip_order(gathered) | {"num_skipped": skipped.cpu()}


def summarise(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0, "n": len(values)}


def linear_evaluation(
    dataset: AudioDataset,
    embedder: Embedder,
    model_key: dict[str, Any],
    rounds: list[Round],
    gangs: Gangs,
    *,
    clip_seconds: float,
    settings: ProbeSettings,
    seeds: list[int] | None = None,
    cache: EmbeddingCache,
    seed: int = 2,
    batch_size: int = 32,
    num_parallel_calls: int = 4,
    num_prefetch: int = 4,
    max_bad_fraction: float = 0.01,
    should_stop: Callable[[], bool] = lambda: False,
    reference_check: bool = False,
) -> dict[str, Any] | None:
    """The results payload (``results.json``); ``None`` when stopped, and on data-parallel
    ranks other than 0, which only help to embed (every rank embeds its shard of the clips, rank
    0 gathers them, writes the cache and trains the probes).

    :param seeds: probe seeds (default: ``settings.run_seeds()``: every seed in ``evar`` mode, one
        in the deterministic ``logistic`` mode).
    :param reference_check: also record scikit-learn's tuned logistic regression on the same
        features (``sklearn_test_score`` of each run), to show the probe converged.
    """
    seeds = settings.run_seeds() if seeds is None else seeds
    train_splits = {p.split for r in rounds for p in (*r.train, *r.valid)}
    test_splits = {p.split for r in rounds for p in r.test}
    leader = gangs.root.rank == 0

    store: dict[str, dict[str, Tensor]] = {}
    for split in sorted(train_splits | test_splits):
        # Random crops where a split only trains; the first seconds where it is tested.
        crop = "start" if split in test_splits else "random"
        key = {"embedder": EMBEDDER_VERSION, "model": model_key, "dataset": dataset.name, "split": split, "crop": crop, "seed": seed,
               "clip_seconds": clip_seconds, "clips": clips_fingerprint([e.path for e in dataset.entries(split)]),
               "features": asdict(embedder.features)}
        # Rank 0 decides for all ranks: embedding is a collective operation.
        hit: list[object] = [cache.has(key)]
        if gangs.root.size > 1:
            gangs.root.broadcast_objects(hit)
        if not hit[0]:
            cached = embed_split(embedder, dataset, split, gangs, clip_seconds=clip_seconds, crop=crop, seed=seed,
                                 batch_size=batch_size, num_parallel_calls=num_parallel_calls, num_prefetch=num_prefetch,
                                 max_bad_fraction=max_bad_fraction)
            if not leader:  # it helped to embed; rank 0 holds the rows
                continue
            cache.put(key, cached)
            log.info("Embedded %d clips of %r (%d-d); %d skipped as unreadable.", len(cached["embeddings"]), split,
                     cached["embeddings"].size(1), int(cached["num_skipped"]))
        elif leader:
            cached = cache.get(key)  # type: ignore[assignment]
            log.info("Reusing cached embeddings of %r (%d clips).", split, len(cached["embeddings"]))
        else:
            continue
        store[split] = cached

    if not leader:
        return None

    def gather(parts: tuple[Part, ...]) -> tuple[Tensor, Tensor, list[str]]:
        """Embeddings, labels and clip ids (file paths) of ``parts``."""
        xs, ys, ids = [], [], []
        for part in parts:
            data = store[part.split]
            keep = slice(None) if part.rows is None else torch.isin(data["indices"], torch.tensor(part.rows, dtype=torch.int64))
            xs.append(data["embeddings"][keep])
            ys.append(data["labels"][keep])
            entries = dataset.entries(part.split)
            ids += [str(entries[int(i)].path) for i in data["indices"][keep]]
        return torch.cat(xs), torch.cat(ys), ids

    multi = dataset.multi_label
    num_classes = len(dataset.label_names or [])
    results = []
    predictions: dict[str, dict[str, dict[str, list]]] = {}
    for rnd in rounds:
        (*train, _), (*valid, valid_ids), (*test, test_ids) = gather(rnd.train), gather(rnd.valid), gather(rnd.test)
        for probe_seed in seeds:
            if should_stop():
                return None
            res = train_probe(tuple(train), tuple(valid), tuple(test), num_classes=num_classes, multi_label=multi, settings=settings, seed=probe_seed,
                              reference_check=reference_check)
            results.append({"round": rnd.name, "seed": probe_seed, **res.summary(), "train": len(train[0]), "valid": len(valid[0]), "test": len(test[0])})
            if not multi:
                # Per-clip predictions: what paired bootstrap intervals between models are computed from.
                entry = predictions.setdefault(rnd.name, {
                    "test": {"clips": test_ids, "labels": test[1].tolist(), "predicted": []},
                    "valid": {"clips": valid_ids, "labels": valid[1].tolist(), "predicted": []},
                })
                entry["test"]["predicted"].append(res.test_outputs.argmax(dim=-1).tolist())
                entry["valid"]["predicted"].append(res.valid_outputs.argmax(dim=-1).tolist())
            how = f"penalty {res.penalty:g}, {res.iterations} L-BFGS iterations" if res.penalty is not None else f"best epoch {res.best_epoch}"
            log.info("%s seed %d: test %s %.4f (valid %.4f, %s).", rnd.name, probe_seed, metric_name(multi), res.test_score, res.valid_score, how)
            if not res.converged:
                log.warning("%s seed %d: the probe did not converge within %d iterations; raise `probe.max_iter`.", rnd.name, probe_seed, settings.max_iter)

    per_round: dict[str, list[float]] = {}
    for r in results:
        per_round.setdefault(r["round"], []).append(r["test_score"])

    return {
        "recipe": "aape_linear_probe",
        "task": dataset.name,
        "model": model_key.get("source") or model_key["kind"],
        "model_key": model_key,
        "metric": metric_name(multi),
        "summary": summarise([r["test_score"] for r in results]),
        "skipped_clips": {split: int(data["num_skipped"]) for split, data in store.items()},
        "rounds": {k: summarise(v) for k, v in per_round.items()},
        "runs": results,
        "predictions": predictions,
        "settings": {"clip_seconds": clip_seconds, "probe": asdict(settings), "seeds": seeds},
    }


def write_results(out: Path, payload: dict[str, Any]) -> None:
    """``results.json`` and a one-row ``results.md``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    s, metric, task, model = payload["summary"], payload["metric"], payload["task"], payload["model"]
    score = f"{100 * s['mean']:.2f}" + (f" +- {100 * s['std']:.2f}" if s["n"] > 1 else "")
    runs = f"({len(payload['rounds'])} round(s) x {len(payload['settings']['seeds'])} seed(s))"
    lines = [
        f"# Linear probe: {task}", "",
        f"Model: {model}  ",
        f"Metric: {metric} (test), mean +- std over {s['n']} runs {runs}" if s["n"] > 1 else f"Metric: {metric} (test), one run",
        "", f"| task | model | {metric} |", "|---|---|---|", f"| {task} | {model} | {score} |", "",
    ]
    skipped = {split: n for split, n in payload.get("skipped_clips", {}).items() if n}
    if skipped:
        lines += ["Clips skipped as unreadable: " + ", ".join(f"{split} {n}" for split, n in skipped.items()), ""]
    if len(payload["rounds"]) > 1:
        lines += ["| round | mean | std |", "|---|---|---|"] + [
            f"| {k} | {100 * r['mean']:.2f} | {100 * r['std']:.2f} |" for k, r in payload["rounds"].items()
        ]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    log.info("%s on %s: %s %s (%d run(s)). Written to %s.", model, task, metric, score, s["n"], out / "results.md")
