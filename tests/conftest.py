"""Shared test settings and fixtures."""

import os

import pytest

# A failure inside the plugin's fairseq2 extension must fail the tests, not only log a warning.
os.environ.setdefault("FAIRSEQ2_EXTENSION_TRACE", "1")

# Every test runs on CPU, on a GPU machine too. fairseq2 takes its device from FAIRSEQ2_DEVICE
# before LOCAL_RANK (which would send torchrun's rank 1 to cuda:1), and hidden GPUs pin code that
# asks torch itself. Set before torch initialises CUDA; subprocesses inherit both (and
# tests.recipes.helpers.cpu_env sets them again where a test builds an environment).
os.environ["FAIRSEQ2_DEVICE"] = "cpu"
os.environ["CUDA_VISIBLE_DEVICES"] = ""


@pytest.fixture(scope="session")
def fairseq2_initialised() -> None:
    """fairseq2's library container (with this plugin's extension), once per test session."""
    from fairseq2 import init_fairseq2
    from fairseq2.error import InvalidOperationError

    try:
        init_fairseq2()
    except InvalidOperationError:  # already initialised in this process
        pass


SHORT_RUN_ARGS = ["--preset", "demo", "--no-rich", "--config", "regime.checkpoint_every_n_steps=2", "regime.keep_last_n_checkpoints=2",
                  "regime.publish_metrics_every_n_steps=2", "regime.validate_every_n_steps=4", "lr_scheduler.config.num_warmup_steps=1",
                  "dataset.batch_size=4"]
"""A short demo pre-training (with ``regime.num_steps=N``): checkpoints every 2 steps."""


@pytest.fixture(scope="session")
def short_run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A real 4-step pre-training run with checkpoints at steps 2 and 4, shared by the tests of a
    worker (read it, or copy it before changing anything)."""
    from tests.recipes.helpers import run_cli

    out = tmp_path_factory.mktemp("short_run") / "run"
    proc = run_cli("recipe", "run", "aape_pretrain", str(out), *SHORT_RUN_ARGS, "regime.num_steps=4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The ``quick`` preset's smoke run as a user starts it (10 steps on the demo data, nothing
    overridden), inside a folder of runs like ``runs/demo``; read it, do not change it."""
    from tests.recipes.helpers import run_cli

    out = tmp_path_factory.mktemp("runs") / "pretrain-quick"
    proc = run_cli("recipe", "run", "aape_pretrain", str(out), "--preset", "quick", "--no-rich")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (out / "stderr.log").write_text(proc.stderr)
    return out
