"""The GPU check (``make gpu-check``) works up to the device: without CUDA it writes nothing,
and its CPU run goes through every part, the budget and the page."""

import json

import pytest
import subprocess
import sys
from pathlib import Path

from tests.recipes.helpers import REPO, cpu_env


def gpu_check(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks.gpu", *args], capture_output=True, text=True,
                          cwd=REPO, env=cpu_env(), timeout=timeout)


def test_without_cuda_it_says_so_and_writes_nothing(tmp_path: Path) -> None:
    proc = gpu_check("--out", str(tmp_path / "gpu.md"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "needs a CUDA GPU" in proc.stdout and "nothing was written" in proc.stdout
    assert not list(tmp_path.iterdir())


def test_a_cpu_run_must_not_write_the_gpu_page() -> None:
    proc = gpu_check("--cpu")
    assert proc.returncode == 2 and "--cpu needs --out" in proc.stderr


def test_parts_that_do_not_fit_the_budget_are_skipped_and_reported(tmp_path: Path) -> None:
    out = tmp_path / "gpu.md"
    proc = gpu_check("--cpu", "--out", str(out), "--budget", "0", "--parts", "step", "reader")
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads(out.with_suffix(".json").read_text())
    assert {name: p["status"] for name, p in record["parts"].items()} == {
        "step aape_tiny": "skipped", "step vit_tiny": "skipped", "reader": "skipped"}
    assert "0 s of the 0 s budget left" in out.read_text()


@pytest.mark.slow
def test_cpu_run_goes_through_the_parts(tmp_path: Path) -> None:
    # The ddp part is the pretrain part under torchrun (tested with the recipe); the compile
    # part is the step part with the family's compiler (next test), in processes like these.
    out = tmp_path / "gpu.md"
    proc = gpu_check("--cpu", "--out", str(out), "--parts", "step", "pretrain", "extract", "reader")
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads(out.with_suffix(".json").read_text())
    assert all(p["status"] == "ok" for p in record["parts"].values()), record["parts"]

    assert set(record["step"]) == {"aape_tiny", "vit_tiny"}
    for arch, r in record["step"].items():
        assert not r["compiled"] and r["device"] == "cpu" and r["num_clones"] == 4 and r["batch_size"] == 2
        assert r["median_step_seconds"] > 0 and r["clips_per_second"] == 2 / r["median_step_seconds"]
        assert all(0 < loss < 10 for loss in r["losses"]), (arch, r["losses"])
    assert record["step_ratios"]["time"] > 0 and record["step_ratios"]["memory"] is None  # no CUDA allocator

    run = record["pretrain"]
    assert run["returncode"] == 0 and run["device"] == "cpu" and run["processes"] == 1 and run["steps"] == [1, 2]
    assert "recipe run aape_pretrain" in run["command"] and "trainer.mixed_precision.dtype=bfloat16" in run["command"]
    assert set(record["reader"]["clips_per_second"]) == {"1", "2"}
    assert record["extract"]["returncode"] == 0 and record["extract"]["clips"] > 0, record["extract"]
    assert record["extract"]["peak_device_memory_bytes"] is None  # no CUDA allocator on CPU runs

    page = out.read_text()
    assert "no GPU (a CPU smoke run: not GPU figures)" in page and "| aape_tiny | eager |" in page
    assert "DDP: Not run: not asked for." in page


def test_compiled_step_runs_with_the_family_compiler() -> None:
    # `eager` is torch.compile without code generation (inductor needs minutes on 2 cores).
    import dataclasses

    from benchmarks.gpu import CPU_PLAN, part_step

    plan = dataclasses.replace(CPU_PLAN, compile_backend="eager")
    r = part_step(plan, "aape_tiny", True, "cpu")
    assert r["compiled"] and r["median_step_seconds"] > 0 and all(0 < loss < 10 for loss in r["losses"])


def test_a_part_past_its_limit_is_stopped() -> None:
    from benchmarks.gpu import run_part

    outcome = run_part("pretrain", ["pretrain", "--plan", "cpu", "--processes", "1", "--device", "cpu"], limit=2.0)
    assert outcome.status == "timed out" and outcome.note == "stopped at its limit of 2 s"
    assert outcome.seconds < 10
