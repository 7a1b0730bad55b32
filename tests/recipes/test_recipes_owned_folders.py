"""A run folder belongs to one recipe and one configuration: another recipe, other settings or
another model are refused in one line before anything is written, and a new run that stops with
a user error leaves no folder behind. Each refusal is tried on a real run folder and shown to
leave every file as it was (bytes and modification time)."""

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import SHORT_RUN_ARGS
from tests.recipes.helpers import one_line_error, run_cli

# Many full recipe runs (each a fairseq2 start): `make test-slow` and CI run these.
pytestmark = pytest.mark.slow

PROBE = ["--preset", "demo_drums", "--no-rich", "--config", "model.kind=logmel", "probe.penalties=[1e-2]"]


def contents(folder: Path) -> dict[str, tuple[bytes, int] | None]:
    """Every file's bytes and modification time, and every folder, under ``folder``."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else None
            for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def probe_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("probe") / "run"
    proc = run_cli("recipe", "run", "aape_linear_probe", str(out), *PROBE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "recipe.json").read_text())["recipe"] == "aape_linear_probe"
    return out


def claim(folder: Path, recipe: str, preset: str | None, *overrides: str):  # noqa: ANN201
    """The check the command makes, in this process (a refusal costs no fairseq2 start): the
    configuration built as ``recipe run RECIPE FOLDER --preset PRESET --config OVERRIDES`` builds it."""
    from fairseq2.runtime.dependency import get_dependency_resolver

    from aape_plugin.cli.config import check_config, merged_file_config, parse_config_overrides
    from aape_plugin.cli.ownership import claim_output_dir
    from aape_plugin.cli.presets import get_preset
    from aape_plugin.cli.recipes import get_recipe

    resolver = get_dependency_resolver()
    entry = get_recipe(recipe)
    config_kls = entry.load().config_kls
    file_config = merged_file_config(resolver, config_kls, get_preset(entry, preset) if preset else None, None)
    config = check_config(resolver, config_kls, file_config, parse_config_overrides(list(overrides)))
    return claim_output_dir(resolver, recipe, config, folder, None)


def refusal(folder: Path, recipe: str, preset: str | None, *overrides: str) -> str:
    from aape_plugin.cli.recipes import CliError

    with pytest.raises(CliError) as caught:
        claim(folder, recipe, preset, *overrides)
    return str(caught.value)


def test_a_probe_folder_refuses_another_recipe_and_stays_as_it_was(fairseq2_initialised: None, probe_run: Path) -> None:
    before = contents(probe_run)
    err = one_line_error(run_cli("recipe", "run", "aape_extract", str(probe_run), "--no-rich", "--config", "input_dir=assets/demo/drums"))
    assert err.strip().splitlines() == [f"fairseq2: error: {probe_run} holds a run of aape_linear_probe, not of aape_extract; "
                                        "give aape_extract another OUTPUT_DIR"]
    assert refusal(probe_run, "aape_pretrain", "demo") == (f"{probe_run} holds a run of aape_linear_probe, not of aape_pretrain; "
                                                           "give aape_pretrain another OUTPUT_DIR")
    assert contents(probe_run) == before
    # The same probe again is its own run.
    assert claim(probe_run, "aape_linear_probe", "demo_drums", *PROBE[-2:]).new_run is False
    assert contents(probe_run) == before


def copy_of(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


SHORT_RUN_CONFIG = SHORT_RUN_ARGS[SHORT_RUN_ARGS.index("--config") + 1:]


def test_another_arch_is_refused_before_config_yaml_is_rewritten(short_run: Path, tmp_path: Path) -> None:
    run = copy_of(short_run, tmp_path)
    before = contents(run)
    err = one_line_error(run_cli("recipe", "run", "aape_pretrain", str(run), *SHORT_RUN_ARGS, "regime.num_steps=6",
                                 "--model-arch", "vit_tiny"))
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fairseq2: error: {run} holds a run of aape_pretrain with other settings: "
                                                   "model.arch: aape_tiny -> vit_tiny; re-run it with the settings it was started with")
    assert "use another OUTPUT_DIR" in lines[0] and "_metric_bag" not in err
    assert contents(run) == before


def test_an_old_folder_whose_model_changed_since_is_refused_and_resumes_with_the_old_values_pinned(
        fairseq2_initialised: None, short_run: Path, tmp_path: Path) -> None:
    # A folder written before recipe.json existed, as it meets an arch whose defaults changed
    # since: the same config.yaml, a model.yaml with an older value.
    run = copy_of(short_run, tmp_path)
    (run / "recipe.json").unlink()
    model_yaml = run / "checkpoints" / "model.yaml"
    assert "    init_decay: 0.25\n" in model_yaml.read_text()
    model_yaml.write_text(model_yaml.read_text().replace("    init_decay: 0.25\n", "    init_decay: 0.3\n"))
    before = contents(run)

    same = [*SHORT_RUN_CONFIG, "regime.num_steps=6"]
    err = refusal(run, "aape_pretrain", "demo", *same)
    assert err.startswith(f"{model_yaml} holds another model than the configuration builds now: encoder.stem.init_decay: 0.3 -> 0.25; ")
    assert "model.config_overrides" in err and "another OUTPUT_DIR" in err
    err = refusal(run, "aape_pretrain", "demo", *same, "model.arch=vit_tiny")
    assert "holds a run of aape_pretrain with other settings: model.arch: aape_tiny -> vit_tiny" in err
    assert refusal(run, "aape_finetune", "demo_drums") == f"{run} holds a run of aape_pretrain, not of aape_finetune; give aape_finetune another OUTPUT_DIR"
    assert refusal(run, "aape_pretrain", "demo", *same, "dataset.batch_size=5", "common.seed=3", "optimizer.config.lr=0.1",
                   "trainer.max_grad_norm=1").startswith(
        f"{run} holds a run of aape_pretrain with other settings: dataset.batch_size: 4 -> 5, trainer.max_grad_norm: 3.0 -> 1.0, "
        "optimizer.config.lr: 0.001 -> 0.1 and 1 more; ")
    assert contents(run) == before

    # The same command with the old value pinned resumes it, and records its recipe.
    pinned = run_cli("recipe", "run", "aape_pretrain", str(run), *SHORT_RUN_ARGS, *same[len(SHORT_RUN_CONFIG):],
                     "model.config_overrides.encoder.stem.init_decay=0.3")  # a dotted key keeps the preset's own overrides
    assert pinned.returncode == 0 and "Restoring training from the last checkpoint at step 4" in pinned.stderr, pinned.stderr[-3000:]
    marker = json.loads((run / "recipe.json").read_text())
    assert marker["recipe"] == "aape_pretrain" and marker["config"]["regime"]["num_steps"] == 6
    assert "    init_decay: 0.3\n" in model_yaml.read_text() and (run / "checkpoints" / "step_6").is_dir()


def test_what_is_not_a_run_folder_is_refused_in_one_line(fairseq2_initialised: None, tmp_path: Path) -> None:
    from fairseq2.runtime.dependency import get_dependency_resolver

    from aape_plugin.cli.ownership import read_owner
    from aape_plugin.cli.recipes import CliError

    resolver = get_dependency_resolver()
    assert read_owner(resolver, tmp_path / "new") is None
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".hidden").write_text("")
    assert read_owner(resolver, tmp_path / "empty") is None
    cases = {
        "data": ("clip.wav", "", "is not empty and holds no run (recipe.json or config.yaml); use a new or empty OUTPUT_DIR"),
        "other": ("config.yaml", "model: {}\ntokenizer: {}\n", "is the configuration of none of the installed recipes "
                  "(sections: model, tokenizer); use another OUTPUT_DIR"),
        "broken": ("recipe.json", "{", "does not name the recipe and configuration of the run in"),
    }
    for name, (file, text, message) in cases.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / file).write_text(text)
        with pytest.raises(CliError, match=message.replace("(", r"\(").replace(")", r"\)")):
            read_owner(resolver, tmp_path / name)
    (tmp_path / "file").write_text("")
    with pytest.raises(CliError, match="is a file, not a folder"):
        read_owner(resolver, tmp_path / "file")


def test_differences_are_listed_a_few_at_most() -> None:
    from aape_plugin.cli.ownership import differences, listing

    old = {"a": 1, "b": {"c": "x", "d": [1, 2]}, "e": None, "f": 2.0, "g": True}
    new = {"a": 2, "b": {"c": "y", "d": [1, 3]}, "e": {"h": 1}, "f": 2.0, "g": False, "i": 0}
    assert listing(differences(old, new)) == "a: 1 -> 2, b.c: x -> y, b.d: [1, 2] -> [1, 3] and 3 more"
    assert [str(d) for d in differences(old, new)[3:]] == ['e: null -> {"h": 1}', "g: true -> false", "i: (absent) -> 0"]


def test_a_user_error_removes_only_what_the_run_created(tmp_path: Path) -> None:
    # An existing folder with a file of the user's, and a new checkpoint folder elsewhere.
    out = tmp_path / "out"
    out.mkdir()
    (out / ".notes").write_text("mine")
    before = contents(out)
    checkpoints = tmp_path / "made" / "checkpoints"
    proc = run_cli("recipe", "run", "aape_pretrain", str(out), "--checkpoint-dir", str(checkpoints), "--preset", "demo", "--no-rich",
                   "--config", "dataset.name=null", "dataset.family=audioset", f"dataset.root={tmp_path / 'no_audioset'}")
    assert f"The AudioSet folder {tmp_path / 'no_audioset'} does not exist" in one_line_error(proc)
    assert contents(out) == before  # what the run wrote is gone (config.yaml, logs, recipe.json, ...); .notes kept
    assert not (tmp_path / "made").exists()  # as was the checkpoint folder (fairseq2 writes model.yaml there first)
