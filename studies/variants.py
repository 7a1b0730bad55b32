"""The pre-training variants the studies compare: each is the ``study`` preset's ``aape_tiny``
pre-training with a few ``--config`` overrides, and one pre-training run of one is a folder.

Every variant spells out each option the study preset has changed since the variant was first
run (whether the Lambda Encoder trains, the alias target), so that a run started today is the run
its stored outcomes describe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from studies.common import Job, aape_command


def model_overrides(*, stem: str | None = None, targets: str) -> str:
    """One ``model.config_overrides`` (a second one would replace the first, not add to it)."""
    parts = ([f"encoder: {{stem: {{{stem}}}}}"] if stem else []) + [f"targets: {{{targets}}}"]
    return "model.config_overrides={" + ", ".join(parts) + "}"


NO_ALIAS = "alias_features: false, alias_visible: false"
"""No alias target: the paper's objective (the study preset has one)."""

SUBBAND = "alias_features: true, alias_norm: subband, alias_visible: false"
"""The alias target, normalised per subband, at the masked patches only."""

VISIBLE = "alias_features: true, alias_norm: subband, alias_visible: true"
"""The alias target at the masked and the visible patches: the study preset's."""

PATCH_NORM = "alias_features: true, alias_norm: patch, alias_visible: false"
"""The alias target normalised per patch (its subband's fixed pattern left in), masked patches only."""

STEMS: dict[str, str] = {
    "offsets": "pole_mode: offsets",
    "balanced_fusion": "fusion_balance: true",
    "offsets_balanced": "pole_mode: offsets, fusion_balance: true",
    "fixed_poles": "adaptive: false",
    "modulation_lambda": "lambda_modulation_input: true",
}
"""The variants whose encoder differs from the preset's (``encoder.stem`` options): fine-tuning one
must build the same encoder, which ``aape_finetune`` checks against the checkpoint."""

TRAINED_LAMBDA = "optimizer.config.lambda_lr_scale=1"
"""The Lambda Encoder trained at the full learning rate, as the paper trains it (the study preset freezes it)."""

VARIANTS: dict[str, tuple[str, ...]] = {
    # The paper's objective: Lambda Encoder trained, no alias target.
    "default": (TRAINED_LAMBDA, model_overrides(targets=NO_ALIAS)),
    # The Lambda Encoder frozen at its initialisation, or trained at a tenth of the rate.
    "frozen_lambda": ("optimizer.config.lambda_lr_scale=0", model_overrides(targets=NO_ALIAS)),
    "slow_lambda": ("optimizer.config.lambda_lr_scale=0.1", model_overrides(targets=NO_ALIAS)),
    # Poles as learned offsets of fixed centres; Patch Fusion's two streams balanced; both.
    "offsets": (TRAINED_LAMBDA, model_overrides(stem=STEMS["offsets"], targets=NO_ALIAS)),
    "balanced_fusion": (TRAINED_LAMBDA, model_overrides(stem=STEMS["balanced_fusion"], targets=NO_ALIAS)),
    "offsets_balanced": (TRAINED_LAMBDA, model_overrides(stem=STEMS["offsets_balanced"], targets=NO_ALIAS)),
    # A target that includes the alias stream (normalised per patch), Lambda Encoder frozen or trained.
    "alias_target": (model_overrides(targets=PATCH_NORM),),
    "alias_target_trained": (TRAINED_LAMBDA, model_overrides(targets=PATCH_NORM)),
    # The alias target normalised per subband (without the subband's fixed pattern), at weights 1, 0.3 and 3.
    "alias_subband": (model_overrides(targets=SUBBAND),),
    "alias_subband_light": (model_overrides(targets=SUBBAND), "criterion.config.alias_weight=0.3"),
    "alias_subband_heavy": (model_overrides(targets=SUBBAND), "criterion.config.alias_weight=3"),
    # The student's own output tokens also predict the targets at the visible patches: the study preset.
    "alias_visible": (model_overrides(targets=VISIBLE),),
    # The study preset with the Lambda Encoder trained, as the paper trains it; and the fixed-pole
    # arm (one learned pole set per subband, no input dependence) under the same schedule: what
    # the input-dependent estimate adds is the difference between the two.
    "trained_visible": (TRAINED_LAMBDA, model_overrides(targets=VISIBLE)),
    "fixed_poles": (TRAINED_LAMBDA, model_overrides(stem=STEMS["fixed_poles"], targets=VISIBLE)),
    # A trained Lambda Encoder whose tokens also see each patch's modulation spectrum.
    "modulation_lambda": (TRAINED_LAMBDA, model_overrides(stem=STEMS["modulation_lambda"], targets=VISIBLE)),
}
"""``aape_tiny`` variants: name -> the ``--config`` overrides that make it."""



