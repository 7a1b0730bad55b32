"""One embedding contract: ``aape_extract``, the HEAR API and ``embed_file`` give the same
timestamps (ms, on one grid) and the same embeddings for the same real clip, whatever its
length, channels or rate; the output file says what it holds and is as readable as the JSON
beside it."""

import json
import logging
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import torchaudio
from safetensors import safe_open
from safetensors.torch import load_file

from aape_plugin import hear
from aape_plugin.data.audio import AudioReadError, load_waveform
from aape_plugin.safetensors_files import save_safetensors
from tests.data.conftest import DEMO
from tests.recipes.helpers import REPO, console_script, cpu_env, one_line_error, run_cli

# Many full recipe runs (each a fairseq2 start): `make test-slow` and CI run these.
pytestmark = pytest.mark.slow

KEYWORDS = sorted((DEMO / "keywords").glob("*.flac"))

# 11,560 samples (722.5 ms, 73 log-mel frames): the last embedding whose 16 frames exist would
# sit at 725 ms, past the clip's end; the grid stops at 685 ms (18 timestamps). Counting from
# frames instead of samples gives 19.
LENGTHS = {"a_full.flac": None, "b_722ms.flac": 11_560, "c_300ms.flac": 4_800}


def demo_clip(i: int) -> np.ndarray:
    data, rate = soundfile.read(str(KEYWORDS[i]), dtype="float32")
    assert rate == 16_000 and data.ndim == 1
    return data


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real demo speech as a user's folder holds it: whole and cut clips at 16 kHz, a stereo
    file at 44.1 kHz (two different clips as channels) and an 8 kHz file."""
    root = tmp_path_factory.mktemp("clips")
    for i, (name, length) in enumerate(LENGTHS.items()):
        soundfile.write(str(root / name), demo_clip(i)[:length], 16_000, subtype="PCM_16")
    left, right = (torchaudio.functional.resample(torch.from_numpy(demo_clip(i)), 16_000, 44_100) for i in (3, 4))
    soundfile.write(str(root / "d_stereo_44k.wav"), torch.stack([left, right], 1).numpy(), 44_100, subtype="FLOAT")
    soundfile.write(str(root / "e_8k.wav"), torchaudio.functional.resample(torch.from_numpy(demo_clip(5)), 16_000, 8_000).numpy(),
                    8_000, subtype="FLOAT")
    return root


def extract(folder: Path, out: Path, *config: str, umask: int = 0o022) -> subprocess.CompletedProcess:
    """``fairseq2 recipe run aape_extract`` as a user runs it, under ``umask``."""
    return subprocess.run([*console_script("fairseq2"), "recipe", "run", "aape_extract", str(out), "--no-rich", "--config",
                           f"input_dir={folder}", *config], capture_output=True, text=True, timeout=600, env=cpu_env(), cwd=REPO,
                          umask=umask)


@pytest.fixture(scope="module")
def extracted(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("extract") / "emb"
    proc = extract(folder, out, umask=0o027)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


@pytest.fixture(scope="module")
def model() -> hear.HearModel:
    return hear.load_model("aape_tiny_demo", device="cpu")


def rows(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
    return load_file(str(path)), metadata


def test_extraction_and_the_hear_api_agree_on_every_clip(extracted: tuple, folder: Path, model: hear.HearModel) -> None:
    out, _ = extracted
    data, meta = rows(out / "files.safetensors")
    paths = json.loads(meta["paths"])
    assert paths == [str(p) for p in sorted(folder.iterdir())]
    offsets = data["frame_offsets"].tolist()
    counts = []
    for row, path in enumerate(paths):
        wave = load_waveform(path)[None]  # decoded, down-mixed and resampled as the reader does
        frames, stamps = hear.get_timestamp_embeddings(wave, model)
        scene = hear.get_scene_embeddings(wave, model)
        mine = slice(offsets[row], offsets[row + 1])
        counts.append(offsets[row + 1] - offsets[row])
        # The same grid, in the same unit: the same number of timestamps at the same milliseconds.
        assert data["timestamps_ms"][mine].tolist() == stamps[0].double().tolist(), path
        torch.testing.assert_close(data["frames"][mine], frames[0], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(data["clip"][row], scene[0], atol=1e-4, rtol=1e-4)
        assert data["num_samples"][row] == wave.size(1)
    assert counts == [25, 18, 8, 25, 25]  # 1 s, 722.5 ms, 300 ms, and the two converted 1 s clips
    assert data["timestamps_ms"][:3].tolist() == [5.0, 45.0, 85.0]
    assert data["source_rates"].tolist() == [16_000, 16_000, 16_000, 44_100, 8_000]


def test_the_file_says_what_it_holds(extracted: tuple, folder: Path) -> None:
    out, proc = extracted
    data, meta = rows(out / "files.safetensors")
    assert meta["format"] == "aape_extract/2" and meta["timestamp_unit"] == "ms" and meta["split"] == "files"
    assert json.loads(meta["timestamp_hop_ms"]) == 40.0 and json.loads(meta["first_timestamp_ms"]) == 5.0
    assert json.loads(meta["sample_rate"]) == 16_000 and json.loads(meta["skipped"]) == {}
    assert json.loads(meta["model"])["source"] == "asset aape_tiny_demo"
    assert sorted(data) == ["clip", "frame_offsets", "frames", "num_samples", "source_rates", "timestamps_ms"]
    # The JSON beside it holds the same description, for reading without safetensors.
    side = json.loads((out / "files.json").read_text())
    assert {k: json.dumps(v) if not isinstance(v, str) else v for k, v in side.items()} == meta
    # The resampling is said, once per rate; the upsampled rate as a warning.
    e_8k = folder / "e_8k.wav"
    assert proc.stderr.count("Clips at 8000 Hz") == 1 and "WARNING" in next(
        line for line in proc.stderr.splitlines() if "Clips at 8000 Hz" in line)
    assert f"Clips at 8000 Hz (first: {e_8k}) are upsampled to 16000 Hz: they hold nothing above 4000 Hz" in proc.stderr
    assert proc.stderr.count("Clips at 44100 Hz") == 1 and "resampled to 16000 Hz" in proc.stderr


def test_the_embeddings_file_is_as_readable_as_the_json_beside_it(extracted: tuple) -> None:
    out, _ = extracted
    modes = {name: stat.S_IMODE((out / name).stat().st_mode) for name in ("files.safetensors", "files.json", "config.yaml")}
    assert modes == {"files.safetensors": 0o640, "files.json": 0o640, "config.yaml": 0o640}  # umask 027
    assert not list(out.glob(".*.tmp"))


def test_safetensors_files_follow_the_umask(tmp_path: Path) -> None:
    import os

    before = os.umask(0o022)
    try:
        save_safetensors({"x": torch.zeros(3)}, tmp_path / "a.safetensors", metadata={"k": "v"})
        os.umask(0o077)
        save_safetensors({"x": torch.zeros(3)}, tmp_path / "b.safetensors")
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "a.safetensors").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.safetensors").stat().st_mode) == 0o600
    assert rows(tmp_path / "a.safetensors")[1] == {"k": "v"}


def test_embed_file_gives_the_extracted_rows(extracted: tuple, folder: Path, model: hear.HearModel,
                                             caplog: pytest.LogCaptureFixture) -> None:
    out, _ = extracted
    data, meta = rows(out / "files.safetensors")
    offsets = data["frame_offsets"].tolist()
    for row, path in enumerate(json.loads(meta["paths"])):
        with caplog.at_level(logging.INFO, logger="aape_plugin"):
            caplog.clear()
            one = hear.embed_file(path, model)
        torch.testing.assert_close(one.frames, data["frames"][offsets[row] : offsets[row + 1]], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(one.scene, data["clip"][row], atol=1e-4, rtol=1e-4)
        assert one.timestamps_ms.tolist() == data["timestamps_ms"][offsets[row] : offsets[row + 1]].tolist()
        assert one.source_rate == data["source_rates"][row] and one.path == path
        if path.endswith("d_stereo_44k.wav"):
            assert one.source_channels == 2 and "2 channels, averaged to mono" in caplog.text
            assert "is at 44100 Hz, resampled to 16000 Hz" in caplog.text
        elif path.endswith("e_8k.wav"):
            assert [r.levelno for r in caplog.records] == [logging.WARNING]
            assert "is at 8000 Hz, upsampled to 16000 Hz: it holds nothing above 4000 Hz" in caplog.text
        else:
            assert one.source_channels == 1 and not caplog.records


def test_embed_file_averages_the_channels_the_hear_api_refuses(folder: Path, model: hear.HearModel) -> None:
    path = folder / "d_stereo_44k.wav"
    stereo, rate = soundfile.read(str(path), dtype="float32")
    with pytest.raises(ValueError, match=r"but has shape \(44100, 2\).*down-mixed"):
        hear.get_scene_embeddings(torch.from_numpy(stereo), model)
    mono = torchaudio.functional.resample(torch.from_numpy(stereo).mean(1), rate, 16_000)[None]
    one = hear.embed_file(path, model)
    torch.testing.assert_close(one.scene, hear.get_scene_embeddings(mono, model)[0], atol=1e-4, rtol=1e-4)
    # Each channel alone gives something else: the down-mix is what is embedded.
    left = torchaudio.functional.resample(torch.from_numpy(stereo[:, 0]), rate, 16_000)[None]
    assert (one.scene - hear.get_scene_embeddings(left, model)[0]).abs().max() > 1e-2


def test_embed_file_refuses_what_is_not_audio_in_one_line(tmp_path: Path, model: hear.HearModel) -> None:
    (tmp_path / "notes.txt").write_text("not audio")
    for path, reason in ((tmp_path / "missing.wav", "no such file"), (tmp_path / "notes.txt", "not a readable audio file")):
        with pytest.raises(AudioReadError, match=f"^{path}: {reason}") as refused:
            hear.embed_file(path, model)
        assert "\n" not in str(refused.value)
    with pytest.raises(TypeError, match=r"`model` must be what hear.load_model returns"):
        hear.embed_file(KEYWORDS[0], "aape_tiny_demo")  # type: ignore[arg-type]


def test_the_hop_option_moves_both_to_the_same_grid(folder: Path, model: hear.HearModel, tmp_path: Path) -> None:
    one = tmp_path / "one"
    one.mkdir()
    (one / "b_722ms.flac").symlink_to(folder / "b_722ms.flac")
    proc = extract(one, tmp_path / "native", "timestamp_hop_ms=160")
    assert proc.returncode == 0, proc.stderr[-3000:]
    data, meta = rows(tmp_path / "native" / "files.safetensors")
    native = hear.HearModel(model.embedder, timestamp_hop_ms=160.0)
    frames, stamps = hear.get_timestamp_embeddings(load_waveform(folder / "b_722ms.flac")[None], native)
    assert json.loads(meta["timestamp_hop_ms"]) == 160.0
    assert data["timestamps_ms"].tolist() == stamps[0].double().tolist() == [5.0, 165.0, 325.0, 485.0, 645.0]
    torch.testing.assert_close(data["frames"], frames[0], atol=1e-4, rtol=1e-4)
    # A hop that does not divide the patch: one line naming the option and the hops that work.
    refused = run_cli("recipe", "run", "aape_extract", str(tmp_path / "bad"), "--no-rich", "--config", f"input_dir={one}",
                      "timestamp_hop_ms=50")
    err = one_line_error(refused)
    assert "`timestamp_hop_ms` must divide the 160 ms patch into whole 10 ms frames: one of 10, 20, 40, 80, 160, but is 50" in err
    assert not (tmp_path / "bad" / "files.safetensors").exists()


def test_a_split_whose_paths_the_header_cannot_hold_is_refused_before_embedding() -> None:
    from aape_plugin.data.clips import ClipEntry
    from aape_plugin.recipes.extract import MAX_PATHS_BYTES, SplitTooLargeError, check_paths_fit

    entries = [ClipEntry(p) for p in KEYWORDS[:3]]
    check_paths_fit("files", entries)  # the demo clips fit
    size = len(json.dumps([str(p) for p in KEYWORDS[:3]]))
    check_paths_fit("files", entries, limit=size)
    with pytest.raises(SplitTooLargeError, match=rf"^The 3 paths of split 'files' take .* MB, more than the .* MB the safetensors "
                                                 rf"header holds beside the embeddings; extract it in parts"):
        check_paths_fit("files", entries, limit=size - 1)
    assert MAX_PATHS_BYTES < 100_000_000  # safetensors refuses headers above 100 MB
