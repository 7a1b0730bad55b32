"""Every experiment of the studies, declared as data: what it trains, what it measures on which
split, which paired comparisons its page states, and where its page and per-clip outcomes go.

    python -m studies.run EXPERIMENT --out R [--train-only | --measure-only] [--docs docs]
    python -m studies.render EXPERIMENT --docs docs      # or --all

Model names: a variant of :data:`studies.variants.VARIANTS`, ``vit_tiny`` (the plain stem, the
preset as it is), ``aape_tiny random init`` / ``vit_tiny random init`` (initialisation seed k
beside pre-training seed k) and, in fine-tuning, ``VARIANT@STEPS`` for one pre-training run of
another length (fine-tuned with every fine-tuning seed at the rate its 3,000-step model chose).
``docs/objectives.md`` states the protocols these readings followed, and in which order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from studies.common import MODULATION_TASKS, TASKS
from studies.variants import REFERENCE, VariantRun, known_models

ALL_TASKS = (*MODULATION_TASKS, *TASKS)
RANDOM_AAPE = "aape_tiny random init"
RANDOM_VIT = f"{REFERENCE} random init"

Regime = Literal["probe", "finetune"]
"""``probe``: the converged linear probe with all labels on the frozen teacher; ``finetune``:
``aape_finetune`` with 10 training clips per class (:func:`studies.finetuning.few_label_overrides`)."""

Split = Literal["validation", "test", "fresh"]
"""What answers: the validation splits (a screen), the test splits (which served the design of
later experiments), or the modulation group's fresh test split (``docs/data.md``), which the
runner reads only with ``AAPE_STUDY_DIR`` naming its folder."""

Layout = Literal["paired", "per_task", "finetune", "screen"]
"""The page's tables: ``paired``, test accuracy per model and paired differences per task group
(modulation group, five tasks, pitch + instrument), with a long run; ``per_task``, the same for
one task group and each of its tasks, with the no-model rows; ``finetune``, fine-tuning test
accuracy, paired differences per group and the learning rates chosen; ``screen``, validation
accuracy with a :class:`ScreenRule`."""


@dataclass(frozen=True, kw_only=True)
class ScreenRule:
    """A validation screen's rule: each candidate's three-seed means against the reference's, and
    its modulation tasks against the random initialisation."""

    reference: str
    candidates: tuple[str, ...]
    random: str = RANDOM_AAPE
    mean_margin: float = 1.0
    """A candidate's modulation and five-task means at most this far below the reference's (points)."""
    task_margin: float = 3.0
    """No modulation task more than this far below the random initialisation (points)."""


@dataclass(frozen=True, kw_only=True)
class Experiment:
    """One experiment: its models, how they are trained and read, and its page."""

    name: str
    question: str
    """What it tests, in a line."""
    regime: Regime
    split: Split
    layout: Layout
    models: tuple[str, ...]
    """Every model the page compares, in the page's order (see the module's docstring for names)."""
    steps: int = 3000
    seeds: tuple[int, ...] = (1, 2, 3)
    """Pre-training seeds (probe) or fine-tuning seeds (fine-tuning seed k starts from pre-training seed k)."""
    tasks: tuple[str, ...] = ALL_TASKS
    """The tasks read (fine-tuning: run, for the models not in :attr:`tasks_by_model`)."""
    tasks_by_model: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """Fine-tuning: models run on other tasks than :attr:`tasks`."""
    probed_tasks: tuple[str, ...] | None = None
    """Probe: the tasks measured together (they key the measurement cache); default :attr:`tasks`."""
    comparisons: tuple[tuple[str, str], ...] = ()
    """``a`` minus ``b``, paired by seed (the same data order, and for one architecture the same initialisation)."""
    long_run: VariantRun | None = None
    """Probe: one longer pre-training run, compared unpaired (its intervals count the other model's
    seeds and the clips, not its own pre-training seed)."""
    long_comparisons: tuple[str, ...] = ()
    baselines: bool = False
    """Probe: also the no-model rows (log-mel statistics, the modulation spectrum)."""
    reuses: tuple[str, ...] = ()
    """Earlier readings' ``DOCS/<outcomes>.json`` whose stored outcomes stand in for the models of
    :attr:`models` they hold (those runs were scored and published before on the same clips):
    those models are neither trained nor measured again."""
    measurements: str = "measurements"
    """Probe: the cache folder under the runs' root."""
    pretrains: bool = True
    """``False``: the pre-training runs are linked into the root from elsewhere; the runner names none."""
    page: str | None = None
    """``DOCS/<page>.md`` (and ``.json``); ``None``: no page (a section of another's, or a screen printed only)."""
    outcomes: str | None = None
    """``DOCS/<outcomes>.json``: what the page is rebuilt from (a screen: its validation accuracies)."""
    head: str = ""
    """The page's text above its tables (a section's: its heading and paragraph)."""
    group_name: str = "modulation group"
    """``per_task``: the task group's name (its mean column, its comparison column; a section's key)."""
    sections: tuple[str, ...] = ()
    """Experiments whose tables follow this page's as sections, when their outcomes are stored."""
    rule: ScreenRule | None = None
    per_task_comparisons: bool = False
    """``finetune``: the paired differences also per task, beside the task groups (the earlier
    fine-tuning pages show the groups only)."""

    def model_tasks(self, model: str) -> tuple[str, ...]:
        """Fine-tuning: the tasks ``model`` is run on."""
        return dict(self.tasks_by_model).get(model, self.tasks)

    def row_names(self, model: str) -> list[str]:
        """Probe: the stored encoder names of ``model``'s seeds."""
        if model.endswith(" random init"):
            return [f"{model}, seed {s}" for s in self.seeds]
        return [f"{model}, {self.steps} steps, seed {s}" for s in self.seeds]

    def __post_init__(self) -> None:
        known = set(known_models())
        for model in (*self.models, *(m for m, _ in self.tasks_by_model)):
            base, _, steps = model.partition("@")
            if base not in known or (steps and not steps.isdigit()):
                raise ValueError(f"{self.name}: unknown model {model!r}; known: {sorted(known)} (fine-tuning may add @STEPS).")


