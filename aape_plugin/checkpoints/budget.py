"""How large a checkpoint file may be, from what the run's configuration implies."""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1 << 20

PICKLE_LIMIT = 64 * MiB
"""The pickled structure of a pickle checkpoint being converted (its tensors are separate
records): the largest the recipes wrote is a data reader's, tens of kilobytes."""

SLACK = 16 * MiB
"""Added to every budget: the structure, the header and small states (RNG, metric sums)."""


@dataclass(frozen=True)
class FileBudget:
    """The most a checkpoint file may hold.

    ``max_bytes`` bounds the file (and, for a pickle checkpoint being converted, the sum of its
    records); ``max_pickle_bytes`` a pickle's ``data.pkl``; the pickle's expanded size (every shared reference counted again, tensors by
    the bytes of their view) is bounded by ``max_bytes`` too, so no structure can grow past the
    file when a consumer walks or copies it.
    """

    max_bytes: int
    kind: str
    """What the file holds (``model``, ``optimizer``, ``trainer``, ``data_reader``), for messages."""

    basis: str
    """What the limit was derived from, for messages (e.g. ``aape_tiny: 1.9M parameters``)."""

    max_pickle_bytes: int = PICKLE_LIMIT

    def __post_init__(self) -> None:
        if self.max_bytes <= 0:
            raise ValueError(f"`max_bytes` must be > 0, but is {self.max_bytes}.")


def model_budget(state_bytes: int, basis: str) -> FileBudget:
    """A model state file: the model's own tensors (one rank holds at most all of them)."""
    return FileBudget(max_bytes=state_bytes + SLACK, kind="model", basis=basis)


def optimizer_budget(state_bytes: int, basis: str) -> FileBudget:
    """AdamW keeps two moments per parameter and a step count: at most three times the model."""
    return FileBudget(max_bytes=3 * state_bytes + SLACK, kind="optimizer", basis=basis)


def trainer_budget() -> FileBudget:
    """The trainer's step, learning-rate schedule, RNG states and metric sums: kilobytes."""
    return FileBudget(max_bytes=SLACK, kind="trainer", basis="the trainer's counters, RNG and metric states")


def data_reader_budget(*, batch_size: int, num_frames: int, num_mel_bins: int, num_prefetch: int,
                       num_parallel_calls: int, basis: str) -> FileBudget:
    """A reader's buffers: ``num_prefetch`` batches ahead plus the one being bucketed, and the
    decoded crops waiting between the decoding and the front-end stage (at most three per
    parallel call), each counted as 8 channels of float32 at 192 kHz, the widest audio a clip
    file can bring."""
    features = batch_size * num_mel_bins * num_frames * 4
    seconds = num_frames / 100 + 0.1
    decoded = int(seconds * 192_000 * 8 * 4)
    total = (num_prefetch + 2) * features + 3 * num_parallel_calls * decoded
    return FileBudget(max_bytes=total + SLACK, kind="data_reader", basis=basis)


def describe_bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", MiB), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"
