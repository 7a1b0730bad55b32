"""Running the real console script in a subprocess, as a user does."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def console_script(name: str) -> list[str]:
    """An installed console script next to this interpreter."""
    script = Path(sys.executable).parent / name
    assert script.exists(), f"the console script is not installed at {script}"
    return [str(script)]


def cpu_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every process a test starts: on CPU whatever the machine (fairseq2's
    device and no visible GPU), a failing plugin registration fails, and the plugin is this
    checkout's (console scripts do not put the working directory on ``sys.path``, so another
    checkout installed in editable mode would be imported instead)."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "FAIRSEQ2_EXTENSION_TRACE": "1", "FAIRSEQ2_DEVICE": "cpu", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": path,
            **(extra or {})}


def fairseq2_command() -> list[str]:
    """The ``fairseq2`` console script."""
    return console_script("fairseq2")


def aape_command() -> list[str]:
    """The ``aape`` console script: the same command under a name no fairseq2 version uses."""
    return console_script("aape")


def run_cli(*args: str, timeout: int = 600, env: dict[str, str] | None = None, script: str = "fairseq2") -> subprocess.CompletedProcess:
    return subprocess.run(
        [*console_script(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cpu_env(env),
        cwd=REPO,
    )


def run_torchrun(*args: str, nproc: int = 2, timeout: int = 600) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=N -m aape_plugin ARGS`` (gloo on CPU)."""
    return subprocess.run(
        [*torchrun(), f"--nproc_per_node={nproc}", "-m", "aape_plugin", *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO, env=cpu_env(),
    )


def train_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics" / "train.jsonl").read_text().splitlines()]


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The error a user sees: exit code 2, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc.stderr


def torchrun() -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone"]
