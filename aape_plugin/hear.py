"""The HEAR API (Turian et al., 2022) for any encoder of the AaPE family.

    from aape_plugin import hear
    model = hear.load_model("aape_tiny_demo")          # or a run folder, or a checkpoint file
    scene = hear.get_scene_embeddings(audio, model)    # audio: (n_sounds, n_samples) at 16 kHz
    frames, timestamps_ms = hear.get_timestamp_embeddings(audio, model)
    one = hear.embed_file("clip.wav", model)           # any file: decoded, down-mixed, resampled

Scene embeddings are the probe's clip embeddings (per time patch, the frequency tokens
concatenated, averaged over the clip). Timestamp embeddings are the same per-patch vectors,
but every ``timestamp_hop_ms`` (default 40 ms): 10, 20, 40, 80 or 160 ms, at ``5 + m * hop``
ms, computed, not interpolated (:mod:`aape_plugin.inference.timestamps`, the grid
``aape_extract`` writes too). The measured cost is in ``docs/benchmarks.md``.

Input: float audio ``(n_sounds, n_samples)``, mono, at ``model.sample_rate`` (16 kHz), finite.
An array cannot say its rate: audio at another rate gives wrong embeddings without an error,
so resample first (``torchaudio.functional.resample(audio, rate, 16000)``), or pass
``sample_rate=`` to have a mismatch refused, or embed files with :func:`embed_file`, which
decodes, down-mixes and resamples. Integer or non-finite audio, other shapes, and sounds
shorter than one 25 ms analysis window (400 samples; an ``(n_samples, n_channels)`` array
would otherwise be taken as sounds of a few samples) are refused with one line that says what
was expected. Any longer length works (minutes are encoded in windows of the model's input
length). Outputs are float32, and each sound's embeddings do not depend on the other sounds of
the batch.
"""

from __future__ import annotations

import torch
from fairseq2.device import detect_default_device
from torch import Tensor
from torch.nn import Module

from aape_plugin.data.stats import FeatureStats
from aape_plugin.inference.embedder import EncoderEmbedder
from aape_plugin.inference.files import FileEmbeddings, embed_file
from aape_plugin.inference.loading import ensure_fairseq2, load_encoder
from aape_plugin.inference.timestamps import DEFAULT_HOP_MS, num_shifts, timestamp_embeddings
from aape_plugin.inference.timestamps import timestamps_ms as grid_ms

__all__ = ["HearModel", "load_model", "get_scene_embeddings", "get_timestamp_embeddings", "timestamps_ms", "embed_file",
           "FileEmbeddings"]

DEFAULT_TIMESTAMP_HOP_MS = DEFAULT_HOP_MS


class HearModel(Module):
    """What :func:`load_model` returns: the encoder plus the attributes HEAR requires."""

    sample_rate: int = 16_000

    def __init__(self, embedder: EncoderEmbedder, timestamp_hop_ms: float = DEFAULT_TIMESTAMP_HOP_MS) -> None:
        super().__init__()
        self.embedder = embedder
        self.encoder = embedder.encoder
        self.shifts = num_shifts(embedder, timestamp_hop_ms)
        """Encoder passes per window: the patch divided by the hop."""
        self.timestamp_hop_ms = float(timestamp_hop_ms)
        self.sample_rate = embedder.sample_rate

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
    timestamp_hop_ms: float = DEFAULT_TIMESTAMP_HOP_MS,
    stats: FeatureStats | None = None,
) -> HearModel:
    """:param model_file_path: a pre-training run folder, a ``.pt``/``.safetensors`` encoder file
    of ``aape_tiny`` (other archs: use :func:`aape_plugin.inference.loading.load_encoder`), or
    an asset card name (default: the demo model shipped with the package).
    :param device: default: fairseq2's (``FAIRSEQ2_DEVICE``, else the GPU of ``LOCAL_RANK``
        or the only visible one, else the CPU).
    :param timestamp_hop_ms: spacing of the timestamp embeddings: 10, 20, 40, 80 or 160 ms
        (160 / hop encoder passes per window)."""
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


