"""Reading audio clips: any format libsndfile decodes, any rate and channel count -> 16 kHz mono.

Decoding uses libsndfile through ``soundfile`` (the library fairseq2n also builds on), which
reads only the frames asked for, so a reader that crops 6 s out of a 10 s clip decodes 6 s.
Resampling is torchaudio's.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio
from torch import Tensor

from aape_plugin.data.clip_report import report_truncated


class AudioReadError(Exception):
    """A clip could not be read; the message names the file and the reason."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")

        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class AudioInfo:
    """What the file header says."""

    sample_rate: int
    num_frames: int
    """Samples per channel."""
    channels: int

    @property
    def duration(self) -> float:
        return self.num_frames / self.sample_rate


def audio_info(path: Path | str) -> AudioInfo:
    """Reads the header only."""
    if not Path(path).is_file():
        raise AudioReadError(path, "no such file")

    try:
        info = soundfile.info(str(path))
    except FileNotFoundError:
        raise AudioReadError(path, "no such file") from None
    except (RuntimeError, soundfile.LibsndfileError) as ex:
        raise AudioReadError(path, f"not a readable audio file ({_reason(ex)})") from None

    return AudioInfo(int(info.samplerate), int(info.frames), int(info.channels))


def _reason(ex: Exception) -> str:
    return str(ex).split(": ", 1)[-1] if isinstance(ex, soundfile.LibsndfileError) else str(ex)


def load_waveform(
    path: Path | str,
    sample_rate: int = 16_000,
    *,
    offset: float = 0.0,
    duration: float | None = None,
    info: AudioInfo | None = None,
) -> Tensor:
    """Decodes ``[offset, offset + duration)`` seconds of a clip as float32 mono at ``sample_rate``.

    Multichannel audio is averaged to mono; integer formats are scaled to [-1, 1].

    :raises AudioReadError: the file is missing, not audio, truncated, empty, or holds
        non-finite samples.
    """
    if info is None:
        info = audio_info(path)

    return resample(decode_waveform(path, offset=offset, duration=duration, info=info), info.sample_rate, sample_rate)


def decode_waveform(path: Path | str, *, offset: float = 0.0, duration: float | None = None, info: AudioInfo | None = None) -> Tensor:
    """:func:`load_waveform` without the resampling: mono float32 at the file's own rate."""
    if info is None:
        info = audio_info(path)

    if info.num_frames <= 0 or info.sample_rate <= 0:
        raise AudioReadError(path, "the file holds no samples")

    start = min(max(int(round(offset * info.sample_rate)), 0), info.num_frames)

    stop = info.num_frames if duration is None else min(start + int(math.ceil(duration * info.sample_rate)), info.num_frames)

    try:
        data, _ = soundfile.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as ex:
        raise AudioReadError(path, f"decoding failed ({_reason(ex)})") from None

    if data.shape[0] == 0:
        raise AudioReadError(path, "decoding returned no samples (truncated file?)")

    if data.shape[0] < stop - start:
        report_truncated(path, start + data.shape[0], info.num_frames)

    if not np.isfinite(data).all():
        raise AudioReadError(path, "the audio holds NaN or infinite samples")

    return torch.from_numpy(np.ascontiguousarray(data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]))


def resample(wave: Tensor, orig: int, new: int) -> Tensor:
    """``wave`` from ``orig`` Hz to ``new`` Hz (unchanged when equal), contiguous."""
    if orig != new:
        wave = resampler(orig, new)(wave)
    return wave.contiguous()


_resamplers: dict[tuple[int, int], torchaudio.transforms.Resample] = {}
_resamplers_lock = threading.Lock()


def resampler(orig: int, new: int) -> torchaudio.transforms.Resample:
    """torchaudio's band-limited sinc resampler, one per rate pair: building its kernel costs
    about as much as applying it, so it is built once (and shared by reader threads)."""
    with _resamplers_lock:
        module = _resamplers.get((orig, new))
        if module is None:
            module = torchaudio.transforms.Resample(orig, new)
            _resamplers[(orig, new)] = module
        return module
