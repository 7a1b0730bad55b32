"""One clip -> normalised log-mel: decode (only the crop), resample, log-mel, crop/pad, normalise.

Two stages, so that a reader can run them in different threads (a pipeline: while one clip's
log-mel is computed, the next clip is being decoded): :meth:`ClipLoader.decode` (libsndfile:
one open of the file, the crop's samples in the file's own integer type, so the decoding thread
does no float conversion) and :meth:`ClipLoader.features` (torch: float mono, resample, log-mel).
Calling the loader runs both.
"""

from __future__ import annotations

import random
from typing import Any, Literal, TypeAlias

import torch
import torch.nn.functional as F

from aape_plugin.data.audio import AudioInfo, AudioReadError, decode_span, resample, to_mono_float
from aape_plugin.data.clip_report import report_resampled, report_short
from aape_plugin.data.features import LogMel, LogMelConfig
from aape_plugin.data.stats import FeatureStats

Crop: TypeAlias = Literal["random", "centre", "start", "none"]


class ClipLoader:
    """Turns a manifest example into model input; never raises on bad audio.

    Called from fairseq2's data-pipeline worker threads. Cropping happens on the waveform
    before resampling, so only what is used is decoded and resampled; the random offset is
    drawn from ``(seed, epoch, clip index)``, so a resumed run crops exactly as an
    uninterrupted one. Clips shorter than the crop are padded with zeros after normalisation
    (the data set's mean), and ``num_frames`` tells the valid length; a clip shorter than half
    an STFT window is padded with silence first (:class:`LogMel`) and named in the log.
    """

    def __init__(
        self,
        features: LogMelConfig,
        stats: FeatureStats,
        *,
        num_frames: int | None,
        crop: Crop,
        seed: int,
    ) -> None:
        if crop not in ("random", "centre", "start", "none"):
            raise ValueError(f"`crop` must be 'random', 'centre', 'start' or 'none', but is {crop!r} instead.")

        if crop != "none" and (num_frames is None or num_frames < 1):
            raise ValueError(f"`num_frames` must be a positive number of frames when cropping, but is {num_frames}.")

        stats.validate()

        self.features_config = features
        self.stats = stats
        self.num_frames = num_frames
        self.crop: Crop = crop
        self.seed = seed
        self.epoch = 0
        self.logmel = LogMel(features)

    def __call__(self, example: dict[str, Any]) -> dict[str, Any]:
        return self.features(self.decode(example))

    def decode(self, example: dict[str, Any]) -> dict[str, Any]:
        """Stage 1: the crop's samples at the file's rate, as the file stores them
        (``example["wave"]``: frames x channels, int16 for 16-bit audio; ``["rate"]``)."""
        try:
            example["wave"], example["rate"] = self._decode(example["path"], example["index"])
            example["ok"] = True
        except AudioReadError as ex:
            example["ok"], example["reason"] = False, ex.reason
        except Exception as ex:  # anything else a corrupt file can raise inside a decoder
            example["ok"], example["reason"] = False, f"{type(ex).__name__}: {ex}"

        return example

    def features(self, example: dict[str, Any]) -> dict[str, Any]:
        """Stage 2: to float mono, resample, log-mel, normalise, crop or pad (``example["features"]``;
        also ``["num_samples"]`` after resampling and cropping, and the file's ``["source_rate"]``)."""
        if not example["ok"]:
            return example

        try:
            example["source_rate"] = example.pop("rate")
            example["features"], example["num_frames"], example["num_samples"] = self._features(
                example["path"], example.pop("wave"), example["source_rate"])
        except AudioReadError as ex:
            example["ok"], example["reason"] = False, ex.reason
        except Exception as ex:
            example["ok"], example["reason"] = False, f"{type(ex).__name__}: {ex}"

        return example

    def _decode(self, path: str, index: int) -> tuple[torch.Tensor, int]:
        cfg = self.features_config

        def span(info: AudioInfo) -> tuple[float, float | None]:
            if self.crop == "none":
                return 0.0, None
            assert self.num_frames is not None
            # A centred STFT gives n_samples // hop + 1 frames.
            duration = cfg.num_samples(self.num_frames) / cfg.sample_rate
            spare = max(info.duration - duration, 0.0)
            if self.crop == "random":
                return random.Random((self.seed * 1_000_003 + self.epoch) * 1_000_003 + index).uniform(0.0, spare), duration
            if self.crop == "centre":
                return spare / 2, duration
            return 0.0, duration

        return decode_span(path, span)

    def _features(self, path: str, wave: torch.Tensor, rate: int) -> tuple[torch.Tensor, int, int]:
        cfg = self.features_config

        if rate != cfg.sample_rate:
            report_resampled(path, rate, cfg.sample_rate)
        wave = resample(to_mono_float(wave), rate, cfg.sample_rate)

        if self.crop != "none":
            wave = wave[: max(cfg.num_samples(self.num_frames), 1)]  # type: ignore[arg-type]

        if wave.numel() < cfg.min_reflect_samples:
            report_short(path, wave.numel(), cfg.min_reflect_samples, cfg.sample_rate)

        mel = self.logmel(wave)  # (n_mels, frames)

        mel = (mel - self.stats.mean) / self.stats.std

        valid = mel.size(1)

        if self.num_frames is not None and self.crop != "none":
            valid = min(valid, self.num_frames)
            if mel.size(1) >= self.num_frames:
                mel = mel[:, : self.num_frames]
            else:
                mel = F.pad(mel, (0, self.num_frames - mel.size(1)))

        return mel.unsqueeze(0).contiguous(), valid, wave.numel()