def finetune_overrides(variant: str) -> list[str]:
    """The ``aape_finetune`` overrides that build ``variant``'s encoder (none for the preset's),
    one dotted key per option: they merge into the task preset's ``model.config_overrides``
    (its ``num_classes``), where a whole mapping would replace it."""
    options = [item.split(":", 1) for item in STEMS.get(variant, "").split(",") if item.strip()]
    return [f"model.config_overrides.encoder.stem.{key.strip()}={value.strip()}" for key, value in options]


REFERENCE = "vit_tiny"
"""The plain-stem reference, pre-trained beside the variants with the preset as it is."""

RANDOM_SUFFIX = " random init"
ARCHS = ("aape_tiny", REFERENCE)
RANDOM_INITS = tuple(f"{arch}{RANDOM_SUFFIX}" for arch in ARCHS)
"""The untrained encoders of both architectures (initialisation seed k beside pre-training seed k)."""


def known_models() -> list[str]:
    """Every model name a study may list: the variants, the reference and the random initialisations."""
    return [*VARIANTS, REFERENCE, *RANDOM_INITS]


@dataclass(frozen=True)
class VariantRun:
    """One pre-training run: ``ROOT/<variant>_<steps>/seed<k>``."""

    variant: str
    steps: int
    seed: int

    @property
    def arch(self) -> str:
        return REFERENCE if self.variant == REFERENCE else "aape_tiny"

    @property
    def name(self) -> str:
        """The encoder's name in the stored outcomes."""
        return f"{self.variant}, {self.steps} steps, seed {self.seed}"

    def folder(self, root: Path) -> Path:
        return root / f"{self.variant}_{self.steps}" / f"seed{self.seed}"

    def finished(self, root: Path) -> bool:
        return (self.folder(root) / "checkpoints" / f"step_{self.steps}").is_dir()

    def job(self, root: Path) -> Job:
        out = self.folder(root)
        overrides = () if self.variant == REFERENCE else VARIANTS[self.variant]
        command = aape_command(
            "aape_pretrain", str(out), "--preset", "study", "--no-rich", "--model-arch", self.arch, "--config",
            f"common.seed={self.seed}", f"regime.num_steps={self.steps}", f"lr_scheduler.config.num_warmup_steps={self.steps // 10}",
            "regime.checkpoint_every_n_steps=500", "regime.keep_checkpoint_every_n_steps=1000", "common.torch.num_threads=1",
            *overrides,
        )
        return Job(f"pre-train {self.variant} {self.steps} steps seed {self.seed}", command, out.with_suffix(".log"))


def runs_of(steps: int, seeds: list[int], variants: list[str] | None = None) -> list[VariantRun]:
    """Every variant (or those named) at every seed, seed by seed."""
    chosen = variants or [*VARIANTS, REFERENCE]
    unknown = sorted(set(chosen) - {*VARIANTS, REFERENCE})
    if unknown:
        raise ValueError(f"Unknown variant(s) {unknown}; known: {[*VARIANTS, REFERENCE]}.")
    return [VariantRun(v, steps, s) for s in seeds for v in chosen]
