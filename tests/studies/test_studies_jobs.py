"""The study's job runner: parallel runs, readiness, failures, and never one job twice."""

import fcntl
import sys
from pathlib import Path

from studies.common import Job, run_jobs


def writer(path: Path, text: str, *, fail: bool = False) -> list[str]:
    code = f"import pathlib, sys; pathlib.Path({str(path)!r}).write_text({text!r}); sys.exit({int(fail)})"
    return [sys.executable, "-c", code]


def test_jobs_run_when_ready_and_failures_are_reported(tmp_path: Path) -> None:
    first, second, bad = tmp_path / "first", tmp_path / "second", tmp_path / "bad"

    def pending() -> list[Job]:
        jobs = []
        if not first.exists():
            jobs.append(Job("first", writer(first, "1"), tmp_path / "logs" / "first.log"))
        elif not second.exists():  # ready only once the first has finished
            jobs.append(Job("second", writer(second, first.read_text() + "2"), tmp_path / "logs" / "second.log"))
        if not bad.exists():
            jobs.append(Job("bad", writer(bad, "x", fail=True), tmp_path / "logs" / "bad.log"))
        return jobs

    failed = run_jobs(pending, jobs=2, poll_seconds=0.05)
    assert second.read_text() == "12"  # it ran after, and saw, the first
    assert bad.exists() and failed == ["bad"]  # it ran once, failed, and was not retried


def test_a_job_another_process_runs_is_not_started_twice(tmp_path: Path) -> None:
    out = tmp_path / "out"
    log = tmp_path / "run.log"
    holder = open(log.with_suffix(".lock"), "ab")
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)  # "another study invocation" runs it
    calls = []

    def pending() -> list[Job]:
        calls.append(1)
        if len(calls) == 5:  # the other invocation finishes: the job is done, the lock released
            out.write_text("done elsewhere")
            holder.close()
        return [] if out.exists() else [Job("run", writer(out, "done here"), log)]

    assert run_jobs(pending, jobs=1, poll_seconds=0.02) == []
    assert out.read_text() == "done elsewhere" and len(calls) >= 5


def test_stopping_the_runner_stops_its_jobs(tmp_path: Path) -> None:
    # `kill` of a study invocation must not leave its runs going unlocked (another invocation
    # would then run them a second time into the same folder).
    import os
    import signal
    import subprocess
    import textwrap
    import time

    pid_file, log = tmp_path / "child.pid", tmp_path / "run.log"
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from studies.common import Job, run_jobs
        child = [sys.executable, "-c", "import os, time, pathlib; pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid())); time.sleep(60)"]
        run_jobs(lambda: [Job("sleeper", child, Path({str(log)!r}))], jobs=1, poll_seconds=0.05)
    """)
    runner = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2])
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.05)
    child = int(pid_file.read_text())
    runner.send_signal(signal.SIGTERM)
    runner.wait(timeout=20)
    time.sleep(0.5)
    try:
        os.kill(child, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive, "the job outlived its runner"