# The Lambda Encoder options: the paper's objective against the Lambda Encoder frozen, and the plain stem.
LAMBDA_COMPARISONS = (
    ("frozen_lambda", "default"),
    ("frozen_lambda", REFERENCE),
    ("default", REFERENCE),
    ("frozen_lambda", RANDOM_AAPE),
    ("default", RANDOM_AAPE),
    (REFERENCE, RANDOM_VIT),
)

LAMBDA_OPTIONS = Experiment(
    name="lambda_options",
    question="Does freezing the Lambda Encoder keep what the stem sees (the probe on test)?",
    regime="probe", split="test", layout="paired",
    models=("default", "frozen_lambda", REFERENCE, RANDOM_AAPE, RANDOM_VIT),
    comparisons=LAMBDA_COMPARISONS,
    long_run=VariantRun("frozen_lambda", 30_000, 1),
    long_comparisons=(RANDOM_AAPE, "frozen_lambda", REFERENCE),
    page="objectives-test", outcomes="objectives-outcomes",
    head="""# Pre-training that keeps what the stem sees: step 4, the probe on test

Generated by `python -m studies.run lambda_options --out RUNS --docs docs` from the per-clip outcomes in
`docs/objectives-outcomes.json` (`python -m studies.render lambda_options` rebuilds this page from them alone; a test checks it
does, byte for byte). The protocol is `docs/objectives.md`: these are the models it names, 3,000
steps of the study's pre-training, pre-training seeds 1-3, the converged linear probe with all
labels. Test accuracy %, means over seeds; then paired differences (seeds pair by number: the same
data order, and for one architecture the same initialisation), points, with the 95% interval of
`aape_plugin/eval/seed_interval.py` (Student's t over seeds, plus the paired clip variance; `a tie
within ±2 points` when it holds zero and stays within 2 points of it, `inconclusive` when it holds
zero and reaches further). The 30,000-step row is one pre-training run of the chosen setup: its
comparisons count the other model's seeds and the clips, not its own pre-training seed. Low-label
fine-tuning, step 4's other half, is `docs/objectives-finetune.md`.

""",
)

