"""The teacher's EMA decay schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from fairseq2.utils.validation import ValidationResult


@dataclass(kw_only=True)
class EmaConfig:
    """EMA decay rising from ``start`` to ``end`` along a half cosine, then constant."""

    start: float = 0.9998
    """Decay at step 0."""

    end: float = 0.99999
    """Decay from ``num_steps`` on."""

    num_steps: int | None = None
    """Steps of the cosine ramp (0: always ``end``; ``None``: the run's ``regime.num_steps``, so
    that a short run's teacher reaches ``end`` as the run ends instead of lagging behind)."""

    def validate(self) -> ValidationResult:
        """fairseq2 validates recipe configs through this (the ``Validatable`` protocol)."""
        result = ValidationResult()

        if not 0.0 <= self.start <= 1.0 or not 0.0 <= self.end <= 1.0:
            result.add_error(f"EMA decays must be in [0, 1], but start is {self.start} and end is {self.end}.")

        if self.num_steps is not None and self.num_steps < 0:
            result.add_error(f"`num_steps` must be >= 0, but is {self.num_steps} instead.")

        return result


def resolve_ema(config: EmaConfig, run_steps: int) -> EmaConfig:
    """``config`` with ``num_steps`` filled in from the run length when it is ``None``."""
    return config if config.num_steps is not None else replace(config, num_steps=run_steps)


def ema_decay(config: EmaConfig, step: int) -> float:
    """The decay at optimiser step ``step`` (derived from the step, so resuming is exact)."""
    if config.num_steps is None:
        raise ValueError("`num_steps` of the EMA schedule is unset; resolve it with `resolve_ema` first.")

    if config.num_steps == 0 or step >= config.num_steps:
        return config.end

    progress = max(step, 0) / config.num_steps

    return config.end - (config.end - config.start) * (1 + math.cos(math.pi * progress)) / 2
