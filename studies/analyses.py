"""The studies that are not paired comparisons of per-clip outcomes, declared as data beside
:mod:`studies.experiments`: the encoders each one reads (pre-training runs of
:mod:`studies.variants`, trained by the runner when missing) and the measuring command it runs on
them. ``python -m studies.run NAME --out R`` trains and measures them like an experiment;
``python -m studies.render --all`` rebuilds their pages from their stored JSON.

* ``main_study``: ``make study`` (:mod:`studies.study`, protocol :class:`studies.common.StudySettings`:
  its own run layout under ``R``, with the all-label and pre-training-length lanes);
* ``stem_parts``: what each part of the stem keeps of the modulation rates (``docs/modulation.md``);
* ``shift_parts``: shift stability part by part, random initialisations (``docs/shift-parts.md``);
* ``pole_gradients``: which loss term moves the Lambda Encoder towards the rate (``docs/pole-gradients.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from studies.variants import REFERENCE, VariantRun


@dataclass(frozen=True, kw_only=True)
class Encoder:
    """A pre-trained teacher an analysis reads: a run, at its last step or at ``step``."""

    label: str
    run: VariantRun
    step: int | None = None

    def argument(self, root: Path) -> str:
        """``--run LABEL=FOLDER[@STEP]`` of :mod:`studies.modulation`."""
        return f"{self.label}={self.run.folder(root)}" + (f"@{self.step}" if self.step is not None else "")


@dataclass(frozen=True, kw_only=True)
class Analysis:
    """One analysis: its question, the encoders it reads, and the module that measures them."""

    name: str
    question: str
    module: str
    """What measures (``python -m MODULE ARGS``), given :meth:`argv`."""
    arguments: tuple[str, ...] = ()
    """Its fixed arguments (seeds, what to measure)."""
    encoders: tuple[Encoder, ...] = ()
    pages: tuple[str, ...] = ()
    """The pages (``DOCS/<page>``) it writes."""

    @property
    def trains_itself(self) -> bool:
        """The main study's runner trains its own runs; the others' runs are trained by :mod:`studies.run`."""
        return self.module == "studies.study"

    def runs(self) -> list[VariantRun]:
        """The pre-training runs it reads, each once, in the order declared."""
        return list(dict.fromkeys(e.run for e in self.encoders))

    def argv(self, root: Path, docs: Path | None, *, mode: str = "all") -> list[str]:
        """The module's command line: its runs under ``root``; ``docs``: where its pages go (none:
        measure and print only). ``mode``: ``all``, ``train`` or ``measure`` (only the main study's
        runner trains for itself)."""
        if self.trains_itself:
            flags = {"all": [], "train": ["--train-only"], "measure": ["--no-train"]}[mode]
            return ["--out", str(root), *flags, *(["--docs", str(docs)] if docs else [])]
        if self.module == "studies.modulation":
            return ["--out", str(root / "modulation"), *self.arguments, *(["--docs", str(docs)] if docs else []),
                    *(part for e in self.encoders for part in ("--run", e.argument(root)))]
        if self.module == "studies.pole_gradients":
            return [*self.arguments, *(["--out", str(docs / "pole-gradients.json"), "--page", str(docs / "pole-gradients.md")] if docs else [])]
        return [*self.arguments, *(["--docs", str(docs)] if docs else [])]


def _teacher(label: str, variant: str, steps: int = 3000, step: int | None = None) -> Encoder:
    return Encoder(label=label, run=VariantRun(variant, steps, 1), step=step)


MAIN_STUDY = Analysis(
    name="main_study",
    question="Where pre-training pays, and how it grows: aape_tiny against vit_tiny, fine-tuned and probed (docs/results.md).",
    module="studies.study",
    pages=("results.md", "results.json", "budget-check.md"),
)

STEM_PARTS = Analysis(
    name="stem_parts",
    question="Where the modulation rates are lost: each part of the stem, the ViT's blocks and shift stability, one seed per row.",
    module="studies.modulation",
    arguments=("--seeds", "1", "--threads", "1", "--layers", "--shift"),
    encoders=(
        _teacher("aape_tiny default, 3k steps", "default"),
        _teacher("aape_tiny frozen Lambda Encoder, 3k", "frozen_lambda"),
        _teacher("aape_tiny pole offsets, 3k", "offsets"),
        _teacher("vit_tiny, 3k steps", REFERENCE),
        _teacher("aape_tiny alias-feature target, 3k", "alias_subband"),
        *(_teacher(f"aape_tiny frozen Lambda Encoder, 30k run at {k}k", "frozen_lambda", 30_000, 1000 * k) for k in (1, 3, 10, 30)),
    ),
    pages=("modulation.md", "modulation.json"),
)

SHIFT_PARTS = Analysis(
    name="shift_parts",
    question="Which part of the stem keeps embeddings stable under sub-patch time shifts (random initialisations).",
    module="studies.shift_parts",
    arguments=("--seeds", "1", "2", "3", "--threads", "1"),
    pages=("shift-parts.md", "shift-parts.json"),
)

POLE_GRADIENTS = Analysis(
    name="pole_gradients",
    question="Which term of the objective moves the Lambda Encoder towards following the rate (at initialisation).",
    module="studies.pole_gradients",
    arguments=("--seeds", "1", "2", "3", "--batches", "8"),
    pages=("pole-gradients.md", "pole-gradients.json"),
)

ANALYSES: dict[str, Analysis] = {a.name: a for a in (MAIN_STUDY, STEM_PARTS, SHIFT_PARTS, POLE_GRADIENTS)}
