"""The HEAR API (Turian et al., 2022) for any encoder of the AaPE family.

    from aape_plugin import hear
    model = hear.load_model("aape_tiny_demo")          # or a run folder, or a checkpoint file
    scene = hear.get_scene_embeddings(audio, model)    # audio: (n_sounds, n_samples) at 16 kHz
    frames, timestamps_ms = hear.get_timestamp_embeddings(audio, model)

Scene embeddings are the probe's clip embeddings (per time patch, the frequency tokens
concatenated, averaged over the clip); timestamp embeddings are those per-patch vectors, one
every 160 ms (16 frames of 10 ms) at the patch centres, or resampled to ``timestamp_hop_ms``
by linear interpolation when given (HEAR suggests 50 ms or less). Any length from 0.1 s
(one patch, zero-padded) to minutes (encoded in windows of the model's input length) works.
"""

from __future__ import annotations

import torch
from fairseq2.device import detect_default_device
from torch import Tensor
from torch.nn import Module

from aape_plugin.data.stats import FeatureStats
from aape_plugin.inference.embedder import EncoderEmbedder
from aape_plugin.inference.loading import ensure_fairseq2, load_encoder


class HearModel(Module):
    """What :func:`load_model` returns: the encoder plus the attributes HEAR requires."""

    sample_rate: int = 16_000

    def __init__(self, embedder: EncoderEmbedder, timestamp_hop_ms: float | None = None) -> None:
        super().__init__()
        self.embedder = embedder
        self.encoder = embedder.encoder
        self.timestamp_hop_ms = timestamp_hop_ms

    @property
    def scene_embedding_size(self) -> int:
        return self.embedder.clip_dim

    @property
    def timestamp_embedding_size(self) -> int:
        return self.embedder.frame_dim


def load_model(
    model_file_path: str = "aape_tiny_demo",
    *,
    device: str | None = None,
    with_cls: bool = False,
    timestamp_hop_ms: float | None = None,
    stats: FeatureStats | None = None,
) -> HearModel:
    """:param model_file_path: a pre-training run folder, a ``.pt``/``.safetensors`` encoder file
    of ``aape_tiny`` (other archs: use :func:`aape_plugin.inference.loading.load_encoder`), or
    an asset card name (default: the demo model shipped with the package).
    :param device: default: fairseq2's (``FAIRSEQ2_DEVICE``, else the GPU of ``LOCAL_RANK``
        or the only visible one, else the CPU)."""
    ensure_fairseq2()
    dev = torch.device(device) if device else detect_default_device()
    arch = "aape_tiny" if str(model_file_path).endswith((".pt", ".safetensors")) else None
    loaded = load_encoder(model_file_path, arch=arch, device=dev)
    stats = stats or loaded.stats
    if stats is None:
        raise ValueError(
            f"{model_file_path} does not say which log-mel statistics it was trained with; pass "
            f"`stats=FeatureStats(mean=..., std=...)` (those of its pre-training data)."
        )
    embedder = EncoderEmbedder(loaded.encoder, stats, num_frames=loaded.config.encoder.num_frames, with_cls=with_cls, device=dev)
    return HearModel(embedder, timestamp_hop_ms)


def _check_audio(audio: Tensor) -> Tensor:
    if audio.dim() != 2:
        raise ValueError(f"`audio` must be (n_sounds, n_samples) at 16 kHz, but has shape {tuple(audio.shape)}.")
    if audio.size(1) == 0:
        raise ValueError("`audio` has no samples.")
    return audio


@torch.no_grad()
def get_scene_embeddings(audio: Tensor, model: HearModel) -> Tensor:
    """``(n_sounds, scene_embedding_size)``."""
    clip, _ = model.embedder.embed_waves(_check_audio(audio))
    return clip


@torch.no_grad()
def get_timestamp_embeddings(audio: Tensor, model: HearModel) -> tuple[Tensor, Tensor]:
    """``(n_sounds, n_timestamps, timestamp_embedding_size)`` and the timestamps in ms
    ``(n_sounds, n_timestamps)``, at the centres of the time steps."""
    audio = _check_audio(audio)
    _, frames = model.embedder.embed_waves(audio)
    duration_ms = 1000.0 * audio.size(1) / model.sample_rate
    hop_ms = 1000.0 * model.embedder.frame_hop_seconds
    # Only time steps that start inside the clip (the last window is padded to a patch).
    count = max(1, min(frames.size(1), int(-(-duration_ms // hop_ms))))
    frames = frames[:, :count]
    starts = torch.arange(count, dtype=torch.float64) * hop_ms
    # Centre of each step's part inside the clip (the last step may reach past the end).
    stamps = torch.minimum(starts + hop_ms / 2, (starts + duration_ms) / 2)

    if model.timestamp_hop_ms is not None and model.timestamp_hop_ms < hop_ms and count > 1:
        fine = torch.arange(0.0, duration_ms, model.timestamp_hop_ms, dtype=torch.float64)
        position = ((fine - stamps[0]) / hop_ms).clamp(0, count - 1)
        frames = _interp(frames, position)
        stamps = fine

    return frames, stamps.float().unsqueeze(0).expand(audio.size(0), -1).contiguous()


def _interp(frames: Tensor, position: Tensor) -> Tensor:
    """Linear interpolation of ``(N, T, E)`` at fractional time indices ``position``."""
    lo = position.floor().long()
    hi = torch.clamp(lo + 1, max=frames.size(1) - 1)
    w = (position - lo).float()[None, :, None]
    return frames[:, lo] * (1 - w) + frames[:, hi] * w
