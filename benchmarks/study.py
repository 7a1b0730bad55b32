"""Does AaPE pre-training help? The controlled study on the study corpus (``make study``).

Pre-trains ``aape_tiny`` and ``vit_tiny`` (the same model with the plain conv stem) with the same
recipe, data, steps and seeds on the study corpus' unlabelled pool (``make study-corpus``), plus
ablations; probes every checkpoint (teacher and student), randomly initialised encoders of both
archs and the log-mel statistics with the converged linear probe on the five study tasks; states
every difference with a paired bootstrap 95% interval over test clips and pre-training seeds;
probes the stems alone (standard branch, aliasing branch, fused tokens); writes
``docs/results.md``, ``docs/results.json`` and ``docs/figures/study_*.png``.

    python -m benchmarks.study                      # the study (make study)
    python -m benchmarks.study --phase dev          # the runs the defaults were chosen with (valid splits)
    python -m benchmarks.study --phase all --report-only

Everything resumes: pre-training goes through the public command (``fairseq2 recipe run
aape_pretrain``), which continues from the last checkpoint; finished runs, cached embeddings and
probe results are reused. A run is skipped once its last checkpoint exists, so the study can be
spread over several sessions. Budget on 2 CPU cores: each 3,000-step run about 11-15 minutes,
each model's probes on the five tasks about 4-5 (see the report for the measured totals).
``--only TEXT`` and ``--seeds 1,2`` pick what to run.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import math
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fairseq2.device import CPU
from fairseq2.gang import create_fake_gangs

from aape_plugin.data.hub import get_audio_manifest_hub
from aape_plugin.data.stats import FeatureStats
from aape_plugin.eval.bootstrap import Interval, paired_bootstrap
from aape_plugin.eval.embedding_cache import EmbeddingCache, file_fingerprint
from aape_plugin.eval.linear_eval import linear_evaluation
from aape_plugin.eval.probe import ProbeSettings
from aape_plugin.eval.protocol import plan_rounds
from aape_plugin.inference.embedder import Embedder, EncoderEmbedder, LogMelEmbedder
from aape_plugin.inference.loading import ensure_fairseq2, load_encoder, new_encoder
from benchmarks.common import machine, markdown_table
from benchmarks.stem_probe import StemEmbedder

TASKS = ("study_pitch", "study_instrument", "study_keywords", "study_drums", "study_language")
FREQUENCY_TASKS = ("study_pitch", "study_instrument")
SHORT = {"study_pitch": "pitch", "study_instrument": "instrument", "study_keywords": "keywords",
         "study_drums": "drums", "study_language": "language"}
CLIP_SECONDS = 2.0
STEPS = 3000
MAIN_SEEDS = (1, 2, 3, 4)
STUDY_PENALTIES = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
"""The probe's penalty grid here (the recipe's default adds 1e-6 and 1, which cost the most
time). Validation often picks the weak end, 1e-5, for pre-trained encoders on pitch and keywords
(`results.json` has every choice): a wider grid could move their scores a little."""
ABLATION_SEEDS = (1, 2)


@dataclass(frozen=True)
class Variant:
    """One pre-training configuration: an arch plus ``--config`` overrides of the study preset."""

    label: str
    arch: str
    overrides: tuple[str, ...] = ()
    seeds: tuple[int, ...] = MAIN_SEEDS
    note: str = ""
    same_as: str = ""
    """The label of a dev variant with exactly these settings: its finished runs serve as this
    variant's runs of the same seeds instead of being trained again."""

    @property
    def slug(self) -> str:
        return slug(self.label)


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label).strip("_")


# The objective as it stood before the options were added (its settings spelled out; also the defaults).
OLD = ("model.config_overrides={targets: {source: residual, global_target: patch_mean}, "
       "encoder: {stem: {context: clip}}, masking: {hide_from_stem: true, kind: random}}",)

