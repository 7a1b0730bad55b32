"""The batch every AaPE reader yields."""

from __future__ import annotations

from dataclasses import dataclass, field

from fairseq2.device import Device, SupportsDeviceTransfer
from torch import Tensor


@dataclass
class AudioBatch(SupportsDeviceTransfer):
    """Normalised log-mel clips with their labels."""

    features: Tensor
    """``(B, 1, n_mels, frames)`` float32, ``(logmel - mean) / std``."""

    num_frames: Tensor
    """``(B,)`` valid frames per clip (the rest is padding when clips are not cropped)."""

    paths: list[str]
    """Where each clip came from."""

    labels: Tensor | None = None
    """``(B,)`` int64 class indices (single-label), ``(B, C)`` float multi-hot (multi-label),
    or ``None`` for unlabelled data."""

    indices: Tensor | None = None
    """``(B,)`` each clip's position in its split's list (stable across processes and runs)."""

    num_skipped: int = 0
    """Unreadable clips skipped while this batch was assembled (see the log for which)."""

    extras: dict[str, Tensor] = field(default_factory=dict)
    """From the readers: ``num_samples`` ``(B,)`` each clip's samples at the model's rate (after
    cropping), ``source_rates`` ``(B,)`` each file's own rate."""

    def to(self, device: Device, *, non_blocking: bool = False) -> None:
        self.features = self.features.to(device, non_blocking=non_blocking)
        self.num_frames = self.num_frames.to(device, non_blocking=non_blocking)
        if self.labels is not None:
            self.labels = self.labels.to(device, non_blocking=non_blocking)

    @property
    def batch_size(self) -> int:
        return self.features.size(0)
