"""The one timestamp grid of the HEAR API and ``aape_extract``.

Frame embeddings are computed every ``hop_ms`` (default 40 ms; HEAR suggests 50 ms or less)
rather than once per patch (160 ms = 16 log-mel frames of 10 ms): the log-mel is encoded once
per sub-patch shift (4 times at 40 ms) and the shifted copies' patches are interleaved, so
every embedding is computed, none interpolated. The hop must divide the patch into whole
frames: 10, 20, 40, 80 or 160 ms. Embedding ``m`` covers the 16 frames centred on
``m * hop + 5`` ms (frame ``t`` of the centred STFT is at ``10 t`` ms; the first embedding
reaches 7 frames before the clip, filled with the normalised mean), so timestamps are exactly
regular from the clip's start. They run while they lie inside the clip (at least one), which
depends on its number of samples, not only on its frames.

Both the HEAR API and ``aape_extract`` call :func:`timestamps_ms` and
:func:`timestamp_embeddings`: the same clip gives the same timestamps, in milliseconds, and
the same embeddings through either.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from aape_plugin.inference.embedder import Embedder

DEFAULT_HOP_MS = 40.0


def valid_hops_ms(embedder: Embedder) -> list[float]:
    """The hops that divide the embedder's step into whole frames, shortest first."""
    step = step_frames(embedder)
    frame_ms = 1000.0 / embedder.features.frames_per_second
    return sorted(step // n * frame_ms for n in range(1, step + 1) if step % n == 0)


def step_frames(embedder: Embedder) -> int:
    """Log-mel frames between two of the embedder's native frame embeddings (16: a patch)."""
    return round(embedder.frame_hop_seconds * embedder.features.frames_per_second)


def num_shifts(embedder: Embedder, hop_ms: float, *, option: str = "timestamp_hop_ms") -> int:
    """Encoder passes per window for ``hop_ms`` (the step divided by the hop), or a
    ``ValueError`` naming ``option`` and the hops that work."""
    valid = valid_hops_ms(embedder)
    if isinstance(hop_ms, bool) or not isinstance(hop_ms, (int, float)) or not any(math.isclose(hop_ms, v) for v in valid):
        frame_ms = 1000.0 / embedder.features.frames_per_second
        raise ValueError(
            f"`{option}` must divide the {step_frames(embedder) * frame_ms:g} ms patch into whole {frame_ms:g} ms frames: "
            f"one of {', '.join(f'{v:g}' for v in valid)}, but is {hop_ms}."
        )
    return round(step_frames(embedder) * 1000.0 / embedder.features.frames_per_second / hop_ms)


def timestamps_ms(embedder: Embedder, num_samples: int, hop_ms: float) -> Tensor:
    """``(n_timestamps,)`` float64: ``5 + m * hop`` ms for every ``m`` whose value lies inside a
    clip of ``num_samples`` samples at the embedder's rate (at least one)."""
    frame_ms = 1000.0 / embedder.features.frames_per_second
    duration_ms = 1000.0 * num_samples / embedder.sample_rate
    first = frame_ms / 2
    count = max(1, math.floor((duration_ms - first) / hop_ms + 1e-9) + 1)
    return first + torch.arange(count, dtype=torch.float64) * hop_ms


@torch.no_grad()
def timestamp_embeddings(embedder: Embedder, mel: Tensor, count: int, hop_ms: float) -> Tensor:
    """The first ``count`` embeddings on the grid of clips of equal length.

    :param mel: normalised log-mel ``(B, 1, F, T)``, every frame valid.
    :param count: embeddings per clip (``len(timestamps_ms(...))``).
    :returns: ``(B, count, frame_dim)`` float32, on the CPU.
    """
    shifts = num_shifts(embedder, hop_ms)
    p = step_frames(embedder)
    step = p // shifts  # frames between successive embeddings
    # 7 frames of the normalised mean before the clip centre embedding m on frame m * step
    # (the 16 frames m*step-7 ... m*step+8); after it, enough for the last patch of every copy.
    lead = p // 2 - 1
    per_copy = math.ceil(count / shifts)
    mel = F.pad(mel, (lead, max(0, per_copy * p + shifts * step - lead - mel.size(-1))))

    frames = torch.zeros(mel.size(0), count, embedder.frame_dim)
    for k in range(min(shifts, count)):
        needed = len(range(k, count, shifts))
        copy = mel[..., k * step : k * step + needed * p]
        _, copy_frames, _ = embedder.embed_logmel(copy, torch.full((mel.size(0),), copy.size(-1)))
        frames[:, k::shifts] = copy_frames[:, :needed].float().cpu()
    return frames