# Variants the defaults were chosen with (validation splits only).
DEV: list[Variant] = [
    Variant("dev aape_tiny, previous objective", "aape_tiny", OLD, (1, 2)),
    Variant("dev vit_tiny, previous objective", "vit_tiny", OLD, (1, 2)),
    Variant("dev vit_tiny, ffn+clip targets", "vit_tiny",
            ("model.config_overrides={targets: {source: ffn, global_target: clip}}",), (1, 2)),
    Variant("dev aape_tiny, ffn+clip targets, clip stem (masked input zeroed)", "aape_tiny",
            ("model.config_overrides={targets: {source: ffn, global_target: clip}, encoder: {stem: {context: clip}}, masking: {hide_from_stem: true}}",), (1, 2)),
    Variant("dev aape_tiny, ffn+clip targets, clip stem sees the full input", "aape_tiny",
            ("model.config_overrides={targets: {source: ffn, global_target: clip}, encoder: {stem: {context: clip}}, masking: {hide_from_stem: false}}",), (1, 2)),
    Variant("dev aape_tiny, ffn+clip targets, patch stem", "aape_tiny",
            ("model.config_overrides={targets: {source: ffn, global_target: clip}, encoder: {stem: {context: patch}}}",), (1, 2)),
]

# The defaults, as chosen on the dev runs' validation scores (docs/results.md): the previous
# objective won, so its dev runs are the main runs of their seeds.
MAIN: list[Variant] = [
    Variant("aape_tiny", "aape_tiny", same_as="dev aape_tiny, previous objective"),
    Variant("vit_tiny", "vit_tiny", same_as="dev vit_tiny, previous objective"),
]

ABLATIONS: list[Variant] = [
    Variant("aape_tiny, no contrastive term", "aape_tiny", ("criterion.config.contrastive_weight=0",), ABLATION_SEEDS,
            "isolates the contrastive term (M clones kept)"),
    Variant("aape_tiny, one mask clone, no contrastive term", "aape_tiny",
            ("criterion.config.contrastive_weight=0", "model.config_overrides={masking: {num_clones: 1}}"), ABLATION_SEEDS,
            "against the row above: isolates multi-mask (the contrastive term needs 2+ clones)"),
    Variant("aape_tiny, fixed decay/frequency", "aape_tiny", ("model.config_overrides={encoder: {stem: {adaptive: false}}}",),
            ABLATION_SEEDS, "isolates the input-dependent poles of the Lambda Encoder"),
]


