"""Reading audio clips: any format libsndfile decodes, any rate and channel count -> 16 kHz mono.

Decoding uses libsndfile through ``soundfile`` (the library fairseq2n also builds on), which
reads only the frames asked for, so a reader that crops 6 s out of a 10 s clip decodes 6 s.
Resampling is torchaudio's.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    with _open(path) as (_, info):
        return info


@contextmanager
def _open(path: Path | str) -> Iterator[tuple[soundfile.SoundFile, AudioInfo]]:
    """The file, opened once, with its header; errors name the file and say why."""
    if not Path(path).is_file():
        raise AudioReadError(path, "no such file")

    try:
        handle = soundfile.SoundFile(str(path))
    except FileNotFoundError:
        raise AudioReadError(path, "no such file") from None
    except (RuntimeError, soundfile.LibsndfileError) as ex:
        raise AudioReadError(path, f"not a readable audio file ({_reason(ex)})") from None

    with handle:
        yield handle, AudioInfo(int(handle.samplerate), int(handle.frames), int(handle.channels))


def _reason(ex: Exception) -> str:
    return str(ex).split(": ", 1)[-1] if isinstance(ex, soundfile.LibsndfileError) else str(ex)


# Integer subtypes libsndfile can hand over as integers that scale exactly to its own float32
# output: 8/16-bit samples as int16 (scaled by 2**-15), 24-bit as int32 (left-aligned, 2**-31).
# Anything else (float, 32-bit integer, lossy codecs) is read as float32.
_NATIVE_DTYPES = {"PCM_S8": "int16", "PCM_U8": "int16", "PCM_16": "int16", "PCM_24": "int32"}
_SCALES = {torch.int16: 2.0**-15, torch.int32: 2.0**-31}


def load_waveform(
    path: Path | str,
    sample_rate: int = 16_000,
    *,
    offset: float = 0.0,
    duration: float | None = None,
) -> Tensor:
    """Decodes ``[offset, offset + duration)`` seconds of a clip as float32 mono at ``sample_rate``.

    Multichannel audio is averaged to mono; integer formats are scaled to [-1, 1].

    :raises AudioReadError: the file is missing, not audio, truncated, empty, or holds
        non-finite samples.
    """
    samples, rate = decode_span(path, lambda info: (offset, duration))
    return resample(to_mono_float(samples), rate, sample_rate)


def decode_waveform(path: Path | str, *, offset: float = 0.0, duration: float | None = None) -> Tensor:
    """:func:`load_waveform` without the resampling: mono float32 at the file's own rate."""
    return to_mono_float(decode_span(path, lambda info: (offset, duration))[0])


def decode_span(path: Path | str, span: Callable[[AudioInfo], tuple[float, float | None]]) -> tuple[Tensor, int]:
    """The samples of ``span(header) = (offset, duration)`` seconds (duration ``None``: to the
    end) and the file's rate, from one open of the file.

    The samples are ``(frames, channels)`` in the file's own integer type where it has one
    (16-bit audio as int16: libsndfile skips its float conversion and the tensor is half the
    size), float32 otherwise; :func:`to_mono_float` turns them into what :func:`decode_waveform`
    returns, bit for bit. Splitting the two lets a reader decode in one thread and convert in
    another.
    """
    with _open(path) as (handle, info):
        if info.num_frames <= 0 or info.sample_rate <= 0:
            raise AudioReadError(path, "the file holds no samples")

        offset, duration = span(info)

        start = min(max(int(round(offset * info.sample_rate)), 0), info.num_frames)

        stop = info.num_frames if duration is None else min(start + int(math.ceil(duration * info.sample_rate)), info.num_frames)

        dtype = _NATIVE_DTYPES.get(handle.subtype, "float32")

        try:
            if start > 0:
                handle.seek(start)
            data = handle.read(stop - start, dtype=dtype, always_2d=True)
        except (RuntimeError, soundfile.LibsndfileError) as ex:
            raise AudioReadError(path, f"decoding failed ({_reason(ex)})") from None

    if data.shape[0] == 0:
        raise AudioReadError(path, "decoding returned no samples (truncated file?)")

    if data.shape[0] < stop - start:
        report_truncated(path, start + data.shape[0], info.num_frames)

    if dtype == "float32" and not np.isfinite(data).all():
        raise AudioReadError(path, "the audio holds NaN or infinite samples")

    return torch.from_numpy(data), info.sample_rate


def to_mono_float(samples: Tensor) -> Tensor:
    """``(frames, channels)`` samples from :func:`decode_span` as contiguous float32 mono in
    [-1, 1] (channels averaged)."""
    scale = _SCALES.get(samples.dtype)
    wave = samples.float() if scale is None else samples.float().mul_(scale)
    return (wave.mean(dim=1) if wave.size(1) > 1 else wave[:, 0]).contiguous()


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
