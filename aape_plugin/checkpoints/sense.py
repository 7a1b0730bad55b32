"""State that passed every structural check, checked for sense before training uses it.

A trainer state is used as it comes: a NaN learning rate would train NaN into every weight and
save it with exit 0, a negative step re-trains and overwrites checkpoints, a huge one "finishes"
without training. So the trainer's step must lie in ``[0, num_steps]`` and be the step of its
folder, and every number of the learning-rate schedule, the loss scaler and the optimiser
(learning rates, betas, moments) must be finite.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import torch

from aape_plugin.checkpoints.errors import UnsafeCheckpointError

REFUSED = "refusing to resume from it"


def _refuse(file: Path, reason: str) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(file, reason, consequence=REFUSED)


def _numbers(value: object, where: str) -> Iterator[tuple[str, object]]:
    """Every number and tensor in ``value`` with where it lies (``_lr_scheduler.base_lrs[0]``)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _numbers(item, f"{where}[{i}]")
    elif isinstance(value, (int, float, torch.Tensor)) and not isinstance(value, bool):
        yield where, value


def _check_finite(file: Path, value: object, where: str, what: str) -> None:
    for place, number in _numbers(value, where):
        if isinstance(number, torch.Tensor):
            if number.is_floating_point() and not bool(torch.isfinite(number).all()):
                raise _refuse(file, f"holds a non-finite {what} ({place} has NaN or infinite values)")
        elif isinstance(number, float) and not math.isfinite(number):
            raise _refuse(file, f"holds a non-finite {what} ({place} = {number})")


def check_trainer_state(state: dict[str, object], file: Path, *, folder_step: int | None, num_steps: int) -> None:
    """Raises :class:`UnsafeCheckpointError` (one line naming ``file``) unless the trainer
    state's step lies in ``[0, num_steps]`` and equals ``folder_step`` (when the file lies in a
    ``step_N`` folder), and its schedule and loss scaler are finite."""
    step = state.get("_step_nr")
    if not isinstance(step, int) or isinstance(step, bool):
        raise _refuse(file, f"holds no step number (`_step_nr` is {type(step).__name__})")
    if not 0 <= step <= num_steps:
        shown = str(step) if len(str(step)) <= 20 else f"{str(step)[:20]}..."
        raise _refuse(file, f"holds the step {shown}, outside [0, {num_steps}] (regime.num_steps)")
    if folder_step is not None and step != folder_step:
        raise _refuse(file, f"holds the step {step}, but lies in the folder of step {folder_step}")
    _check_finite(file, state.get("_lr_scheduler"), "_lr_scheduler", "learning-rate schedule")
    _check_finite(file, state.get("_fp16_loss_scaler"), "_fp16_loss_scaler", "loss scale")


def check_optimizer_state(state: dict[str, object], file: Path) -> None:
    """Raises :class:`UnsafeCheckpointError` unless every hyper-parameter of every parameter
    group (learning rate, betas, eps, weight decay) and every moment is finite."""
    _check_finite(file, state.get("param_groups"), "param_groups", "optimiser setting")
    _check_finite(file, state.get("state"), "state", "optimiser moment")