def say(message: str) -> None:
    print(f"[study {datetime.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------- pre-training


def run_dir(root: Path, variant: Variant, seed: int, steps: int) -> Path:
    if variant.same_as and (root / slug(variant.same_as) / f"seed{seed}" / "checkpoints" / f"step_{steps}").is_dir():
        return root / slug(variant.same_as) / f"seed{seed}"
    return root / variant.slug / f"seed{seed}"


def pretrain(root: Path, variant: Variant, seed: int, steps: int) -> Path:
    out = run_dir(root, variant, seed, steps)
    if (out / "checkpoints" / f"step_{steps}").is_dir():
        return out
    cmd = [sys.executable, "-m", "aape_plugin", "recipe", "run", "aape_pretrain", str(out), "--preset", "study", "--no-rich",
           "--model-arch", variant.arch, "--config", f"common.seed={seed}", f"regime.num_steps={steps}",
           f"lr_scheduler.config.num_warmup_steps={max(1, steps // 10)}", f"regime.keep_checkpoint_every_n_steps={steps // 6}",
           *variant.overrides]
    say(f"pre-training {out} ({variant.arch}, seed {seed}, {steps} steps)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f"{out.name}.log", "a") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    return out


def train_seconds(out: Path) -> float:
    rows = (out / "metrics" / "train.jsonl").read_text().splitlines()
    return float(json.loads(rows[-1])["Total Time"])


def final_health(out: Path) -> dict[str, float]:
    row = json.loads((out / "metrics" / "train.jsonl").read_text().splitlines()[-1])
    keys = ("Masked Token Loss", "CLS Global Loss", "Contrastive Loss", "Target Clip Spread", "Target Position Share",
            "Teacher Rank", "Student Rank", "Prediction Cosine", "Global R²")
    return {k: float(row[k]) for k in keys if k in row}


# ------------------------------------------------------------------------------------------ probing


PROBE_VERSION = 2
"""Bumped when what a probe result holds changes (cached results of older versions are redone;
the embeddings stay cached)."""


@dataclass
class TaskScore:
    valid: float
    test: float
    correct: list[int]
    """Per test clip, 1 if the probe got it right (in the task's test order)."""
    valid_correct: list[int]
    """The same for the validation clips (what the choices of defaults compare)."""
    penalty: float | None = None
    sklearn_test: float | None = None


@dataclass
class Prober:
    cache: EmbeddingCache
    results: Path
    settings: ProbeSettings = field(default_factory=lambda: ProbeSettings(penalties=list(STUDY_PENALTIES), max_iter=500))
    seconds: float = 0.0

    def probe(self, name: str, embedder: Embedder, key: dict[str, Any], tasks: tuple[str, ...] = TASKS,
              sklearn_check: bool = False) -> dict[str, TaskScore]:
        """Scores of ``embedder`` on ``tasks`` (cached in ``results`` by ``key``)."""
        digest = hashlib.sha256(json.dumps([PROBE_VERSION, key, tasks, sklearn_check], sort_keys=True, default=str).encode()).hexdigest()[:16]
        path = self.results / f"{digest}.json"
        if path.is_file():
            return {t: TaskScore(**v) for t, v in json.loads(path.read_text())["scores"].items()}
        say(f"probing {name}")
        start = time.monotonic()
        hub = get_audio_manifest_hub()
        scores = {}
        for task in tasks:
            dataset = hub.open_dataset(task)
            rounds = plan_rounds(dataset.splits, {s: [e.labels[0] for e in dataset.entries(s)] for s in dataset.splits},
                                 folds=None, valid_fraction=0.1, seed=2)
            with torch.inference_mode(False), torch.enable_grad():
                payload = linear_evaluation(dataset, embedder, key, rounds, create_fake_gangs(CPU), clip_seconds=CLIP_SECONDS,
                                            settings=self.settings, cache=self.cache, batch_size=64, num_parallel_calls=2,
                                            reference_check=sklearn_check)
            assert payload is not None
            run, pred = payload["runs"][0], payload["predictions"]["test"]
            correct = {split: [int(p == y) for p, y in zip(pred[split]["predicted"][0], pred[split]["labels"])] for split in ("test", "valid")}
            scores[task] = TaskScore(valid=run["valid_score"], test=run["test_score"], correct=correct["test"],
                                     valid_correct=correct["valid"], penalty=run["penalty"], sklearn_test=run.get("sklearn_test_score"))
        self.seconds += time.monotonic() - start
        self.results.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"name": name, "key": key, "scores": {t: s.__dict__ for t, s in scores.items()}}) + "\n")
        return scores


def encoder_key(out: Path, weights: str, step: int) -> dict[str, Any]:
    return {"kind": "aape", "source": str(out.resolve()), "weights": weights, "step": step,
            "fingerprint": file_fingerprint(out / "checkpoints" / f"step_{step}" / "model")}


# ----------------------------------------------------------------------------------------- analysis


def correct_matrix(per_seed: list[dict[str, TaskScore]], tasks: tuple[str, ...], split: str = "test") -> dict[str, np.ndarray]:
    field = "correct" if split == "test" else "valid_correct"
    return {t: np.array([getattr(s[t], field) for s in per_seed]) for t in tasks}


def compare(a: list[dict[str, TaskScore]], b: list[dict[str, TaskScore]], tasks: tuple[str, ...], split: str = "test") -> Interval:
    return paired_bootstrap(correct_matrix(a, tasks, split), correct_matrix(b, tasks, split))


def mean_over(per_seed: list[dict[str, TaskScore]], tasks: tuple[str, ...], split: str = "test") -> list[float]:
    return [statistics.fmean(getattr(s[t], split) for t in tasks) for s in per_seed]


def cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.fmean(values):.1f} +- {100 * statistics.stdev(values):.1f}"


def score_table(models: dict[str, list[dict[str, TaskScore]]], split: str) -> str:
    rows = []
    for name, per_seed in models.items():
        row = [name, str(len(per_seed))]
        row += [cell([getattr(s[t], split) for s in per_seed]) for t in TASKS]
        row += [cell(mean_over(per_seed, FREQUENCY_TASKS, split)), cell(mean_over(per_seed, TASKS, split))]
        rows.append(row)
    return markdown_table(["model", "seeds", *(SHORT[t] for t in TASKS), "pitch+instr.", "mean"], rows)


