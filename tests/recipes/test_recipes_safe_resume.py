"""A run folder from someone else cannot run code, write files or exhaust memory.

A run writes its states as state files (safetensors plus JSON) and reads them without any
unpickler: a resume, a fine-tuning start and the probe on a run folder are run with every
unpickler hooked to fail (:mod:`tests.recipes.no_pickle_driver`). Each attack of
``tests/checkpoint_attacks.py`` (a pickle payload) is placed in a copy of a real run folder (or
named by ``model.path`` / ``pretrained.checkpoint``), and the same command a user would re-run is
started: it must stop with one line naming the file and the command that converts pickle
checkpoints, write nothing, and stay within a memory bound (its peak resident memory, read from
the kernel, stays far below what the bomb builds when loaded unchecked); ``aape convert`` on
that folder refuses the payload the same way. A run folder in the pickle format is refused,
then converted, then resumes to the loss of the uninterrupted run.
``tests/checkpoints/test_checkpoints_files.py`` shows each payload does its harm when loaded the
unsafe way.
"""

import math
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from aape_plugin.checkpoints import load_state, save_state
from tests.checkpoint_attacks import (
    EMPTY_DICT, NONE, PROTO2, STOP, allocator_newobj_ex, build_on_class_writer, decompression_bomb, tensor_iteration_bomb,
    torchscript_writer, zip_archive,
)
from tests.conftest import SHORT_RUN_ARGS
from tests.recipes.helpers import REPO, console_script, cpu_env, one_line_error, run_cli, train_metrics

# Many full recipe runs (each a fairseq2 start): `make test-slow` and CI run these.
pytestmark = pytest.mark.slow

RUN_ARGS = SHORT_RUN_ARGS

BOMB_BYTES = 3 << 29
"""What the memory bombs build when loaded unchecked (1.5 GiB: more than the margin below)."""

PEAK_MARGIN_KB = 1 << 20
"""A refused resume may peak at most 1 GiB above a successful resume of the same folder
(measured: about 1.3 GiB for the resume, 1.2 GiB for a refusal: the model, the reader and
torch's libraries are in memory before the first state file is read)."""


@pytest.fixture(scope="module")
def run(short_run: Path) -> Path:
    """A real 4-step run (checkpoints at steps 2 and 4); tests copy it before changing it."""
    return short_run


@pytest.fixture(scope="module")
def resumed(run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, int]:
    """(a copy of the run resumed to step 6 by the same command, its log, its peak memory)."""
    copy = tmp_path_factory.mktemp("resumed") / "run"
    shutil.copytree(run, copy)
    code, err, peak_kb = resume(copy, "regime.num_steps=6")
    assert code == 0, err[-3000:]
    return copy, err, peak_kb


HANG_SECONDS = 240
"""A resume that has not ended by then hangs (a clean one takes under a minute here)."""