LAMBDA_OPTIONS_FINETUNE = Experiment(
    name="lambda_options_finetune",
    question="Does freezing the Lambda Encoder keep what the stem sees (10-per-class fine-tuning on test)?",
    regime="finetune", split="test", layout="finetune",
    models=(RANDOM_AAPE, RANDOM_VIT, "default", "frozen_lambda", REFERENCE, "frozen_lambda@30000"),
    tasks=MODULATION_TASKS,
    tasks_by_model=(("default", ALL_TASKS), ("frozen_lambda", ALL_TASKS), ("frozen_lambda@30000", ALL_TASKS)),
    comparisons=(
        ("frozen_lambda", RANDOM_AAPE),
        ("frozen_lambda", REFERENCE),
        ("frozen_lambda", "default"),
        (REFERENCE, RANDOM_VIT),
        ("frozen_lambda@30000", RANDOM_AAPE),
        ("frozen_lambda@30000", REFERENCE),
        ("frozen_lambda@30000", "frozen_lambda"),
    ),
    page="objectives-finetune", outcomes="objectives-finetune-outcomes",
    head="""# Pre-training that keeps what the stem sees: step 4, low-label fine-tuning on test

Generated by `python -m studies.run lambda_options_finetune --out RUNS --measure-only --docs docs` from the per-clip
outcomes in `docs/objectives-finetune-outcomes.json` (`python -m studies.render lambda_options_finetune` rebuilds this page from them
alone; a test checks it does, byte for byte). The protocol is `docs/objectives.md`: the
`aape_finetune` recipe with 10 training clips per class (the study's low-label regime; the
modulation presets do not stretch time), the learning rate chosen per model and task on seed 1's
validation accuracy, the checkpoint by validation within each run, test scored once. Validation here
is the task's whole validation split, more labels than the 10 per class a model trains on, as in the
study so far (`docs/protocol.md` asks for 10 per class; not implemented yet). Fine-tuning seed k
starts from pre-training seed k (or the random initialisation of seed k); the 30,000-step row is one
pre-training run fine-tuned with seeds 1-3, so its intervals count fine-tuning seeds and clips only.
Test accuracy %, means over seeds; paired differences in points with the 95% interval of
`aape_plugin/eval/seed_interval.py` (`a tie within ±2 points` when it holds zero and stays within 2
points of it, `inconclusive` when it holds zero and reaches further). An empty cell: not every run
of it has finished.

""",
)

ALIAS_FEATURE_TARGET = Experiment(
    name="alias_feature_target",
    question="Does a target that includes the alias stream (normalised per subband) help (the probe on test)?",
    regime="probe", split="test", layout="paired",
    models=("alias_subband", "frozen_lambda", REFERENCE, RANDOM_AAPE, RANDOM_VIT),
    comparisons=(
        ("alias_subband", "frozen_lambda"),
        ("alias_subband", RANDOM_AAPE),
        ("alias_subband", REFERENCE),
        ("frozen_lambda", RANDOM_AAPE),
    ),
    long_run=VariantRun("alias_subband", 30_000, 1),
    long_comparisons=(RANDOM_AAPE, "alias_subband", REFERENCE),
    page="objectives-alias-test", outcomes="objectives-alias-outcomes",
    head="""# Pre-training that keeps what the stem sees: the alias target, the probe on test

Generated by `python -m studies.run alias_feature_target --out RUNS --docs docs` from the per-clip outcomes
in `docs/objectives-alias-outcomes.json` (`python -m studies.render alias_feature_target` rebuilds this page from them alone). The
protocol is rounds 2-4 of `docs/objectives.md`: the alias-feature target they chose on validation
(`alias_subband`) against the objective before it (`frozen_lambda`), the random initialisation and
the plain stem; 3,000 steps of the study's pre-training, pre-training seeds 1-3, the converged
linear probe with all labels. Test accuracy %, means over seeds; then paired differences (seeds pair
by number), points, with the 95% interval of `aape_plugin/eval/seed_interval.py` (`a tie within ±2
points` when it holds zero and stays within 2 points of it, `inconclusive` when it holds zero and
reaches further). A 30,000-step row, when present, is one pre-training run: its comparisons count
the other model's seeds and the clips, not its own pre-training seed. Low-label fine-tuning is
`docs/objectives-alias-finetune.md`.

""",
)

