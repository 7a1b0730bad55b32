"""Embedding one audio file: the HEAR API's embeddings of whatever a file holds.

    from aape_plugin import hear
    model = hear.load_model("aape_tiny_demo")
    out = hear.embed_file("clip.wav", model)   # out.scene, out.frames, out.timestamps_ms

The file is decoded (libsndfile: WAV, FLAC, OGG, MP3 ...), its channels averaged to mono and
resampled to the model's rate with torchaudio, as the recipes read clips; a down-mix or a
resampling is said in the log, since an 8 kHz file holds nothing above 4 kHz where the model's
mel bands reach 8 kHz. The embeddings are those ``aape_extract`` writes for the same file, on
the same grid (:mod:`aape_plugin.inference.timestamps`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from aape_plugin.data.audio import audio_info, load_waveform
from aape_plugin.data.clip_report import report_short
from aape_plugin.inference.embedder import Embedder
from aape_plugin.inference.timestamps import DEFAULT_HOP_MS, timestamp_embeddings, timestamps_ms

if TYPE_CHECKING:
    from aape_plugin.hear import HearModel

log = logging.getLogger("aape_plugin.inference")


@dataclass
class FileEmbeddings:
    path: str

    scene: Tensor
    """``(scene_embedding_size,)`` float32: the clip embedding."""

    frames: Tensor
    """``(n_timestamps, timestamp_embedding_size)`` float32."""

    timestamps_ms: Tensor
    """``(n_timestamps,)`` float64: milliseconds from the file's start (``5 + m * hop``)."""

    source_rate: int
    """The file's own sample rate (the audio was resampled from it)."""

    source_channels: int
    """The file's channels (averaged to mono)."""


@torch.no_grad()
def embed_file(path: str | Path, model: HearModel | Embedder, *, hop_ms: float | None = None) -> FileEmbeddings:
    """:param model: what :func:`aape_plugin.hear.load_model` returns, or an :class:`Embedder`.
    :param hop_ms: spacing of the frame embeddings (default: the model's ``timestamp_hop_ms``,
        else 40 ms).
    :raises AudioReadError: the file is missing, not audio, empty or holds non-finite samples."""
    from aape_plugin.hear import HearModel  # here: the HEAR module builds on this one

    if isinstance(model, HearModel):
        embedder, hop = model.embedder, hop_ms if hop_ms is not None else model.timestamp_hop_ms
    elif isinstance(model, Embedder):
        embedder, hop = model, hop_ms if hop_ms is not None else DEFAULT_HOP_MS
    else:
        raise TypeError(f"`model` must be what hear.load_model returns (or an Embedder), but is a {type(model).__name__}.")
    info = audio_info(path)
    rate = embedder.sample_rate
    if info.channels > 1:
        log.info("%s: %d channels, averaged to mono.", path, info.channels)
    if info.sample_rate < rate:
        log.warning("%s is at %d Hz, upsampled to %d Hz: it holds nothing above %g Hz, where the model's mel bands reach %g Hz.",
                    path, info.sample_rate, rate, info.sample_rate / 2, rate / 2)
    elif info.sample_rate > rate:
        log.info("%s is at %d Hz, resampled to %d Hz.", path, info.sample_rate, rate)
    wave = load_waveform(path, rate)
    if wave.numel() < embedder.features.min_reflect_samples:
        report_short(path, wave.numel(), embedder.features.min_reflect_samples, rate)
    mel = embedder.normalised_logmel(wave.unsqueeze(0)).unsqueeze(1)  # (1, 1, F, T)
    scene, _, _ = embedder.embed_logmel(mel, torch.tensor([mel.size(-1)]))
    stamps = timestamps_ms(embedder, wave.numel(), hop)
    frames = timestamp_embeddings(embedder, mel, stamps.numel(), hop)
    return FileEmbeddings(path=str(path), scene=scene[0].float().cpu(), frames=frames[0], timestamps_ms=stamps,
                          source_rate=info.sample_rate, source_channels=info.channels)
