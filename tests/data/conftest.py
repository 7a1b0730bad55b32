"""Real clips from the demo data and generated odd formats for the data tests."""

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import torchaudio

DEMO = Path(__file__).resolve().parents[2] / "assets" / "demo"

REAL_CLIP = DEMO / "notes" / "gm000_p060.flac"


def real_wave() -> np.ndarray:
    data, rate = soundfile.read(str(REAL_CLIP), dtype="float32")
    assert rate == 16_000
    return data


# Clips shorter than half a 25 ms STFT window (201 samples): used, padded with silence.
SHORT_CLIPS = {"short_1.wav": 1, "short_10.wav": 10, "short_28.wav": 28, "short_50ms.wav": 800}


@pytest.fixture(scope="session")
def odd_corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, bool]]:
    return make_odd_corpus(tmp_path_factory.mktemp("odd"))


def make_odd_corpus(root: Path) -> dict[str, tuple[Path, bool]]:
    """name -> (path, decodable), files written under ``root``. Decodable odd formats and
    short clips must just work; the rest must be skipped and reported."""
    x = real_wave()
    out: dict[str, tuple[Path, bool]] = {}

    def add(name: str, decodable: bool) -> Path:
        path = root / name
        out[name] = (path, decodable)
        return path

    soundfile.write(str(add("pcm_u8.wav", True)), x, 16_000, subtype="PCM_U8")
    soundfile.write(str(add("pcm_24.wav", True)), x, 16_000, subtype="PCM_24")
    soundfile.write(str(add("float64.wav", True)), x.astype(np.float64), 16_000, subtype="DOUBLE")
    eight = np.stack([x * (0.5 + 0.05 * c) for c in range(8)], axis=1)
    soundfile.write(str(add("eight_channels.flac", True)), eight, 16_000, subtype="PCM_16")
    for rate in (8_000, 96_000):
        y = torchaudio.functional.resample(torch.from_numpy(x), 16_000, rate).numpy()
        soundfile.write(str(add(f"rate_{rate}.wav", True)), y, rate, subtype="PCM_16")
    soundfile.write(str(add("silence.wav", True)), np.zeros(16_000, dtype=np.float32), 16_000)
    soundfile.write(str(add("ogg_vorbis.ogg", True)), x, 16_000, format="OGG", subtype="VORBIS")
    full = REAL_CLIP.read_bytes()
    soundfile.write(str(root / "_full.wav"), x, 16_000, subtype="PCM_16")
    add("truncated.wav", True).write_bytes((root / "_full.wav").read_bytes()[: len(full) // 2])
    (root / "_full.wav").unlink()
    for name, length in SHORT_CLIPS.items():
        soundfile.write(str(add(name, True)), x[8_000 : 8_000 + length], 16_000, subtype="PCM_16")

    bad = bytearray(full)
    bad[:16] = b"\x00GARBAGE!HEADER\x00"
    add("corrupt_header.flac", False).write_bytes(bytes(bad))
    add("truncated.flac", False).write_bytes(full[: len(full) // 3])
    soundfile.write(str(add("zero_samples.wav", False)), np.zeros(0, dtype=np.float32), 16_000)
    nan = x.copy()
    nan[7_900:8_000] = np.nan  # in the middle, inside any crop
    nan[8_100] = np.inf
    soundfile.write(str(add("nan_inf.wav", False)), nan, 16_000, subtype="FLOAT")
    add("text.wav", False).write_text("this is not audio\n" * 50)
    out["missing.wav"] = (root / "does_not_exist.wav", False)
    return out