ALIAS_FEATURE_TARGET_FINETUNE = Experiment(
    name="alias_feature_target_finetune",
    question="Does a target that includes the alias stream help (10-per-class fine-tuning on test)?",
    regime="finetune", split="test", layout="finetune",
    models=(RANDOM_AAPE, "frozen_lambda", "alias_subband", REFERENCE, "alias_subband@30000"),
    tasks=MODULATION_TASKS,
    tasks_by_model=(("alias_subband", ALL_TASKS), ("frozen_lambda", ALL_TASKS), ("alias_subband@30000", ALL_TASKS)),
    comparisons=(
        ("alias_subband", "frozen_lambda"),
        ("alias_subband", RANDOM_AAPE),
        ("alias_subband", REFERENCE),
        ("frozen_lambda", RANDOM_AAPE),
        ("alias_subband@30000", RANDOM_AAPE),
        ("alias_subband@30000", REFERENCE),
        ("alias_subband@30000", "alias_subband"),
    ),
    page="objectives-alias-finetune", outcomes="objectives-alias-finetune-outcomes",
    head="""# Pre-training that keeps what the stem sees: the alias target, low-label fine-tuning on test

Generated by `python -m studies.run alias_feature_target_finetune --out RUNS --measure-only --docs docs` from the
per-clip outcomes in `docs/objectives-alias-finetune-outcomes.json` (`python -m studies.render alias_feature_target_finetune` rebuilds this
page from them alone). The protocol is rounds 2-4 of `docs/objectives.md`, fine-tuned exactly as
step 4 (`docs/objectives-finetune.md`, whose runs of the other models it reuses): 10 training clips
per class, the learning rate chosen per model and task on seed 1's validation accuracy, test scored
once. Test accuracy %, means over fine-tuning seeds; paired differences in points with the 95%
interval of `aape_plugin/eval/seed_interval.py` (`a tie within ±2 points` when it holds zero and
stays within 2 points of it, `inconclusive` when it holds zero and reaches further). An empty cell:
not every run of it has finished.

""",
)

