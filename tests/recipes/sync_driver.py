"""Runs ``fairseq2 recipe run ARGS`` in this process with every training step observed by
:class:`tests.recipes.host_sync.HostSyncs`, and writes what each step would wait for.

    python -m tests.recipes.sync_driver REPORT_DIR recipe run aape_pretrain OUT ...

The recipe, fairseq2's trainer, the data and the model are the real ones; only
``Trainer._run_step`` and ``Trainer._run_post_step`` are wrapped, so that each step (moving the
batch, forward, loss, backward, clipping, the optimiser step and its hooks, the schedule, the
metrics, and the post-step checkpoint, publishing and validation decisions) runs inside the
detector. ``AAPE_SYNC_FAULTS`` (JSON: ``{"step": ["place", "fault"]}``) injects one known host
sync into a step, in the loss, the model, the EMA update or the optimiser step, so that a test
can show each one is seen. ``REPORT_DIR/rank_<r>.json`` maps step numbers to their syncs.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from tests.recipes.host_sync import HostSyncs

FAULTS: dict[str, Callable[[Tensor], object]] = {
    "item": lambda t: t.reshape(-1)[0].item(),
    "tolist": lambda t: t.reshape(-1)[:2].tolist(),
    "cpu": lambda t: t.cpu(),
    "to_cpu": lambda t: t.to("cpu"),
    "where": lambda t: torch.where(t > 0),
    "nonzero": lambda t: (t > 0).nonzero(),
    "mask_index": lambda t: t[t > 0],
    "mask_assign": lambda t: t.clone().__setitem__(t > 0, 0.0),
    "blocking_copy": lambda t: torch.ones(2).to(t.device),
}
"""Each a host sync on a GPU, applied to a device tensor of the step."""

PLACES = ("loss", "model", "ema", "optimizer")


def _fault(plan: dict[str, list[str]], step: int, place: str, tensor: Tensor) -> None:
    wanted = plan.get(str(step))
    if wanted and wanted[0] == place:
        with torch.no_grad():
            FAULTS[wanted[1]](tensor.detach())


@contextmanager
def _faults_installed(plan: dict[str, list[str]], current: Callable[[], int]) -> Iterator[None]:
    from aape_plugin.losses import AapeCriterion
    from aape_plugin.models.ssl_model import AapeSslModel

    criterion_call, forward, update_teacher = AapeCriterion.__call__, AapeSslModel.forward, AapeSslModel.update_teacher

    def criterion_with_fault(self: AapeCriterion, output: Any) -> Any:
        loss = criterion_call(self, output)
        _fault(plan, current(), "loss", torch.stack([loss.patch, loss.global_, loss.contrastive]))
        return loss

    def forward_with_fault(self: AapeSslModel, *args: Any, **kwargs: Any) -> Any:
        output = forward(self, *args, **kwargs)
        if self.training:
            _fault(plan, current(), "model", output.embeddings)
        return output

    def update_teacher_with_fault(self: AapeSslModel, *args: Any, **kwargs: Any) -> Any:
        result = update_teacher(self, *args, **kwargs)
        _fault(plan, current(), "ema", next(self.teacher.parameters()))
        return result

    def optimizer_hook(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if grads:
            _fault(plan, current(), "optimizer", grads[0])

    AapeCriterion.__call__, AapeSslModel.forward, AapeSslModel.update_teacher = (  # type: ignore[method-assign]
        criterion_with_fault, forward_with_fault, update_teacher_with_fault)
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    handle = register_optimizer_step_pre_hook(optimizer_hook)
    try:
        yield
    finally:
        handle.remove()
        AapeCriterion.__call__, AapeSslModel.forward, AapeSslModel.update_teacher = (  # type: ignore[method-assign]
            criterion_call, forward, update_teacher)


def main(argv: list[str]) -> int:
    from aape_plugin.cli import main as cli_main  # imports fairseq2 in the order it needs

    from fairseq2.trainer import Trainer

    report_dir, args = Path(argv[0]), argv[1:]
    plan = json.loads(os.environ.get("AAPE_SYNC_FAULTS", "{}"))
    rank = int(os.environ.get("RANK", "0"))
    steps: dict[int, list[str]] = {}
    state: dict[str, Any] = {"syncs": None, "step": 0}

    run_step, run_post_step = Trainer._run_step, Trainer._run_post_step

    def syncs_of(trainer: Trainer) -> HostSyncs:
        if state["syncs"] is None:
            state["syncs"] = HostSyncs(trainer._gangs.device)
        syncs: HostSyncs = state["syncs"]
        # Kept on the host by design: the clips' indices (mask seeds) and AdamW's step counts.
        syncs.keep_on_host(b.indices for b in (trainer._batches or []) if b.indices is not None)
        syncs.keep_on_host(s["step"] for s in trainer._optimizer.state.values() if isinstance(s.get("step"), Tensor))
        return syncs

    def observed_step(self: Trainer, progress_task: Any) -> Any:
        state["step"] = self._step_nr + 1
        syncs = syncs_of(self)
        with syncs.observe():
            result = run_step(self, progress_task)
        steps.setdefault(state["step"], []).extend(syncs.take())
        return result

    def observed_post_step(self: Trainer) -> Any:
        syncs = syncs_of(self)
        with syncs.observe():
            result = run_post_step(self)
        steps.setdefault(self._step_nr, []).extend(syncs.take())
        return result

    Trainer._run_step, Trainer._run_post_step = observed_step, observed_post_step  # type: ignore[method-assign]
    try:
        with _faults_installed(plan, lambda: state["step"]):
            code = cli_main(args)
    finally:
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / f"rank_{rank}.json").write_text(json.dumps({str(k): v for k, v in sorted(steps.items())}, indent=1))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
