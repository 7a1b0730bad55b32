"""Under torchrun only rank 0 checks a run folder and records the run; the other ranks wait for
that record before fairseq2 writes their logs into the folder (were they first, rank 0 would
find the new folder "not empty, holding no run" and refuse it)."""

import json
import threading
import time
from pathlib import Path

import pytest

from tests.recipes.test_recipes_owned_folders import claim


def test_another_rank_waits_for_rank_0s_record_of_the_run(fairseq2_initialised: None, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from aape_plugin.cli.ownership import OWNER_FILE

    out = tmp_path / "run"
    out.mkdir()
    (out / "logs").mkdir()
    (out / "logs" / "rank_1.log").write_text("an earlier start of this rank\n")  # what fairseq2 writes first
    record: dict[str, object] = {}

    def rank_0_records_later() -> None:
        time.sleep(1.0)
        record["written_at"] = time.monotonic()
        (out / OWNER_FILE).write_text(json.dumps(record["expected"]))

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")

    # Rank 0 writes this configuration's record a second after rank 1 starts waiting for it.
    from aape_plugin.cli import ownership

    original = ownership.await_record

    def capture(folder: Path, recipe: str, config: dict, timeout: float | None = None) -> None:
        record["expected"] = {"recipe": recipe, "config": config}
        threading.Thread(target=rank_0_records_later).start()
        original(folder, recipe, config, timeout=10.0)

    monkeypatch.setattr(ownership, "await_record", capture)
    made = claim(out, "aape_pretrain", "demo")
    assert time.monotonic() >= record["written_at"]  # it returned only once rank 0 had recorded the run
    assert not made.new_run and made.folder == out.resolve()


def test_another_rank_gives_up_in_one_line_when_rank_0_never_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aape_plugin.cli.ownership import OWNER_FILE, await_record
    from aape_plugin.cli.recipes import CliError

    monkeypatch.setenv("RANK", "1")
    (tmp_path / OWNER_FILE).write_text(json.dumps({"recipe": "aape_pretrain", "config": {"regime": {"num_steps": 5}}}))
    with pytest.raises(CliError, match=r"rank 1: rank 0 did not record this run in .*recipe.json within 0.5 s \(it refused"):
        await_record(tmp_path, "aape_pretrain", {"regime": {"num_steps": 6}}, timeout=0.5)  # another run's record
    await_record(tmp_path, "aape_pretrain", {"regime": {"num_steps": 5}}, timeout=0.5)  # its own: no wait