VISIBLE_ALIAS_TARGET = Experiment(
    name="visible_alias_target",
    question="Do the encoder's own output tokens predicting the alias targets at the visible patches help (the probe on test)?",
    regime="probe", split="test", layout="paired",
    models=("alias_visible", "alias_subband", REFERENCE, RANDOM_AAPE, RANDOM_VIT),
    comparisons=(
        ("alias_visible", "alias_subband"),
        ("alias_visible", RANDOM_AAPE),
        ("alias_visible", REFERENCE),
    ),
    long_run=VariantRun("alias_visible", 30_000, 1),
    long_comparisons=(RANDOM_AAPE, "alias_visible", REFERENCE),
    reuses=("objectives-alias-outcomes",),
    page="objectives-visible-test", outcomes="objectives-visible-outcomes",
    head="""# Pre-training that keeps what the stem sees: the encoder's own alias target, the probe on test

Generated by `python -m studies.run visible_alias_target --out RUNS --docs docs` from the per-clip outcomes
in `docs/objectives-visible-outcomes.json` (`python -m studies.render visible_alias_target` rebuilds this page from them alone). The
protocol is round 5 of `docs/objectives.md`: `alias_visible` (the student's output tokens also
predict the alias targets at the visible patches), chosen on validation, against `alias_subband`
(the default it replaces), the random initialisation and the plain stem; 3,000 steps of the study's
pre-training, pre-training seeds 1-3, the converged linear probe with all labels. The rows of
`alias_subband`, `vit_tiny` and the random initialisations are the stored outcomes of rounds 2-4
(`docs/objectives-alias-outcomes.json`): the same test clips, scored then. Test accuracy %, means
over seeds; then paired differences (seeds pair by number), points, with the 95% interval of
`aape_plugin/eval/seed_interval.py` (`a tie within ±2 points` when it holds zero and stays within 2
points of it, `inconclusive` when it holds zero and reaches further). A 30,000-step row, when
present, is one pre-training run: its comparisons count the other model's seeds and the clips, not
its own pre-training seed. Low-label fine-tuning is `docs/objectives-visible-finetune.md`.

""",
)

VISIBLE_ALIAS_TARGET_FINETUNE = Experiment(
    name="visible_alias_target_finetune",
    question="Do the encoder's own output tokens predicting the alias targets help (10-per-class fine-tuning on test)?",
    regime="finetune", split="test", layout="finetune",
    models=(RANDOM_AAPE, "alias_subband", "alias_visible", REFERENCE, "alias_visible@30000"),
    tasks=MODULATION_TASKS,
    comparisons=(
        ("alias_visible", "alias_subband"),
        ("alias_visible", RANDOM_AAPE),
        ("alias_visible", REFERENCE),
        ("alias_visible@30000", RANDOM_AAPE),
        ("alias_visible@30000", REFERENCE),
        ("alias_visible@30000", "alias_visible"),
    ),
    reuses=("objectives-alias-finetune-outcomes",),
    page="objectives-visible-finetune", outcomes="objectives-visible-finetune-outcomes",
    head="""# Pre-training that keeps what the stem sees: the encoder's own alias target, low-label fine-tuning on test

Generated by `python -m studies.run visible_alias_target_finetune --out RUNS --measure-only --docs docs` from the
per-clip outcomes in `docs/objectives-visible-finetune-outcomes.json` (`python -m studies.render visible_alias_target_finetune` rebuilds this
page from them alone). The protocol is round 5 of `docs/objectives.md`, fine-tuned exactly as rounds
2-4: 10 training clips per class, the learning rate chosen per model and task on seed 1's validation
accuracy, test scored once. The rows of `alias_subband`, `vit_tiny` and the random initialisation
are the stored outcomes of rounds 2-4 (`docs/objectives-alias-finetune-outcomes.json`): the same
test clips, fine-tuned and scored then. Test accuracy %, means over fine-tuning seeds; paired
differences in points with the 95% interval of `aape_plugin/eval/seed_interval.py` (`a tie within ±2
points` when it holds zero and stays within 2 points of it, `inconclusive` when it holds zero and
reaches further). An empty cell: not every run of it has finished.

""",
)

VARIANT_SCREEN = Experiment(
    name="variant_screen",
    question="Validation accuracy of any variants beside the plain stem and the random initialisations (no page).",
    regime="probe", split="validation", layout="screen",
    models=(RANDOM_AAPE, RANDOM_VIT, *(v for v in known_models() if not v.endswith(" random init"))),
)
"""A screen printed and kept in ``ROOT/validation.json`` (``--variants`` and ``--seeds`` pick
some); the screens of ``docs/objectives.md`` are ``docs/objectives*-screen.json``."""

ADAPTIVE_MODELS = ("alias_visible", "trained_visible", "fixed_poles", "modulation_lambda")
"""The study preset, its Lambda Encoder trained, the fixed-pole arm, and the modulation-input Lambda Encoder."""

