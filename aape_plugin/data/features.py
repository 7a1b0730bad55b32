"""The log-mel front end: 16 kHz mono -> 80-bin log-mel, 25 ms window, 10 ms hop, 50-8000 Hz.

The M2D / EVAR convention that AaPE is compared against. Computed with torchaudio's
``MelSpectrogram`` (fairseq2n's fbank has fixed Kaldi options and no frequency range).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio
from torch import Tensor
from torch.nn import Module


@dataclass(kw_only=True)
class LogMelConfig:
    """The front end's settings (defaults: the M2D / EVAR convention)."""

    sample_rate: int = 16_000
    """Audio is resampled to this rate before the STFT."""

    n_mels: int = 80
    """Mel bins."""

    n_fft: int = 400
    """FFT size (25 ms at 16 kHz)."""

    win_length: int = 400
    """Hann window length (25 ms)."""

    hop_length: int = 160
    """Hop (10 ms): 100 frames per second."""

    f_min: float = 50.0
    """Lowest mel filter edge, Hz."""

    f_max: float = 8000.0
    """Highest mel filter edge, Hz."""

    log_offset: float = float(torch.finfo(torch.float32).eps)
    """Added to the mel power before the natural log (as M2D does)."""

    def validate(self) -> None:
        if self.sample_rate <= 0 or self.n_mels <= 0 or self.hop_length <= 0:
            raise ValueError(
                f"`sample_rate`, `n_mels` and `hop_length` must be positive, but are "
                f"{self.sample_rate}, {self.n_mels} and {self.hop_length}."
            )

        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(
                f"The mel range must satisfy 0 <= f_min < f_max <= sample_rate / 2, but is "
                f"[{self.f_min}, {self.f_max}] Hz at {self.sample_rate} Hz."
            )

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    def num_frames(self, num_samples: int) -> int:
        """Frames of a clip of ``num_samples`` (centred STFT: one frame per hop, plus one)."""
        return num_samples // self.hop_length + 1

    def num_samples(self, num_frames: int) -> int:
        """The shortest clip that gives ``num_frames`` frames."""
        return max(num_frames - 1, 0) * self.hop_length

    @property
    def min_reflect_samples(self) -> int:
        """Clips shorter than this (half a window and one sample: 201 at 16 kHz) cannot be
        reflection-padded at the edges; :class:`LogMel` pads them with silence instead."""
        return self.n_fft // 2 + 1


class LogMel(Module):
    """Mono waveform ``(..., samples)`` -> natural-log mel power ``(..., n_mels, frames)``.

    Equal to ``torchaudio.transforms.MelSpectrogram(power=2)`` followed by the log (its
    filterbank and window are used), but the power is taken as ``X conj(X)`` instead of
    ``abs(X)^2``: the complex magnitude costs a square root per bin, which was a third of the
    front end's time in the data loader.

    A clip shorter than :attr:`LogMelConfig.min_reflect_samples` (less than half a 25 ms
    window) is padded with silence instead of its reflection, which it is too short for; it
    still gives ``num_samples // hop + 1`` frames (at least one). Readers report such clips.
    """

    def __init__(self, config: LogMelConfig | None = None) -> None:
        super().__init__()

        config = config or LogMelConfig()

        config.validate()

        self.config = config

        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=config.sample_rate,
            n_fft=config.n_fft,
            win_length=config.win_length,
            hop_length=config.hop_length,
            f_min=config.f_min,
            f_max=config.f_max,
            n_mels=config.n_mels,
            power=2.0,
        )

    def forward(self, waveform: Tensor) -> Tensor:
        spec = self.mel.spectrogram

        shape = waveform.shape

        if shape[-1] == 0:
            raise ValueError("A log-mel spectrogram needs at least one sample, but the waveform has none.")

        stft = torch.stft(
            waveform.reshape(-1, shape[-1]),
            n_fft=spec.n_fft,
            hop_length=spec.hop_length,
            win_length=spec.win_length,
            window=spec.window.to(waveform.dtype),
            center=True,
            pad_mode="reflect" if shape[-1] >= self.config.min_reflect_samples else "constant",
            return_complex=True,
        )

        power = (stft * stft.conj()).real  # |X|^2 without a square root, (N, freq, frames)

        mel = torch.matmul(power.transpose(-1, -2), self.mel.mel_scale.fb).transpose(-1, -2)

        return (mel + self.config.log_offset).log().reshape(*shape[:-1], *mel.shape[-2:])
