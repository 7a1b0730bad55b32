"""A pre-training step that does not publish metrics reads nothing back from the device.

On a GPU every host sync (``.item()``, ``.tolist()``, ``bool(t)``, ``.cpu()``, ``.to("cpu")``,
``nonzero``, one-argument ``torch.where``, a boolean-mask index or assignment, a blocking copy
of host memory to the device) stalls the pipeline until the device catches up. On the CPU
nothing waits, so ``tests/recipes/host_sync.py`` records where a GPU would, at the level of
every ATen operation and every Python tensor call, and ``tests/recipes/sync_driver.py`` runs the
real ``fairseq2 recipe run aape_pretrain`` with each step (batch to device, forward, loss,
backward, clipping, optimiser step with the EMA hook, schedule, metrics, post-step decisions)
inside it. The run's device is ``cpu:0``, a device object of its own, so that a copy to it and
a copy to ``"cpu"`` are told apart.

The first test injects each kind of sync into the loss, the model, the EMA update and the
optimiser step and shows the detector sees every one; the others run the defaults and the
non-default options that used to sync on every step (EAT's inverse-block masks, drawn on the
host; negatives gathered from every rank, which exchanged row counts) and find syncs on
publishing steps only. ``make gpu-check`` counts real syncs on a GPU with
``torch.cuda.set_sync_debug_mode``.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.recipes.helpers import REPO, cpu_env, torchrun
from tests.recipes.sync_driver import FAULTS, PLACES

# Real training runs with the sync detector (one per fault and place): `make test-slow` and CI run these.
pytestmark = pytest.mark.slow

EXPECTED = {"item": "item", "tolist": "tolist", "cpu": "cpu", "to_cpu": "to('cpu')", "where": "nonzero", "nonzero": "nonzero",
            "mask_index": "boolean-mask index", "mask_assign": "boolean-mask index", "blocking_copy": "blocking host-to-device copy"}
"""What the detector calls each injected fault."""

COMMON = ["--preset", "demo", "--no-rich", "--config", "common.cluster=none", "lr_scheduler.config.num_warmup_steps=1",
          "dataset.batch_size=4", "dataset.num_parallel_calls=1"]


def steps_syncs(tmp_path: Path, *config: str, faults: dict | None = None, nproc: int = 1, num_steps: int = 6,
                publish_every: int = 3) -> list[dict[int, list[str]]]:
    """Per rank: step number -> the host syncs the detector saw in that step."""
    regime = [f"regime.num_steps={num_steps}", f"regime.publish_metrics_every_n_steps={publish_every}",
              f"regime.checkpoint_every_n_steps={num_steps}", f"regime.validate_every_n_steps={num_steps}"]
    report = tmp_path / "syncs"
    driver = ["-m", "tests.recipes.sync_driver", str(report), "recipe", "run", "aape_pretrain", str(tmp_path / "run"), *COMMON, *regime, *config]
    command = [sys.executable, *driver] if nproc == 1 else [*torchrun(), f"--nproc_per_node={nproc}", *driver]
    env = cpu_env({"FAIRSEQ2_DEVICE": "cpu:0", "AAPE_SYNC_FAULTS": json.dumps(faults or {})})
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [{int(k): v for k, v in json.loads((report / f"rank_{r}.json").read_text()).items()} for r in range(nproc)]


def publishes(step: int, publish_every: int, num_steps: int) -> bool:
    return step % publish_every == 0 or step == num_steps


def test_each_injected_sync_is_seen_in_the_loss_the_model_the_ema_update_and_the_optimiser_step(tmp_path: Path) -> None:
    cases = [(place, fault) for place in PLACES for fault in FAULTS]
    plan = {str(step): list(case) for step, case in enumerate(cases, start=2)}
    num_steps = len(cases) + 3  # step 1 and the one before the last (publishing) step are clean
    (syncs,) = steps_syncs(tmp_path, faults=plan, num_steps=num_steps, publish_every=num_steps)
    assert syncs[1] == [] and syncs[num_steps - 1] == []
    for step, (place, fault) in enumerate(cases, start=2):
        assert syncs[step] and all(s == EXPECTED[fault] or s.startswith(EXPECTED[fault]) for s in syncs[step]), (place, fault, syncs[step])


@pytest.mark.parametrize("option", ["defaults", "inverse-block masks"])
def test_a_step_that_does_not_publish_reads_nothing_back(tmp_path: Path, option: str) -> None:
    config = {"defaults": [], "inverse-block masks": ["model.config_overrides={masking: {kind: inverse_block}}"]}[option]
    (syncs,) = steps_syncs(tmp_path, *config)
    for step, found in syncs.items():
        if publishes(step, 3, 6):
            continue
        assert found == [], (option, step, found)
    # Publishing steps read the stem's quantiles, the effective ranks and the metrics back: the
    # detector sees them (else the assertions above would prove nothing).
    assert {"cpu", "item"} <= set(syncs[3]), syncs[3]


@pytest.mark.slow
def test_negatives_gathered_from_every_rank_do_not_sync_either(tmp_path: Path) -> None:
    ranks = steps_syncs(tmp_path, "criterion.config.gather_negatives=true", nproc=2)
    for rank, syncs in enumerate(ranks):
        for step, found in syncs.items():
            if not publishes(step, 3, 6):
                assert found == [], (rank, step, found)
        assert "item" in syncs[3] or "bool" in syncs[3], syncs[3]
