"""Loading trained encoders: a checkpoint that would run code when unpickled is refused on
every path that takes a user's file, folder or card; a real run folder, its ``checkpoints``
and a ``step_N`` give that checkpoint's weights and the run's statistics, and its exported
encoder gives identical HEAR embeddings."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from aape_plugin import hear
from aape_plugin.checkpoints import load_state, save_state
from aape_plugin.data.stats import FeatureStats
from aape_plugin.inference.export import export_encoder
from aape_plugin.inference.loading import EncoderLoadError, load_encoder
from tests.recipes.helpers import one_line_error, run_cli

REFUSED = r"is a pickle checkpoint \(the format written before state files became safetensors\); refusing to unpickle it"


class _RunsCode:
    """Unpickling this writes the marker file: the proof that a load ran the file's code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def malicious_checkpoint(path: Path, marker: Path, keys: list[str]) -> Path:
    """A state dict with real tensor names, one of which unpickles by running code."""
    state: dict[str, object] = {k: torch.zeros(1) for k in keys}
    state[keys[0]] = _RunsCode(marker)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    # The file is dangerous: loaded without weights_only it does write the marker.
    torch.load(path, weights_only=False)
    assert marker.exists()
    marker.unlink()
    return path


@pytest.fixture(scope="module")
def run(short_run: Path) -> Path:
    """A real pre-training run with checkpoints at steps 2 and 4."""
    return short_run


def shard(run: Path, step: int) -> Path:
    return run / "checkpoints" / f"step_{step}" / "model" / "pp_00" / "tp_00" / "sdp_00.pt"


def read_state(path: Path) -> dict:
    return load_state(path.read_bytes(), path)