def _check_audio(audio: Tensor, model: HearModel, sample_rate: int | None) -> Tensor:
    """The audio as float32 on the CPU, or an error that says what is wrong with it and what
    was expected."""
    rate = model.sample_rate
    if not isinstance(audio, Tensor):
        raise TypeError(f"`audio` must be a torch.Tensor of shape (n_sounds, n_samples), but is a {type(audio).__name__}.")
    if sample_rate is not None and sample_rate != rate:
        raise ValueError(
            f"`audio` is at {sample_rate} Hz, but the model takes {rate} Hz; resample it first "
            f"(torchaudio.functional.resample(audio, {sample_rate}, {rate})), or embed the file with hear.embed_file."
        )
    if not audio.is_floating_point():
        raise TypeError(
            f"`audio` must hold floating-point samples in [-1, 1], but is {audio.dtype}; convert integer PCM "
            f"first (e.g. int16: audio.float() / 32768)."
        )
    expected = f"`audio` must be (n_sounds, n_samples), mono at {rate // 1000 if rate % 1000 == 0 else rate / 1000:g} kHz"
    shape = tuple(audio.shape)
    if audio.dim() == 1:
        raise ValueError(f"{expected}, but has shape {shape}; for one sound, pass audio.unsqueeze(0).")
    if audio.dim() != 2:
        raise ValueError(
            f"{expected}, but has shape {shape}; down-mix multichannel sounds first, e.g. audio.mean(dim=1) "
            f"for (n_sounds, n_channels, n_samples)."
        )
    if audio.size(0) == 0:
        raise ValueError(f"{expected}, with at least one sound, but has shape {shape}.")
    window = model.embedder.features.win_length
    if audio.size(1) < window:
        raise ValueError(
            f"{expected}, but has shape {shape}: sounds of {audio.size(1)} sample(s), shorter than one "
            f"{1000 * window / rate:g} ms analysis window ({window} samples); an (n_samples, n_channels) array "
            f"must be down-mixed and made one row first: audio.mean(dim=1).unsqueeze(0)."
        )
    audio = audio.detach().to("cpu", torch.float32)
    finite = torch.isfinite(audio).all(dim=1)
    if not finite.all():
        rows = (~finite).nonzero().flatten().tolist()
        raise ValueError(f"`audio` holds NaN or infinite samples (sound(s) {rows[:10]}{'...' if len(rows) > 10 else ''}).")
    return audio


@torch.no_grad()
def get_scene_embeddings(audio: Tensor, model: HearModel, *, sample_rate: int | None = None) -> Tensor:
    """``(n_sounds, scene_embedding_size)`` float32.

    :param sample_rate: the rate of ``audio``, when known: refused unless it is the model's."""
    audio = _check_audio(audio, model, sample_rate)
    clip, _ = model.embedder.embed_waves(audio)
    return clip.float()


def timestamps_ms(num_samples: int, model: HearModel) -> Tensor:
    """``(n_timestamps,)`` float64: ``5 + m * hop`` ms for every ``m`` whose value lies inside a
    clip of ``num_samples`` samples (at least one)."""
    return grid_ms(model.embedder, num_samples, model.timestamp_hop_ms)


@torch.no_grad()
def get_timestamp_embeddings(audio: Tensor, model: HearModel, *, sample_rate: int | None = None) -> tuple[Tensor, Tensor]:
    """``(n_sounds, n_timestamps, timestamp_embedding_size)`` float32 embeddings and the
    timestamps in ms ``(n_sounds, n_timestamps)`` float32 (see the module docstring).

    :param sample_rate: the rate of ``audio``, when known: refused unless it is the model's."""
    audio = _check_audio(audio, model, sample_rate)
    stamps = timestamps_ms(audio.size(1), model)
    mel = model.embedder.normalised_logmel(audio).unsqueeze(1)  # (N, 1, F, T)
    frames = timestamp_embeddings(model.embedder, mel, stamps.numel(), model.timestamp_hop_ms)
    return frames.float(), stamps.float().unsqueeze(0).expand(audio.size(0), -1).contiguous()