ADAPTIVE_SCREEN = Experiment(
    name="adaptive_screen",
    question="On validation: which adaptive variant passes the rule of the adaptive half of docs/objectives.md?",
    regime="probe", split="validation", layout="screen",
    models=(RANDOM_AAPE, RANDOM_VIT, *ADAPTIVE_MODELS),
    baselines=True,
    reuses=("objectives-visible-screen",),
    page="adaptive-poles-screen", outcomes="adaptive-poles-screen",
    head="""# The adaptive half: the screen on validation

Validation accuracy (%) of the converged probe, all labels; 3,000 steps of the `study` preset and its
variants (`docs/objectives.md`, "The adaptive half", and its amendment). Generated by
`python -m studies.render adaptive_screen` from `docs/adaptive-poles-screen.json`. Per task: AM rate, vibrato rate, roll rate, pitch, instrument, keywords, drums, language.

""",
    rule=ScreenRule(reference="alias_visible", candidates=("trained_visible", "fixed_poles", "modulation_lambda")),
)

FRESH_COMPARISONS = (
    ("trained_visible", "fixed_poles"),
    ("trained_visible", RANDOM_AAPE),
    ("trained_visible", "alias_visible"),
    ("modulation_lambda", "fixed_poles"),
    ("modulation_lambda", RANDOM_AAPE),
    ("modulation_lambda", "alias_visible"),
    ("fixed_poles", RANDOM_AAPE),
    ("alias_visible", RANDOM_AAPE),
    ("fixed_poles", "alias_visible"),
)
"""The protocol's comparisons on the fresh split, ``a`` minus ``b``, paired by seed; the last
(the fixed-pole stem against the frozen Lambda Encoder) was added after the probe's reading, as
the adaptive half asks when no trained variant is chosen: nothing was chosen on it."""

ADAPTIVE_FRESH_FIVE_TASKS = Experiment(
    name="adaptive_fresh_five_tasks",
    question="The adaptive variants on the five tasks' old test splits (used for design), beside the study preset.",
    regime="probe", split="test", layout="per_task",
    models=(*ADAPTIVE_MODELS, RANDOM_AAPE),
    tasks=TASKS, probed_tasks=ALL_TASKS, group_name="five tasks",
    comparisons=(
        ("trained_visible", "alias_visible"),
        ("modulation_lambda", "alias_visible"),
        ("fixed_poles", "alias_visible"),
        ("trained_visible", RANDOM_AAPE),
        ("modulation_lambda", RANDOM_AAPE),
    ),
    baselines=True,
    reuses=("objectives-visible-outcomes",),
    outcomes="adaptive-poles-five-outcomes",
    head="""
## The five tasks, on their old test splits (used for design)

From `docs/adaptive-poles-five-outcomes.json`: the variants' outcomes beside the study preset's and the random initialisations' stored in `docs/objectives-visible-outcomes.json` (the same test clips). These splits served the design of rounds 2-5: they describe these models, they do not answer a question on their own.

""",
)
"""A section of ``adaptive_fresh``'s page; the five tasks have no fresh split."""