# ------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase", choices=("dev", "main", "all"), default="main",
                        help="dev: the runs the defaults were chosen with; main: the study; all: both")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--out", type=Path, default=Path("runs/study"))
    parser.add_argument("--docs", type=Path, default=Path("docs"))
    parser.add_argument("--report-only", action="store_true", help="probe and report the runs that have finished; train none")
    parser.add_argument("--pretrain-only", action="store_true", help="pre-train; probe and report nothing")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch threads of the probes (pre-training uses the preset's)")
    parser.add_argument("--no-stems", action="store_true", help="skip the stem-only probes")
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="only the variants whose label contains TEXT (repeatable); the report covers what exists")
    parser.add_argument("--seeds", type=lambda s: tuple(int(x) for x in s.split(",")), default=None,
                        help="only these pre-training seeds, e.g. 1,2")
    args = parser.parse_args(argv)

    ensure_fairseq2()
    torch.set_num_threads(args.threads)
    started = time.monotonic()
    hub = get_audio_manifest_hub()
    stats = FeatureStats.load(hub.open_dataset("study_pool").stats_file)

    variants = {"dev": DEV, "main": MAIN + ABLATIONS, "all": DEV + MAIN + ABLATIONS}[args.phase]
    if args.only:
        variants = [v for v in variants if any(text in v.label for text in args.only)]

    # Each run is pre-trained, then probed at once, so that results arrive as the study goes.
    prober = Prober(EmbeddingCache(args.out / "embeddings"), args.out / "probes")
    runs: dict[str, list[Path]] = {}
    teacher: dict[str, list[dict[str, TaskScore]]] = {}
    student: dict[str, list[dict[str, TaskScore]]] = {}
    for variant in variants:
        for seed in variant.seeds:
            if args.seeds is not None and seed not in args.seeds:
                continue
            out = run_dir(args.out, variant, seed, args.steps)
            if not args.report_only:
                pretrain(args.out, variant, seed, args.steps)
            if not (out / "checkpoints" / f"step_{args.steps}").is_dir():
                continue
            runs.setdefault(variant.label, []).append(out)
            if args.pretrain_only:
                continue
            for weights, store in (("teacher", teacher), ("student", student)):
                if weights == "student" and variant not in MAIN:
                    continue
                loaded = load_encoder(out, weights=weights)
                embedder = EncoderEmbedder(loaded.encoder, loaded.stats or stats, num_frames=loaded.config.encoder.num_frames)
                check = variant is MAIN[0] and weights == "teacher" and seed == 1
                store.setdefault(variant.label, []).append(
                    prober.probe(f"{out} ({weights})", embedder, encoder_key(out, weights, args.steps), sklearn_check=check))

    if args.pretrain_only:
        return 0

    # Random encoders are paired with pre-training seeds: as many as the most-seeded variant has.
    random_seeds = MAIN_SEEDS[:max(2, max((len(outs) for outs in runs.values()), default=0))]
    baselines: dict[str, list[dict[str, TaskScore]]] = {}
    for arch in ("aape_tiny", "vit_tiny"):
        for seed in random_seeds:
            loaded = new_encoder(arch, seed=seed)
            embedder = EncoderEmbedder(loaded.encoder, stats, num_frames=loaded.config.encoder.num_frames)
            baselines.setdefault(f"{arch}, random init", []).append(
                prober.probe(f"random {arch} {seed}", embedder, {"kind": "aape", "source": f"random {arch} {seed}"}, sklearn_check=seed == 1))
    baselines["log-mel statistics"] = [prober.probe("log-mel", LogMelEmbedder(stats), {"kind": "logmel", "stats": [stats.mean, stats.std]},
                                                    sklearn_check=True)]

    stems = {} if args.no_stems else stem_probes(prober, runs, stats, args.steps)

    pretrain_seconds = sum(train_seconds(o) for o in {o for outs in runs.values() for o in outs})
    write_report(args, teacher, student, baselines, stems, runs, pretrain_seconds, prober.seconds, time.monotonic() - started)
    return 0


