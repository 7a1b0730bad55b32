"""Host-to-device copies that do not make the host wait for the device."""

from __future__ import annotations

import torch
from torch import Tensor


def to_device_async(value: Tensor, device: torch.device, dtype: torch.dtype | None = None) -> Tensor:
    """``value`` (built on the host) on ``device``, without a stream synchronisation.

    A plain ``.to(cuda)`` from pageable memory waits for every kernel queued before it; from
    pinned memory with ``non_blocking=True`` it is queued like a kernel, and PyTorch keeps the
    pinned block alive until the copy has run. On the CPU (and other devices) it is a plain
    ``.to``.
    """
    if dtype is not None and value.dtype != dtype:
        value = value.to(dtype)
    if device.type == "cuda" and value.device.type == "cpu":
        return value.pin_memory().to(device, non_blocking=True)
    return value.to(device, non_blocking=True)