def resume(folder: Path, *extra: str, recipe: str = "aape_pretrain", args: list[str] = RUN_ARGS, env: dict | None = None,
           command: list[str] | None = None) -> tuple[int, str, int]:
    """(exit code, stderr, peak resident memory in KiB) of re-running the recipe on ``folder``
    (or of ``command``); a run that hangs is killed after :data:`HANG_SECONDS` (exit code -9)."""
    log = folder.parent / f"{folder.name}.log"
    command = command or [*console_script("fairseq2"), "recipe", "run", recipe, str(folder), *args, *extra]
    with open(log, "w") as f:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=f, cwd=REPO, env=cpu_env(env))
        watchdog = threading.Timer(HANG_SECONDS, proc.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            watchdog.cancel()
    return os.waitstatus_to_exitcode(status), log.read_text(), usage.ru_maxrss


def files_of(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def convert(target: Path) -> tuple[int, str, int]:
    """(exit code, stderr, peak resident memory in KiB) of ``aape convert TARGET``."""
    return resume(target, command=[*console_script("aape"), "convert", str(target)])


ATTACKS = {
    # kind of state file -> (relative path in step_4, builder(path, tmp) -> files it would write)
    "torchscript writer": ("trainer/rank_00.pt", lambda p, t: (torchscript_writer(p, t / "evil.pth"), [t / "evil.pth"])),
    "BUILD on a class, legacy format": ("data_reader/dp_00.pt", lambda p, t: (build_on_class_writer(p, t / "patched"), [t / "patched.patch"])),
    "allocator NEWOBJ_EX": ("optimizer/pp_00/tp_00/sdp_00.pt", lambda p, t: (allocator_newobj_ex(p), [])),
    "tensor iteration bomb": ("trainer/rank_00.pt", lambda p, t: (tensor_iteration_bomb(p, BOMB_BYTES // 600), [])),
    "decompression bomb": ("model/pp_00/tp_00/sdp_00.pt", lambda p, t: (decompression_bomb(p, BOMB_BYTES), [])),
    "ten million values for the checker": ("trainer/rank_00.pt", lambda p, t: (zip_archive(p, PROTO2 + EMPTY_DICT + NONE * 10_000_000 + STOP, {}), [])),
}
"""Pickle payloads: a resume refuses each as a pickle checkpoint without reading further, and
``aape convert`` (the one path that still unpickles) refuses each with the checks it runs."""

CONVERT_REFUSES = {
    "torchscript writer": "is a TorchScript archive",
    "BUILD on a class, legacy format": "is not a PyTorch zip archive",
    "allocator NEWOBJ_EX": "protocol-4 pickle",
    "tensor iteration bomb": "asks to build `builtins.set`",
    "decompression bomb": "holds the compressed record 'data/0'",
    "ten million values for the checker": "pickle opcodes, more values than its",
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_tampered_run_folder_is_refused_in_one_line_writes_nothing_and_stays_small(run: Path, resumed: tuple, tmp_path: Path,
                                                                                     attack: str) -> None:
    relative, build = ATTACKS[attack]
    copy = tmp_path / "copied_run"
    shutil.copytree(run, copy)
    target = copy / "checkpoints" / "step_4" / relative
    _, would_write = build(target, tmp_path)
    before = files_of(copy / "checkpoints")

    code, err, peak_kb = resume(copy, "regime.num_steps=6")

    assert code == 2 and "Traceback" not in err, err[-3000:]
    errors = [line for line in err.splitlines() if " ERROR: " in line]
    assert len(errors) == 1 and f"{target} is a pickle checkpoint" in errors[0] and "nothing of it was built" in errors[0], err[-3000:]
    assert f"convert it with `aape convert {copy}`" in errors[0], errors[0]
    assert not any(p.exists() for p in would_write), attack
    assert files_of(copy / "checkpoints") == before  # no checkpoint written, none changed
    baseline_kb = resumed[2]
    assert peak_kb < baseline_kb + PEAK_MARGIN_KB, f"{attack}: peak {peak_kb / 2**20:.2f} GiB, a resume {baseline_kb / 2**20:.2f} GiB"

    # The command the refusal names refuses the payload too, with the checks it runs on pickles.
    code, err, peak_kb = convert(copy)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err[-3000:]
    assert f"{target} " in err and CONVERT_REFUSES[attack] in err and "refusing to convert it" in err, err
    assert not any(p.exists() for p in would_write), attack
    assert files_of(copy / "checkpoints") == before  # nothing converted beside it, nothing kept
    assert peak_kb < baseline_kb + PEAK_MARGIN_KB, f"{attack}: convert peaked {peak_kb / 2**20:.2f} GiB"


def _resave(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    """The state file at ``path``, changed and written back in the same format."""
    state = load_state(path.read_bytes(), path)
    change(state)
    save_state(state, path)


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _second_archive_first(path: Path, tmp: Path) -> None:
    """An archive, then the genuine state file: still a pickle checkpoint to the loader."""
    other = zip_archive(tmp / "other.pt", PROTO2 + EMPTY_DICT + STOP, {})
    path.write_bytes(other.read_bytes() + path.read_bytes())


def _huge_structure(path: Path) -> None:
    """A state file whose JSON structure (5 MiB of empty lists) would take about 100 MB of
    Python objects once parsed."""
    import safetensors.torch

    from aape_plugin.checkpoints.state_file import FORMAT, STRUCTURE_KEY

    text = '{"dict": [["x", [' + ",".join(["[]"] * ((5 << 20) // 3)) + ']]]}'
    path.write_bytes(safetensors.torch.save({}, metadata={"format": FORMAT, STRUCTURE_KEY: text}))


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _planted_step(step_4: Path) -> Path:
    planted = step_4.parent / "step_99999999999999999999"
    shutil.copytree(step_4, planted)
    return planted


TRAINER, OPTIMIZER = "trainer/rank_00.pt", "optimizer/pp_00/tp_00/sdp_00.pt"

RESUMED_ATTACKS = {
    # attack -> (relative path in step_4, builder(path, tmp) -> the path the error must name, what it must say); each
    # does its harm on a resume without the checks: hangs, deletes genuine checkpoints, saves NaN weights with
    # exit 0, or walks ten million values into about 2 GB.
    "a FIFO in place of a state file": (TRAINER, lambda p, t: (_fifo(p), p)[1], "is a FIFO (named pipe), not a regular file"),
    "a planted step folder": (TRAINER, lambda p, t: _planted_step(p.parents[1]), "is not a checkpoint these recipes write"),
    "a NaN learning rate": (TRAINER, lambda p, t: (_resave(p, lambda s: s["_lr_scheduler"].update(base_lrs=[math.nan] * 3)), p)[1],
                            "holds a non-finite learning-rate schedule (_lr_scheduler.base_lrs[0] = nan)"),
    "a structure too large to parse": (TRAINER, lambda p, t: (_huge_structure(p), p)[1], "is not a state file these recipes write (its structure is"),
}


@pytest.mark.parametrize("attack", list(RESUMED_ATTACKS))
def test_state_that_is_not_a_file_or_makes_no_sense_is_refused_in_one_line_and_nothing_changes(run: Path, resumed: tuple,
                                                                                                 tmp_path: Path, attack: str) -> None:
    relative, build, says = RESUMED_ATTACKS[attack]
    copy = tmp_path / "copied_run"
    shutil.copytree(run, copy)
    named = build(copy / "checkpoints" / "step_4" / relative, tmp_path)
    before = files_of(copy / "checkpoints")

    code, err, peak_kb = resume(copy, "regime.num_steps=6")

    assert code == 2 and "Traceback" not in err, (code, err[-3000:])
    errors = [line for line in err.splitlines() if " ERROR: " in line]
    assert len(errors) == 1 and f"{named} {says}" in errors[0], err[-3000:]
    assert files_of(copy / "checkpoints") == before  # genuine checkpoints intact, none written
    baseline_kb = resumed[2]
    assert peak_kb < baseline_kb + PEAK_MARGIN_KB, f"{attack}: peak {peak_kb / 2**20:.2f} GiB, a resume {baseline_kb / 2**20:.2f} GiB"


LOADED_ATTACKS = {
    # The recipe's own loader on a copy of a real run folder (the resumes above show it is the one a resume uses).
    "a directory in place of a state file": (TRAINER, lambda p, t: (p.unlink(), p.mkdir(), p)[2], "is a directory, not a regular file"),
    "an archive before the state": (TRAINER, lambda p, t: (_second_archive_first(p, t), p)[1], "is a pickle checkpoint"),
    "a truncated state file": (TRAINER, lambda p, t: (_truncated(p), p)[1], "is not a state file these recipes write (safetensors cannot read it"),
    "a negative step": (TRAINER, lambda p, t: (_resave(p, lambda s: s.update(_step_nr=-20)), p)[1], "holds the step -20, outside [0, 6]"),
    "a step past the end": (TRAINER, lambda p, t: (_resave(p, lambda s: s.update(_step_nr=10**30)), p)[1],
                            "holds the step 10000000000000000000..., outside [0, 6]"),
    "the step of another folder": (TRAINER, lambda p, t: (_resave(p, lambda s: s.update(_step_nr=2)), p)[1],
                                   "holds the step 2, but lies in the folder of step 4"),
    "a NaN optimiser moment": (OPTIMIZER, lambda p, t: (_resave(p, lambda s: s["state"][0]["exp_avg"].fill_(math.nan)), p)[1],
                               "holds a non-finite optimiser moment (state.0.exp_avg has NaN or infinite values)"),
    "an infinite optimiser learning rate": (OPTIMIZER, lambda p, t: (_resave(p, lambda s: s["param_groups"][0].update(lr=math.inf)), p)[1],
                                            "holds a non-finite optimiser setting (param_groups[0].lr = inf)"),
    "a step folder with a leading zero": (TRAINER, lambda p, t: shutil.copytree(p.parents[1], p.parents[2] / "step_04"),
                                          "is not a checkpoint these recipes write"),
}


def recipe_loader(max_step: int = 6):  # type: ignore[no-untyped-def]
    """The loader the pre-training recipe registers, with a demo run's budgets."""
    from fairseq2.file_system import LocalFileSystem

    from aape_plugin.checkpoints.budget import data_reader_budget, model_budget, optimizer_budget, trainer_budget
    from aape_plugin.recipes.checkpoint_budget import StateBudgets
    from aape_plugin.recipes.safe_checkpoints import SafeTensorFileLoader

    size = 8 << 20
    budgets = StateBudgets(model=model_budget(size, "test"), optimizer=optimizer_budget(size, "test"), trainer=trainer_budget(),
                           data_reader=data_reader_budget(batch_size=4, num_frames=1000, num_mel_bins=128, num_prefetch=1,
                                                          num_parallel_calls=1, basis="test"), max_step=max_step)
    return SafeTensorFileLoader(LocalFileSystem(), lambda: budgets)


@pytest.mark.parametrize("attack", list(LOADED_ATTACKS))
def test_the_recipe_loader_refuses_what_is_not_a_file_or_makes_no_sense(run: Path, tmp_path: Path, attack: str) -> None:
    from aape_plugin.checkpoints import UnsafeCheckpointError

    relative, build, says = LOADED_ATTACKS[attack]
    copy = tmp_path / "copied_run"
    shutil.copytree(run, copy)
    file = copy / "checkpoints" / "step_4" / relative
    named = build(file, tmp_path)
    with pytest.raises(UnsafeCheckpointError) as info:
        recipe_loader().load(file)
    assert str(info.value).startswith(f"{named} {says}") and "\n" not in str(info.value), str(info.value)
    for genuine in (TRAINER, OPTIMIZER):  # the untampered files of the untampered step load
        recipe_loader().load(run / "checkpoints" / "step_4" / genuine)


def test_the_same_command_resumes_the_untampered_folder_and_a_fairseq2_pickle_is_refused(resumed: tuple) -> None:
    copy, err, _ = resumed
    assert "Resuming from step 4" in err and "Optimizer state restored" in err and "Data reader state restored" in err, err[-3000:]

    # A protocol-5 trainer state (as fairseq2 itself writes) is refused as a pickle checkpoint on
    # resume, and by the conversion, whose unpickler (torch's weights_only) cannot read protocol 5.
    trainer = copy / "checkpoints" / "step_6" / "trainer" / "rank_00.pt"
    torch.save(load_state(trainer.read_bytes(), trainer), trainer, pickle_protocol=5)
    code, err, _ = resume(copy, "regime.num_steps=8")
    assert code == 2 and f"{trainer} is a pickle checkpoint" in err and f"aape convert {copy}" in err, err[-3000:]
    code, err, _ = convert(copy)
    assert code == 2 and f"{trainer} is a protocol-5 pickle" in err and "refusing to convert it" in err, err[-3000:]


def test_a_crafted_state_that_passes_the_checks_but_does_not_fit_is_one_line(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copied_run"
    shutil.copytree(run, copy)
    save_state({"_step_nr": 4, "hello": torch.zeros(2)}, copy / "checkpoints" / "step_4" / "trainer" / "rank_00.pt")
    code, err, _ = resume(copy, "regime.num_steps=6")
    assert code == 2 and "Traceback" not in err, err[-3000:]
    assert "`trainer` state cannot be restored from checkpoint of step 4" in err and "delete checkpoints/step_4 to resume from step 2" in err
    # Without an earlier checkpoint, the advice is another folder.
    shutil.rmtree(copy / "checkpoints" / "step_2")
    code, err, _ = resume(copy, "regime.num_steps=6")
    assert code == 2 and "or use another OUTPUT_DIR (there is no earlier checkpoint to resume from)" in err, err[-3000:]
    assert "delete checkpoints" not in err


def test_a_file_larger_than_the_run_config_allows_is_refused(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copied_run"
    shutil.copytree(run, copy)
    trainer = copy / "checkpoints" / "step_4" / "trainer" / "rank_00.pt"
    state = load_state(trainer.read_bytes(), trainer)
    state["padding"] = torch.zeros(5 << 20)  # 20 MiB: a trainer state holds kilobytes
    save_state(state, trainer)
    err = one_line_error(run_cli("recipe", "run", "aape_pretrain", str(copy), *RUN_ARGS, "regime.num_steps=6"))
    assert f"{trainer} is 20.0 MiB, more than the 16.0 MiB this run's configuration allows for its trainer state" in err, err


def test_model_path_and_pretrained_checkpoint_are_checked_too(run: Path, tmp_path: Path) -> None:
    bomb = decompression_bomb(tmp_path / "model.pt", 1 << 30)
    proc = run_cli("recipe", "run", "aape_pretrain", str(tmp_path / "from_path"), *RUN_ARGS, "regime.num_steps=2", f"model.path={bomb}")
    assert f"{bomb} is a pickle checkpoint" in one_line_error(proc)

    poisoned = tmp_path / "poisoned_run"
    shutil.copytree(run, poisoned)
    shard = poisoned / "checkpoints" / "step_4" / "model" / "pp_00" / "tp_00" / "sdp_00.pt"
    torchscript_writer(shard, tmp_path / "evil.pth")
    finetune = ["recipe", "run", "aape_finetune", str(tmp_path / "ft"), "--preset", "demo_drums", "--no-rich", "--config",
                f"pretrained.checkpoint={poisoned}", "model.arch=aape_tiny", "regime.num_steps=2", "lr_scheduler.config.num_warmup_steps=1"]
    err = one_line_error(run_cli(*finetune))
    assert f"{shard} (from {poisoned}) is a pickle checkpoint" in err and not (tmp_path / "evil.pth").exists(), err


def test_a_tampered_finetuning_folder_is_refused(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "ft"
    args = ["--preset", "demo_drums", "--no-rich", "--config", f"pretrained.checkpoint={run}", "model.arch=aape_tiny",
            "regime.validate_every_n_steps=2", "regime.checkpoint_every_n_steps=2", "regime.publish_metrics_every_n_steps=2",
            "lr_scheduler.config.num_warmup_steps=1"]
    code, err, _ = resume(out, "regime.num_steps=2", recipe="aape_finetune", args=args)
    assert code == 0, err[-3000:]
    trainer = out / "checkpoints" / "step_2" / "trainer" / "rank_00.pt"
    torchscript_writer(trainer, tmp_path / "evil.pth")
    code, err, _ = resume(out, "regime.num_steps=4", recipe="aape_finetune", args=args)
    assert code == 2 and f"{trainer} is a pickle checkpoint" in err and "Traceback" not in err, err[-3000:]
    assert not (tmp_path / "evil.pth").exists()


def test_pretrained_step_applies_or_is_refused_for_every_kind_of_checkpoint(run: Path, tmp_path: Path) -> None:
    from aape_plugin.inference.loading import EncoderLoadError, load_encoder

    step_4 = run / "checkpoints" / "step_4"
    file = tmp_path / "encoder.pt"
    shutil.copyfile(step_4 / "model" / "pp_00" / "tp_00" / "sdp_00.pt", file)
    # The fine-tuning recipe passes `pretrained.step` to load_encoder: every kind of source.
    assert load_encoder(run, step=2).description == f"{run / 'checkpoints' / 'step_2'} (teacher)"
    assert load_encoder(step_4, step=4).description == f"{step_4} (teacher)"
    for source, kw, message in (
        (step_4, {}, None),
        (step_4, {"step": 2}, f"{step_4} is the checkpoint of step 4, but `step` asks for step 2"),
        (step_4 / "model", {"step": 2}, f"{step_4 / 'model'} is the checkpoint of step 4, but `step` asks for step 2"),
        (file, {"step": 2, "arch": "aape_tiny"}, f"`step` (2) applies to a pre-training run folder, but {file} is a checkpoint file"),
        ("aape_tiny_demo", {"step": 2}, "`step` (2) applies to a pre-training run folder, but aape_tiny_demo is an asset card"),
    ):
        if message is None:
            load_encoder(source, **kw)
            continue
        with pytest.raises(EncoderLoadError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_encoder(source, **kw)
    # Through the recipe: the same refusal in one line.
    proc = run_cli("recipe", "run", "aape_finetune", str(tmp_path / "ft"), "--preset", "demo_drums", "--no-rich", "--config",
                   "model.arch=aape_tiny", f"pretrained.checkpoint={step_4}", "pretrained.step=2", "regime.num_steps=2",
                   "lr_scheduler.config.num_warmup_steps=1")
    assert f"{step_4} is the checkpoint of step 4, but `step` asks for step 2" in one_line_error(proc)


def no_pickle(calls: Path, *args: str) -> subprocess.CompletedProcess:
    """``fairseq2 ARGS`` with every unpickler hooked to fail and to record its name in ``calls``."""
    return subprocess.run([sys.executable, "-m", "tests.recipes.no_pickle_driver", str(calls), *args], capture_output=True, text=True,
                          timeout=600, cwd=REPO, env=cpu_env())


def test_resume_finetuning_and_the_probe_on_a_run_folder_never_unpickle(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copied_run"
    shutil.copytree(run, copy)
    calls = tmp_path / "calls.txt"
    resumed = no_pickle(calls, "recipe", "run", "aape_pretrain", str(copy), *RUN_ARGS, "regime.num_steps=6")
    assert resumed.returncode == 0 and "Resuming from step 4" in resumed.stderr, resumed.stderr[-3000:]
    assert "Optimizer state restored" in resumed.stderr and "Data reader state restored" in resumed.stderr
    finetune = ["--preset", "demo_drums", "--no-rich", "--config", f"pretrained.checkpoint={copy}", "model.arch=aape_tiny",
                "regime.validate_every_n_steps=2", "regime.checkpoint_every_n_steps=2", "regime.publish_metrics_every_n_steps=2",
                "lr_scheduler.config.num_warmup_steps=1"]
    tuned = no_pickle(calls, "recipe", "run", "aape_finetune", str(tmp_path / "ft"), *finetune, "regime.num_steps=2")
    assert tuned.returncode == 0 and f"{copy}/checkpoints/step_6 (teacher)" in tuned.stderr, tuned.stderr[-3000:]
    # ... and resumes from its own checkpoint (a fine-tuning run's states, classifier and all).
    again = no_pickle(calls, "recipe", "run", "aape_finetune", str(tmp_path / "ft"), *finetune, "regime.num_steps=4")
    assert again.returncode == 0 and "Resuming from step 2" in again.stderr, again.stderr[-3000:]
    probe = no_pickle(calls, "recipe", "run", "aape_linear_probe", str(tmp_path / "probe"), "--preset", "demo_drums", "--no-rich",
                      "--config", f"model.checkpoint={copy}", "probe.seeds=[42]", "probe.penalties=[1e-2]")
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert calls.read_text() == ""


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-step run (checkpoints at steps 4 and 6), never stopped."""
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    proc = run_cli("recipe", "run", "aape_pretrain", str(out), *RUN_ARGS, "regime.num_steps=6")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_a_pickle_run_folder_is_refused_then_converted_and_resumes_to_the_uninterrupted_loss(uninterrupted: Path,
                                                                                            tmp_path: Path) -> None:
    old = tmp_path / "old_run"
    shutil.copytree(uninterrupted, old)
    # The run as it stood after step 4, in the format these recipes wrote before: pickles (protocol 2).
    shutil.rmtree(old / "checkpoints" / "step_6")
    (old / "checkpoints" / "scores" / "step_6.txt").unlink(missing_ok=True)
    states = sorted((old / "checkpoints").rglob("*.pt"))
    assert len(states) == 4
    for file in states:
        torch.save(load_state(file.read_bytes(), file), file, pickle_protocol=2)

    code, err, _ = resume(old, "regime.num_steps=6")
    errors = [line for line in err.splitlines() if " ERROR: " in line]
    assert code == 2 and "Traceback" not in err and len(errors) == 1, err[-3000:]
    assert f"{old / 'checkpoints' / 'step_4' / 'trainer' / 'rank_00.pt'} is a pickle checkpoint" in errors[0], errors[0]
    assert f"convert it with `aape convert {old}`" in errors[0], errors[0]

    proc = run_cli("convert", str(old), script="aape")
    assert proc.returncode == 0 and "4 file(s) converted, 0 already state files" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    for file in states:
        assert file.read_bytes()[:4] != b"PK\x03\x04" and file.with_name(file.name + ".pickle").read_bytes()[:4] == b"PK\x03\x04"

    code, err, _ = resume(old, "regime.num_steps=6")
    assert code == 0 and "Resuming from step 4" in err, err[-3000:]
    converted, straight = train_metrics(old)[-1], train_metrics(uninterrupted)[-1]
    assert converted["Step"] == straight["Step"] == 6
    # Same weights, moments, schedule, RNG and data position: only the order of float sums may differ.
    for key in ("Loss", "Masked Token Loss", "Contrastive Loss"):
        assert converted[key] == pytest.approx(straight[key], rel=1e-5), key


def test_a_state_of_another_shape_is_refused_on_resume_in_one_line(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copied_run"
    shutil.copytree(run, copy)
    model = copy / "checkpoints" / "step_4" / "model" / "pp_00" / "tp_00" / "sdp_00.pt"
    name = "teacher.blocks.blocks.0.attn.qkv.weight"
    _resave(model, lambda s: s.update({name: torch.zeros(s[name].shape[0] + 1, s[name].shape[1])}))
    code, err, _ = resume(copy, "regime.num_steps=6")
    errors = [line for line in err.splitlines() if " ERROR: " in line]
    assert code == 2 and "Traceback" not in err and len(errors) == 1, err[-3000:]
    assert "`model` state cannot be restored from checkpoint of step 4" in errors[0] and name in errors[0], errors[0]
    assert "delete checkpoints/step_4 to resume from step 2" in errors[0], errors[0]
