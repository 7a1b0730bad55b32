"""The HEAR API (Turian et al., 2022) for any encoder of the AaPE family.

    from aape_plugin import hear
    model = hear.load_model("aape_tiny_demo")          # or a run folder, or a checkpoint file
    scene = hear.get_scene_embeddings(audio, model)    # audio: (n_sounds, n_samples) at 16 kHz
    frames, timestamps_ms = hear.get_timestamp_embeddings(audio, model)

Scene embeddings are the probe's clip embeddings (per time patch, the frequency tokens
concatenated, averaged over the clip). Timestamp embeddings are the same per-patch vectors,
but every ``timestamp_hop_ms`` (default 40 ms, HEAR suggests 50 ms or less) rather than every
patch (160 ms = 16 frames of 10 ms): the log-mel is encoded once per sub-patch shift (4 times
at 40 ms) and the shifted copies' patches are interleaved, so every embedding is computed,
none interpolated. The hop must divide the patch: 10, 20, 40, 80 or 160 ms. Embedding ``m``
covers the 16 frames centred on ``m * hop + 5`` ms (the first one reaches 7 frames before
the clip, filled with the normalised mean): timestamps are exactly regular and start at the
clip's beginning. They run while they lie inside the clip (at least one). The measured cost
is in ``docs/benchmarks.md``.

Input: float audio ``(n_sounds, n_samples)`` at 16 kHz, finite; integer or non-finite audio
and other shapes are refused. Any length works, from one sample (shorter than half a 25 ms
window it is padded with silence, and a warning says so) to minutes (encoded in windows of the
model's input length). Outputs are float32, and each sound's embeddings do not depend on the
other sounds of the batch.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from fairseq2.device import detect_default_device
from torch import Tensor
from torch.nn import Module

from aape_plugin.data.stats import FeatureStats
from aape_plugin.inference.embedder import EncoderEmbedder
from aape_plugin.inference.loading import ensure_fairseq2, load_encoder

log = logging.getLogger("aape_plugin.hear")

DEFAULT_TIMESTAMP_HOP_MS = 40.0


class HearModel(Module):
    """What :func:`load_model` returns: the encoder plus the attributes HEAR requires."""

    sample_rate: int = 16_000

    def __init__(self, embedder: EncoderEmbedder, timestamp_hop_ms: float = DEFAULT_TIMESTAMP_HOP_MS) -> None:
        super().__init__()
        self.embedder = embedder
        self.encoder = embedder.encoder
        patch_frames = embedder.encoder.patch_size
        frame_ms = 1000.0 / embedder.features.frames_per_second
        valid = [patch_frames // n * frame_ms for n in range(1, patch_frames + 1) if patch_frames % n == 0]
        if not any(math.isclose(timestamp_hop_ms, v) for v in valid):
            raise ValueError(
                f"`timestamp_hop_ms` must divide the {patch_frames * frame_ms:g} ms patch into whole "
                f"{frame_ms:g} ms frames: one of {', '.join(f'{v:g}' for v in sorted(valid))}, but is {timestamp_hop_ms}."
            )
        self.timestamp_hop_ms = float(timestamp_hop_ms)
        self.shifts = round(patch_frames * frame_ms / self.timestamp_hop_ms)
        """Encoder passes per window: the patch divided by the hop."""

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


def _check_audio(audio: Tensor) -> Tensor:
    """The audio as float32, or an error that says what is wrong with it."""
    if not isinstance(audio, Tensor):
        raise TypeError(f"`audio` must be a torch.Tensor of shape (n_sounds, n_samples), but is a {type(audio).__name__}.")
    if not audio.is_floating_point():
        raise TypeError(
            f"`audio` must hold floating-point samples in [-1, 1], but is {audio.dtype}; convert integer PCM "
            f"first (e.g. int16: audio.float() / 32768)."
        )
    if audio.dim() != 2:
        raise ValueError(f"`audio` must be (n_sounds, n_samples) at 16 kHz, but has shape {tuple(audio.shape)}.")
    if audio.size(0) == 0 or audio.size(1) == 0:
        raise ValueError(f"`audio` must hold at least one sound of at least one sample, but has shape {tuple(audio.shape)}.")
    audio = audio.detach().to("cpu", torch.float32)
    finite = torch.isfinite(audio).all(dim=1)
    if not finite.all():
        rows = (~finite).nonzero().flatten().tolist()
        raise ValueError(f"`audio` holds NaN or infinite samples (sound(s) {rows[:10]}{'...' if len(rows) > 10 else ''}).")
    return audio


def _warn_if_short(audio: Tensor, model: HearModel) -> None:
    needed = model.embedder.features.min_reflect_samples
    if audio.size(1) < needed:
        log.warning("The sounds hold %d sample(s), fewer than the %d the STFT needs to mirror their edges; "
                    "they are padded with silence.", audio.size(1), needed)


@torch.no_grad()
def get_scene_embeddings(audio: Tensor, model: HearModel) -> Tensor:
    """``(n_sounds, scene_embedding_size)`` float32."""
    audio = _check_audio(audio)
    _warn_if_short(audio, model)
    clip, _ = model.embedder.embed_waves(audio)
    return clip.float()


def timestamps_ms(num_samples: int, model: HearModel) -> Tensor:
    """``(n_timestamps,)`` float64: ``5 + m * hop`` ms for every ``m`` whose value lies inside a
    clip of ``num_samples`` samples (at least one)."""
    embedder = model.embedder
    frame_ms = 1000.0 / embedder.features.frames_per_second
    duration_ms = 1000.0 * num_samples / model.sample_rate
    first = frame_ms / 2
    count = max(1, math.floor((duration_ms - first) / model.timestamp_hop_ms + 1e-9) + 1)
    return first + torch.arange(count, dtype=torch.float64) * model.timestamp_hop_ms


@torch.no_grad()
def get_timestamp_embeddings(audio: Tensor, model: HearModel) -> tuple[Tensor, Tensor]:
    """``(n_sounds, n_timestamps, timestamp_embedding_size)`` float32 embeddings and the
    timestamps in ms ``(n_sounds, n_timestamps)`` float32 (see the module docstring)."""
    audio = _check_audio(audio)
    _warn_if_short(audio, model)
    embedder = model.embedder
    p = embedder.encoder.patch_size
    step = p // model.shifts  # frames between successive embeddings
    stamps = timestamps_ms(audio.size(1), model)
    count = stamps.numel()

    mel = embedder.normalised_logmel(audio).unsqueeze(1)  # (N, 1, F, T)
    # 7 frames of the normalised mean before the clip centre embedding m on frame m * step
    # (the 16 frames m*step-7 ... m*step+8); after it, enough for the last patch of every copy.
    lead = p // 2 - 1
    per_copy = math.ceil(count / model.shifts)
    mel = F.pad(mel, (lead, max(0, per_copy * p + model.shifts * step - lead - mel.size(-1))))

    frames = torch.zeros(audio.size(0), count, embedder.frame_dim)
    for k in range(min(model.shifts, count)):
        needed = len(range(k, count, model.shifts))
        copy = mel[..., k * step : k * step + needed * p]
        _, copy_frames, _ = embedder.embed_logmel(copy, torch.full((audio.size(0),), copy.size(-1)))
        frames[:, k :: model.shifts] = copy_frames[:, :needed]

    return frames.float(), stamps.float().unsqueeze(0).expand(audio.size(0), -1).contiguous()