STEM_LABELS = ("aape_tiny", "dev aape_tiny, ffn+clip targets, patch stem")
"""The runs whose stems are probed alone."""


def stem_probes(prober: Prober, runs: dict[str, list[Path]], stats: FeatureStats, steps: int) -> dict[str, list[dict[str, TaskScore]]]:
    """Pitch and instrument from the stem's parts, for the first seed of the runs in
    :data:`STEM_LABELS`: at random initialisation (the run's own architecture, initialised with
    its seed), after 1/6 of the run and at its end (teacher weights)."""
    from aape_plugin.models.factory import create_encoder

    out: dict[str, list[dict[str, TaskScore]]] = {}
    early = steps // 6
    for label in STEM_LABELS:
        for o in runs.get(label, [])[:1]:
            final = load_encoder(o, step=steps)
            torch.manual_seed(int(o.name.removeprefix("seed")))
            random = create_encoder(final.config.encoder, drop_path=0.0).eval()
            encoders = {"random init": (random, {**encoder_key(o, "teacher", steps), "random_init": True})}
            if (o / "checkpoints" / f"step_{early}").is_dir():
                encoders[f"step {early}"] = (load_encoder(o, step=early).encoder, encoder_key(o, "teacher", early))
            encoders[f"step {steps}"] = (final.encoder, encoder_key(o, "teacher", steps))
            parts = ("standard", "alias", "fused") if final.config.encoder.stem.kind == "aape" else ("standard",)
            for when, (encoder, key) in encoders.items():
                for part in parts:
                    embedder = StemEmbedder(encoder, final.stats or stats, part=part, num_frames=final.config.encoder.num_frames)
                    name = f"{label}, {when}: {part}"
                    out.setdefault(name, []).append(prober.probe(name, embedder, {**key, "kind": "stem", "part": part}, tasks=FREQUENCY_TASKS))
    return out


