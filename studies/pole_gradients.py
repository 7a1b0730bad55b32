"""Which term of the objective moves the Lambda Encoder towards the rate, and which away from it.

    python -m studies.pole_gradients --variants trained_visible modulation_lambda --seeds 1 2 3 --out docs/pole-gradients.json
    python -m studies.pole_gradients --from-json docs/pole-gradients.json --page docs/pole-gradients.md

For a freshly initialised ``aape_tiny`` in the `study` preset's configuration (and a variant's
overrides), on batches of the pre-training pool: each term of the objective (masked tokens, CLS,
contrastive, alias, each with its weight in the total) gives a gradient on the student's Lambda
Encoder. How well the estimates follow the input's modulation is measured on the AM-rate
validation clips as ``r``: the mean, over (subband, kernel), of Pearson's correlation between the
clip-mean estimated frequency and the log of the true rate (a differentiable stand-in for the
mean Spearman rho of ``aape_plugin.eval.adaptivity``). A plain gradient step of size ``eta`` along
a term changes ``r`` by ``-eta * g . grad r`` to first order: the table reports ``-g . grad r``
per term (positive: the term pushes the estimates to follow the rate) and the cosine between the
two directions, means over batches with their spread. AdamW rescales each parameter's step, so
this is the direction of the raw gradients, not of the optimiser's update; and it is measured at
initialisation, where the erosion starts, not along a run.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from studies.common import say

TERMS = ("masked tokens", "CLS", "contrastive", "alias", "total")
VARIANT_STEMS = {"trained_visible": {}, "modulation_lambda": {"lambda_modulation_input": True}}
"""The variants of ``studies.variants`` with a trained Lambda Encoder: their stem options."""


def study_model_config(variant: str):  # noqa: ANN201
    """``aape_tiny`` with the `study` preset's targets and the variant's stem options."""
    from aape_plugin.models.archs import ARCHS

    config = ARCHS["aape_tiny"]()
    targets = replace(config.targets, alias_features=True, alias_norm="subband", alias_visible=True)
    stem = replace(config.encoder.stem, **VARIANT_STEMS[variant])
    return replace(config, targets=targets, encoder=replace(config.encoder, stem=stem))


def _logmels(embedder, paths: list[Path], seconds: float, frames: int) -> torch.Tensor:  # noqa: ANN001
    """``(C, 1, F, frames)`` normalised log-mels, cropped or padded (with the mean, 0) to ``frames``."""
    from aape_plugin.data.audio import load_waveform

    out = []
    for path in paths:
        mel = embedder.normalised_logmel(load_waveform(path, duration=seconds))
        mel = mel[:, :frames] if mel.size(-1) >= frames else torch.nn.functional.pad(mel, (0, frames - mel.size(-1)))
        out.append(mel)
    return torch.stack(out)[:, None]


def following_r(lambda_encoder: torch.nn.Module, mels: torch.Tensor, log_rate: torch.Tensor) -> torch.Tensor:
    """Mean over (subband, kernel) of Pearson's r between clip-mean frequency and log rate."""
    _, frequency = lambda_encoder(mels)  # (C, S, P, N)
    clip_mean = frequency.mean(dim=2).flatten(1)  # (C, S*N)
    f = clip_mean - clip_mean.mean(dim=0, keepdim=True)
    r = log_rate - log_rate.mean()
    corr = (f * r[:, None]).sum(0) / (f.norm(dim=0) * r.norm() + 1e-12)
    return corr.mean()