ADAPTIVE_FRESH = Experiment(
    name="adaptive_fresh",
    question="On the fresh test split: does the input-dependent pole estimate add anything over fixed poles (the probe)?",
    regime="probe", split="fresh", layout="per_task",
    models=(*ADAPTIVE_MODELS, RANDOM_AAPE, RANDOM_VIT),
    tasks=MODULATION_TASKS,
    comparisons=FRESH_COMPARISONS,
    baselines=True,
    measurements="measurements-fresh",
    page="adaptive-poles-fresh", outcomes="adaptive-poles-fresh-outcomes",
    head="""# The adaptive half: the probe on the fresh test split

Generated by `python -m studies.run adaptive_fresh --out RUNS --docs docs` from the per-clip outcomes in
`docs/adaptive-poles-fresh-outcomes.json` (`python -m studies.render adaptive_fresh` rebuilds this page from them alone; a test checks it does).
The protocol is the last section of `docs/objectives.md`, written before any score of this split:
3,000 steps of the `study` preset and its variants, pre-training seeds 1-3; the converged linear
probe with all labels, trained on the study corpus' train split and tuned on its validation split;
tested on the modulation group's fresh test clips (`docs/data.md`: carriers from TimGM6mb, LMMS
and synthetic ranges no earlier reading touched), read once. Test accuracy %, means over seeds;
then paired differences, points, with the 95% interval of `aape_plugin/eval/seed_interval.py`
(Student's t over seeds plus the paired clip variance; `a tie within ±2 points` when it holds
zero and stays within 2 points of it, `inconclusive` when it holds zero and reaches further).

""",
    sections=("adaptive_fresh_five_tasks",),
)

ADAPTIVE_FRESH_FINETUNE = Experiment(
    name="adaptive_fresh_finetune",
    question="On the fresh test split: does the input-dependent pole estimate add anything over fixed poles (10-per-class fine-tuning)?",
    regime="finetune", split="fresh", layout="finetune",
    models=(*ADAPTIVE_MODELS, RANDOM_AAPE),
    tasks=MODULATION_TASKS,
    comparisons=FRESH_COMPARISONS,
    per_task_comparisons=True,
    pretrains=False,
    page="adaptive-poles-fresh-finetune", outcomes="adaptive-poles-fresh-finetune-outcomes",
    head="""# The adaptive half: low-label fine-tuning on the fresh test split

Generated by `python -m studies.run adaptive_fresh_finetune --measure-only --docs docs` (with
`AAPE_STUDY_DIR` naming the fresh split's folder) from the per-clip outcomes in
`docs/adaptive-poles-fresh-finetune-outcomes.json` (`python -m studies.render adaptive_fresh_finetune`
rebuilds this page from them alone). The protocol is the last section of `docs/objectives.md`, the
probe's other half (`docs/adaptive-poles-fresh.md`): 3,000 steps of the `study` preset and its
variants, the `aape_finetune` recipe with 10 training clips per class from the study corpus' train
split, the learning rate chosen per model and task on seed 1's validation accuracy (the study
corpus' validation split), the checkpoint by validation within each run, tested once on the
modulation group's fresh test clips. Fine-tuning seed k starts from pre-training seed k (or the
random initialisation of seed k). Test accuracy %, means over fine-tuning seeds; paired differences
in points with the 95% interval of `aape_plugin/eval/seed_interval.py` (`a tie within ±2 points`
when it holds zero and stays within 2 points of it, `inconclusive` when it holds zero and reaches
further). An empty cell: not every run of it has finished.

""",
)
"""Run under its own root (``--out ~/.cache/aape-fairseq2/study-runs/fresh-finetune``, holding links
to the pre-training run folders), with ``AAPE_STUDY_DIR`` naming the fresh split's folder."""

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    LAMBDA_OPTIONS, LAMBDA_OPTIONS_FINETUNE, ALIAS_FEATURE_TARGET, ALIAS_FEATURE_TARGET_FINETUNE,
    VISIBLE_ALIAS_TARGET, VISIBLE_ALIAS_TARGET_FINETUNE, VARIANT_SCREEN, ADAPTIVE_SCREEN,
    ADAPTIVE_FRESH, ADAPTIVE_FRESH_FIVE_TASKS, ADAPTIVE_FRESH_FINETUNE,
)}


def experiment(name: str) -> Experiment:
    """The declared experiment ``name`` (an unknown name lists the known ones)."""
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise ValueError(f"Unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}.") from None


def host_of(section: str) -> Experiment | None:
    """The experiment whose page carries ``section`` as a section (``None``: it has its own page or none)."""
    return next((e for e in EXPERIMENTS.values() if section in e.sections), None)