@pytest.fixture()
def poisoned(run: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(malicious .pt file, a copy of the run whose last checkpoint is malicious, marker)."""
    marker = tmp_path / "MARKER"
    keys = list(read_state(shard(run, 4)))
    file = malicious_checkpoint(tmp_path / "encoder.pt", marker, [f"encoder.{k[len('teacher.'):]}" for k in keys if k.startswith("teacher.")])
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    malicious_checkpoint(shard(copy, 4), marker, keys)
    return file, copy, marker


def test_every_python_path_refuses_a_checkpoint_that_runs_code(poisoned: tuple) -> None:
    from fairseq2.assets import AssetCard

    file, run, marker = poisoned
    attempts = {
        "hear.load_model(file)": lambda: hear.load_model(str(file), device="cpu", stats=FeatureStats(mean=0.0, std=1.0)),
        "load_encoder(file)": lambda: load_encoder(file, arch="aape_tiny"),
        "load_encoder(run)": lambda: load_encoder(run),
        "load_encoder(run/checkpoints)": lambda: load_encoder(run / "checkpoints"),
        "load_encoder(run/checkpoints/step_4)": lambda: load_encoder(run / "checkpoints" / "step_4"),
        "hear.load_model(run)": lambda: hear.load_model(str(run), device="cpu"),
    }
    for what, attempt in attempts.items():
        with pytest.raises(EncoderLoadError, match=REFUSED) as info:
            attempt()
        expected = file if "file" in what else shard(run, 4)
        assert str(info.value).startswith(str(expected)), (what, str(info.value))
        assert not marker.exists(), what

    for family, keys in (("aape_encoder", {}), ("aape", {})):
        card = AssetCard("user_model", {"name": "user_model", "model_family": family, "model_arch": "aape_tiny",
                                        "checkpoint": f"file://{file if family == 'aape_encoder' else shard(run, 4)}", **keys})
        with pytest.raises(EncoderLoadError, match=REFUSED + r".*") as info:
            load_encoder(card)
        assert "(from asset card 'user_model')" in str(info.value)
        assert not marker.exists(), family


def test_an_asset_card_cannot_lift_the_restriction(poisoned: tuple) -> None:
    from fairseq2.assets import AssetCard

    file, _, marker = poisoned
    card = AssetCard("user_model", {"name": "user_model", "model_family": "aape_encoder", "model_arch": "aape_tiny",
                                    "checkpoint": f"file://{file}", "restrict": False})
    with pytest.raises(EncoderLoadError, match=rf"The asset card 'user_model' sets `restrict: false` for file://{file}: AaPE checkpoints load only with"):
        load_encoder(card)
    assert not marker.exists()


@pytest.mark.slow  # one fairseq2 start per command
def test_every_command_refuses_a_checkpoint_that_runs_code(poisoned: tuple, tmp_path: Path) -> None:
    file, _, marker = poisoned
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "user.yaml").write_text(
        f"name: user_unrestricted\nmodel_family: aape_encoder\nmodel_arch: aape_tiny\ncheckpoint: file://{file}\nrestrict: false\n"
        f"---\nname: user_ssl\nmodel_family: aape\nmodel_arch: aape_tiny\ncheckpoint: file://{file}\nrestrict: false\n"
    )
    probe = ["recipe", "run", "aape_linear_probe", "--preset", "demo_drums", "--no-rich", "--config", "probe.seeds=[42]"]
    runs = {
        "probe, file": (probe[:3] + [str(tmp_path / "p1")] + probe[3:] + [f"model.checkpoint={file}", "model.arch=aape_tiny"], str(file)),
        "probe, card with restrict: false": (probe[:3] + [str(tmp_path / "p3")] + probe[3:] + ["model.checkpoint=user_unrestricted", f"common.assets.extra_paths=[{cards}]"],
                                             f"sets `restrict: false` for file://{file}"),
        "fine-tune, file": (["recipe", "run", "aape_finetune", str(tmp_path / "f"), "--preset", "demo_drums", "--no-rich",
                             "--config", f"pretrained.checkpoint={file}"], str(file)),
        "pre-train, model card with restrict: false": (["recipe", "run", "aape_pretrain", str(tmp_path / "t"), "--preset", "demo", "--no-rich",
                                                        "--config", "model.name=user_ssl", "model.arch=null", f"common.assets.extra_paths=[{cards}]"],
                                                       f"sets `restrict: false` for file://{file}"),
    }
    for what, (args, named) in runs.items():
        err = one_line_error(run_cli(*args))
        assert named in err, (what, err[-2000:])
        assert not marker.exists(), what


def test_run_folder_checkpoints_and_step_give_that_checkpoints_weights_and_the_runs_statistics(run: Path) -> None:
    stats = json.loads((run / "feature_stats.json").read_text())
    for step in (2, 4):
        raw = read_state(shard(run, step))
        sources = [run / "checkpoints" / f"step_{step}"] + ([run, run / "checkpoints"] if step == 4 else [])
        for source in sources:
            for weights in ("teacher", "student"):
                loaded = load_encoder(source, weights=weights)
                state = loaded.encoder.state_dict()
                expected = {k[len(weights) + 1 :]: v for k, v in raw.items() if k.startswith(f"{weights}.")}
                assert sorted(state) == sorted(expected), source
                assert all(torch.equal(state[k], expected[k]) for k in expected), (source, weights)
                assert (loaded.stats.mean, loaded.stats.std) == (stats["mean"], stats["std"]), source
    # The teacher is not the student, and step 2 is not step 4: the comparisons above can fail.
    last, first = read_state(shard(run, 4)), read_state(shard(run, 2))
    name = "blocks.blocks.0.attn.qkv.weight"
    assert not torch.equal(last[f"teacher.{name}"], last[f"student.{name}"])
    assert not torch.equal(last[f"teacher.{name}"], first[f"teacher.{name}"])


def test_a_pt_file_loads_as_a_state_file_and_as_a_pickle_only_once_converted(run: Path, tmp_path: Path) -> None:
    from aape_plugin.checkpoints.convert import convert_file

    teacher = {f"encoder.{k[len('teacher.'):]}": v for k, v in read_state(shard(run, 4)).items() if k.startswith("teacher.")}
    new = save_state(teacher, tmp_path / "encoder.pt")  # `model.path` / an asset card's weights, in the format runs write
    state = load_encoder(new, arch="aape_tiny").encoder.state_dict()
    assert all(torch.equal(state[k[len("encoder."):]], v) for k, v in teacher.items())
    old = tmp_path / "old.pt"
    torch.save(teacher, old)  # a pickle, as `torch.save(model.state_dict())` writes
    with pytest.raises(EncoderLoadError, match=rf"^{old} is a pickle checkpoint .*; convert it with `aape convert {old}`"):
        load_encoder(old, arch="aape_tiny")
    assert convert_file(old) is True
    state = load_encoder(old, arch="aape_tiny").encoder.state_dict()
    assert all(torch.equal(state[k[len("encoder."):]], v) for k, v in teacher.items())


def test_exported_encoder_gives_the_runs_embeddings_through_hear(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "encoder.safetensors"
    info = export_encoder(run, out)
    stats = FeatureStats(**info["feature_stats"])  # type: ignore[arg-type]
    from_run = hear.load_model(str(run), device="cpu")
    exported = hear.load_model(str(out), device="cpu", stats=stats)
    audio = torch.stack([torch.sin(torch.arange(24_000) * f) * 0.3 for f in (0.05, 0.11, 0.23)])
    assert torch.equal(hear.get_scene_embeddings(audio, from_run), hear.get_scene_embeddings(audio, exported))
    frames_a, stamps_a = hear.get_timestamp_embeddings(audio, from_run)
    frames_b, stamps_b = hear.get_timestamp_embeddings(audio, exported)
    assert torch.equal(frames_a, frames_b) and torch.equal(stamps_a, stamps_b)
    # And the run's statistics travel with the export (for the asset card's `feature_stats`).
    saved = json.loads((run / "feature_stats.json").read_text())
    assert (stats.mean, stats.std) == (saved["mean"], saved["std"])