def measure(variant: str, seed: int, *, batches: int, batch_size: int, rate_clips: int) -> dict[str, object]:
    from aape_plugin.data.hub import get_audio_manifest_hub
    from aape_plugin.eval.adaptivity import rate_of
    from aape_plugin.inference.embedder import LogMelEmbedder
    from aape_plugin.losses import AapeCriterion, AapeCriterionConfig
    from aape_plugin.models.factory import create_aape_model
    from studies.probing import load_pool_stats

    config = study_model_config(variant)
    torch.manual_seed(seed)
    model = create_aape_model(config).train()
    criterion = AapeCriterion(AapeCriterionConfig())
    c = criterion.config
    embedder = LogMelEmbedder(load_pool_stats())
    hub = get_audio_manifest_hub()
    frames = config.encoder.num_frames
    patch = config.encoder.patch_size

    am = hub.open_dataset("study_am_rate").entries("valid")
    am = am[:: max(1, len(am) // rate_clips)][:rate_clips]
    rate_mels = _logmels(embedder, [e.path for e in am], 1.0, 96 // patch * patch)
    log_rate = torch.tensor([math.log(rate_of(e.labels)) for e in am], dtype=torch.float32)

    lambda_encoder = model.student.stem.lambda_encoder
    params = [p for p in lambda_encoder.parameters() if p.requires_grad]
    r = following_r(lambda_encoder, rate_mels, log_rate)
    grad_r = torch.autograd.grad(r, params, allow_unused=True)  # the decay head does not move r
    flat_r = torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for g, p in zip(grad_r, params)])

    pool = hub.open_dataset("study_pool").entries("train")
    rng = np.random.default_rng(seed)
    rows: dict[str, list[tuple[float, float, float]]] = {t: [] for t in TERMS}
    for b in range(batches):
        chosen = rng.choice(len(pool), size=batch_size, replace=False)
        x = _logmels(embedder, [pool[i].path for i in chosen], frames / 100, frames)
        loss = criterion(model(x, mask_seeds=[int(seed * 1000 + b * batch_size + k) for k in range(batch_size)]))
        weighted = {"masked tokens": c.patch_weight * loss.patch, "CLS": c.global_weight * loss.global_,
                    "contrastive": c.contrastive_weight * loss.contrastive, "alias": c.alias_weight * loss.alias, "total": loss.total}
        for term in TERMS:
            grads = torch.autograd.grad(weighted[term], params, retain_graph=True, allow_unused=True)
            g = torch.cat([(torch.zeros_like(p) if gi is None else gi).flatten() for gi, p in zip(grads, params)])
            along = float(-(g @ flat_r))
            cosine = along / (float(g.norm() * flat_r.norm()) + 1e-20)
            rows[term].append((along, cosine, float(g.norm())))
    summary = {}
    for term, values in rows.items():
        arr = np.array(values)
        summary[term] = {"along": float(arr[:, 0].mean()), "along_sd": float(arr[:, 0].std(ddof=1)) if len(arr) > 1 else 0.0,
                         "cosine": float(arr[:, 1].mean()), "norm": float(arr[:, 2].mean())}
    return {"variant": variant, "seed": seed, "r": float(r), "grad_r_norm": float(flat_r.norm()), "batches": batches,
            "batch_size": batch_size, "rate_clips": len(am), "terms": summary}


def render(document: dict[str, object]) -> str:
    lines = ["# Which term moves the Lambda Encoder towards the rate", "",
             "Generated by `python -m studies.pole_gradients` (its docstring states the method) from `docs/pole-gradients.json`.",
             "At initialisation, in the `study` preset's configuration; `r`: how well the clip-mean estimates follow the",
             "true AM rate (mean Pearson r over subband and kernel, AM-rate validation clips). Per term: `-g . grad r`",
             "(the first-order change of `r` per unit step along the term's raw gradient; positive: towards following the",
             "rate), mean over pool batches with its standard deviation, the cosine of the two directions and the",
             "gradient's norm.", "",
             "| variant | seed | r at initialisation | term | -g . grad r (sd over batches) | cosine | gradient norm |",
             "|---|---|---|---|---|---|---|"]
    for m in document["measurements"]:  # type: ignore[attr-defined]
        for term in TERMS:
            t = m["terms"][term]
            lines.append(f"| {m['variant']} | {m['seed']} | {m['r']:+.3f} | {term} | {t['along']:+.2e} ({t['along_sd']:.1e}) | "
                         f"{t['cosine']:+.3f} | {t['norm']:.2e} |")
    note = str(document.get("note", ""))
    return "\n".join(lines + ([""] + [note] if note else [])) + "\n"


def new_document(measurements: list[dict[str, object]], out: Path | None, note: str | None) -> dict[str, object]:
    """What ``--out`` stores: measured again, the page keeps the note it has unless ``note`` is
    given (as a declared experiment's page does)."""
    kept = json.loads(out.read_text()).get("note", "") if out is not None and out.is_file() else ""
    return {"measurements": measurements, "note": note if note is not None else kept}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studies.pole_gradients", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANT_STEMS), choices=list(VARIANT_STEMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rate-clips", type=int, default=236)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--from-json", type=Path)
    parser.add_argument("--page", type=Path)
    parser.add_argument("--note", default=None)
    args = parser.parse_args(argv)
    if args.from_json:
        document = json.loads(args.from_json.read_text())
        if args.note is not None:
            document["note"] = args.note
            args.from_json.write_text(json.dumps(document, indent=1) + "\n")
    else:
        from aape_plugin.inference.loading import ensure_fairseq2

        ensure_fairseq2()
        measurements = []
        for variant in args.variants:
            for seed in args.seeds:
                say(f"gradients of {variant}, initialisation seed {seed}")
                measurements.append(measure(variant, seed, batches=args.batches, batch_size=args.batch_size, rate_clips=args.rate_clips))
        document = new_document(measurements, args.out, args.note)
        if args.out:
            args.out.write_text(json.dumps(document, indent=1) + "\n")
    text = render(document)
    if args.page:
        args.page.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