def write_report(args, teacher, student, baselines, stems, runs, pretrain_seconds: float, probe_seconds: float, elapsed: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    docs: Path = args.docs
    (docs / "figures").mkdir(parents=True, exist_ok=True)
    m = machine()
    sections: list[str] = []

    def stmt(a: list, b: list, tasks: tuple[str, ...], what: str) -> str:
        if not a or not b:
            return f"- {what}: not run yet."
        return f"- {what}, points: {compare(a, b, tasks).describe()}."

    # Dev phase: the choices, on validation.
    dev = {v.label.removeprefix("dev "): teacher[v.label] for v in DEV if v.label in teacher}
    if dev:
        base_valid = {k: v for k, v in baselines.items()}
        lines = []
        pairs = [
            ("aape_tiny, ffn+clip targets, clip stem (masked input zeroed)", "aape_tiny, previous objective", "targets, AaPE"),
            ("vit_tiny, ffn+clip targets", "vit_tiny, previous objective", "targets, plain stem"),
            ("aape_tiny, ffn+clip targets, clip stem sees the full input", "aape_tiny, ffn+clip targets, clip stem (masked input zeroed)",
             "clip-context stem: full input vs masked input zeroed"),
            ("aape_tiny, ffn+clip targets, patch stem", "aape_tiny, ffn+clip targets, clip stem (masked input zeroed)",
             "patch-local vs clip-context stem (zeroed)"),
            ("aape_tiny, ffn+clip targets, patch stem", "aape_tiny, ffn+clip targets, clip stem sees the full input",
             "patch-local vs clip-context stem (full input)"),
            ("aape_tiny, ffn+clip targets, patch stem", "vit_tiny, ffn+clip targets", "AaPE (patch stem) vs plain stem"),
            ("aape_tiny, ffn+clip targets, patch stem", "aape_tiny, previous objective",
             "all three changes together (ffn + clip targets, patch stem) vs the previous objective, AaPE"),
        ]
        for a, b, what in pairs:
            if a in dev and b in dev:
                lines.append(f"- {what} (`{a}` minus `{b}`), mean over tasks: {compare(dev[a], dev[b], TASKS, 'valid').describe()}; "
                             f"pitch and instrument: {compare(dev[a], dev[b], FREQUENCY_TASKS, 'valid').describe()}.")
        sections.append("## How the defaults were chosen (validation splits only)\n\n"
                        f"Two pre-training seeds each, {args.steps} steps, teacher encoders, validation accuracy (%) of the "
                        "converged probe, with paired bootstrap 95% intervals over validation clips and seeds. The test splits "
                        "were not looked at for these choices.\n\n" + score_table({**dev, **base_valid}, "valid") + "\n\n" + "\n".join(lines) + "\n")

    main = {v.label: teacher[v.label] for v in MAIN + ABLATIONS if v.label in teacher}
    checks = [abs(per_seed[0][t].test - per_seed[0][t].sklearn_test) for per_seed in {**teacher, **baselines}.values()
              for t in TASKS if per_seed[0][t].sklearn_test is not None]
    check_line = (f"The probe was checked against scikit-learn's `LogisticRegression` tuned on the same validation split over the same "
                  f"penalty grid, on the same features, for {len(checks)} (model, task) pairs: largest test-accuracy difference "
                  f"{100 * max(checks):.2f} points." if checks else "")
    if main:
        table = score_table({**main, **baselines}, "test")
        students = score_table({f"{k} (student)": v for k, v in student.items() if k in ("aape_tiny", "vit_tiny")}, "test")
        a, v = main.get("aape_tiny", []), main.get("vit_tiny", [])
        ra, rv = baselines.get("aape_tiny, random init", []), baselines.get("vit_tiny, random init", [])
        claims = [
            stmt(a, ra, TASKS, "aape_tiny pre-trained minus randomly initialised, mean over the five tasks"),
            stmt(v, rv, TASKS, "vit_tiny pre-trained minus randomly initialised, mean over the five tasks"),
            stmt(a, v, TASKS, "aape_tiny minus vit_tiny (both pre-trained), mean over the five tasks"),
            stmt(a, v, FREQUENCY_TASKS, "aape_tiny minus vit_tiny, mean over pitch and instrument"),
        ]
        claims += [stmt(a, v, (t,), f"aape_tiny minus vit_tiny on {SHORT[t]}") for t in TASKS]
        claims += [stmt(ra, rv, FREQUENCY_TASKS, "random aape_tiny minus random vit_tiny, pitch and instrument")]
        for arch in ("aape_tiny", "vit_tiny"):
            if arch in student:
                claims.append(stmt(student[arch], teacher[arch], TASKS, f"{arch}: student minus EMA teacher, mean over tasks"))
        ablation_lines = []
        for variant in ABLATIONS:
            against = "aape_tiny, no contrastive term" if variant.label == "aape_tiny, one mask clone, no contrastive term" else variant.arch
            ablation_lines.append(stmt(main.get(against, []), main.get(variant.label, []), TASKS,
                                       f"{against} minus ({variant.label}) [{variant.note}]"))

        fig, ax = plt.subplots(figsize=(11, 4), constrained_layout=True)
        shown = {**main, **baselines}
        width = 0.8 / len(shown)
        for i, (name, per_seed) in enumerate(shown.items()):
            means = [100 * statistics.fmean(s[t].test for s in per_seed) for t in TASKS]
            ax.bar([k + i * width for k in range(len(TASKS))], means, width, label=name)
        ax.set_xticks([k + 0.4 - width / 2 for k in range(len(TASKS))], [SHORT[t] for t in TASKS])
        ax.set_ylabel("linear probe test accuracy (%)")
        ax.legend(fontsize=6, ncol=3)
        fig.savefig(docs / "figures" / "study_probe.png", dpi=110)
        plt.close(fig)

        sections.insert(0, "## In short (test splits, paired bootstrap 95% intervals)\n\n" + "\n".join([
            stmt(a, ra, TASKS, "Pre-trained `aape_tiny` minus its random initialisation, mean over the five tasks"),
            stmt(a, v, TASKS, "AaPE minus the plain stem (`aape_tiny` minus `vit_tiny`, both pre-trained), mean over the five tasks"),
            stmt(a, v, FREQUENCY_TASKS, "AaPE minus the plain stem on the frequency-structured tasks (pitch and instrument)"),
        ]) + "\n")
        sections.append(f"""## Results (test splits)

Teacher encoders; a cell is the mean +- standard deviation over pre-training seeds (random
encoders: initialisation seeds) of test accuracy (%).

{table}

![probe results](figures/study_probe.png)

Student encoders of the same runs:

{students}

**Differences, with paired bootstrap 95% intervals** (test clips and pre-training seeds
resampled; "a tie" when the interval contains zero):

{chr(10).join(claims)}

**Ablations** (mean over the five tasks, test):

{chr(10).join(ablation_lines)}
""")

    if check_line:
        sections.append(f"## The probe converged\n\n{check_line}\n")

    if stems:
        rows = [[name, str(len(per_seed))] + [cell([s[t].test for s in per_seed]) for t in FREQUENCY_TASKS] for name, per_seed in stems.items()]
        sections.append(f"""## Where the information is: the stem alone

Pitch and instrument test accuracy (%) of the converged probe on the stem's output alone (no
ViT): the conv branch (`standard`), the Adaptive SBLU's features (`alias`) and the fused tokens,
at random initialisation, after {args.steps // 6} steps and after {args.steps} (teacher weights;
first seed).

{markdown_table(["stem part", "seeds", "pitch", "instrument"], rows)}
""")

    if runs:
        health_rows, keys, seen = [], [], set()
        for label, outs in runs.items():
            if tuple(outs) in seen:  # a main variant whose runs are a dev variant's
                continue
            seen.add(tuple(outs))
            values = [final_health(o) for o in outs]
            keys = list(values[0])
            health_rows.append([label] + [f"{statistics.fmean(v[k] for v in values):.3f}" for k in keys])
        sections.append(f"""## Representation health at the end of pre-training

Mean over seeds of the last logged values (`metrics/train.jsonl`; `docs/design.md` says what
each means).

{markdown_table(["run", *keys], health_rows)}
""")

    (docs / "results.json").write_text(json.dumps({
        "steps": args.steps, "tasks": TASKS,
        "teacher": {k: [{t: s.__dict__ | {"correct": None, "valid_correct": None} for t, s in r.items()} for r in v] for k, v in teacher.items()},
        "student": {k: [{t: s.__dict__ | {"correct": None, "valid_correct": None} for t, s in r.items()} for r in v] for k, v in student.items()},
        "baselines": {k: [{t: s.__dict__ | {"correct": None, "valid_correct": None} for t, s in r.items()} for r in v] for k, v in baselines.items()},
    }, indent=1) + "\n")

    text = f"""# Results: does AaPE pre-training help? (study corpus, CPU scale)

Command: `make study` (= `python -m benchmarks.study`; the defaults were chosen with
`python -m benchmarks.study --phase dev`), which rewrites this page, `docs/results.json` and
`docs/figures/study_probe.png`. Machine: {m['cpu']}, {m['cpu_count']} cores, torch {m['torch']};
{m['date']}. Budget: {pretrain_seconds / 3600:.1f} hours of pre-training ({len({o for v in runs.values() for o in v})} runs,
from their logs) and {probe_seconds / 3600:.1f} hours of probing in this invocation, which took
{elapsed / 3600:.1f} hours in all (finished runs, embeddings and probes are reused).

**Setting.** `aape_tiny` and `vit_tiny` (D 128, 4 layers, 80 x 96 log-mel, 4 mask clones;
identical but for the stem) pre-trained with the `study` preset for {args.steps} steps (16 clips per
step) on the study corpus' unlabelled pool (`make study-corpus`: real audio from Debian packages,
no clip or source of any validation or test group). Five probe tasks with at least 300 test
clips each, every split by source (instrument, voice, kit, word): see `docs/data.md`. The probe
is the converged one (`probe.mode: logistic`: L2-regularised logistic regression by L-BFGS, its
penalty chosen on the validation split); clips are embedded whole ({CLIP_SECONDS:g} s: two encoder
windows, averaged).

{chr(10).join(sections)}

**What this does not say.** A 0.9M-parameter encoder pre-trained for minutes on about four
and a half hours of audio is not AudioSet pre-training of ViT-B; the keyword task is synthetic speech; the
language task is one speaker per language. Use the numbers to judge the recipe and the
implementation, not the paper's claims at its scale.
"""
    (docs / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
