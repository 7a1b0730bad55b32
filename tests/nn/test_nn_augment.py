"""The fine-tuning augmentations do what their docstrings say: SpecAugment zeroes at most two
bands per axis of bounded width, mixup mixes inputs and targets with the same weight and
partner, the random resized crop stretches a stretch of time and leaves frequency alone."""

import pytest
import torch

from aape_plugin.nn.augment import mixup, random_resized_crop, spec_augment


def bands(mask: torch.Tensor) -> list[tuple[int, int]]:
    """(start, width) of each run of True in a 1-d mask."""
    runs, start = [], None
    for i, v in enumerate(mask.tolist() + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


@pytest.mark.parametrize("axis", ["freq", "time"])
def test_spec_augment_zeroes_at_most_two_bounded_bands_per_clip(axis: str) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 80, 100) + 1.0  # no zeros of its own
    width = 16
    out = spec_augment(x, freq_mask=width if axis == "freq" else 0, time_mask=width if axis == "time" else 0, generator=g)
    assert out.shape == x.shape and (x >= 1.0).all()  # the input is not modified
    zero = out == 0
    widths = []
    for b in range(x.size(0)):
        # A band covers the whole other axis: a zeroed frequency row is zero at every frame.
        line = zero[b, 0].all(dim=1) if axis == "freq" else zero[b, 0].all(dim=0)
        assert zero[b, 0].any(dim=1 if axis == "freq" else 0).eq(line).all()
        runs = bands(line)
        assert len(runs) <= 2 and line.sum() <= 2 * width
        widths += [w for _, w in runs]
        keep = ~zero[b]
        assert torch.equal(out[b][keep], x[b][keep])  # everything else is untouched
    # Widths are drawn from 0..width: over 64 clips both small and near-maximal bands occur.
    assert min(widths) < 4 and max(widths) >= width - 2
    # Every clip draws its own masks.
    assert len({tuple(zero[b, 0].all(dim=1 if axis == "freq" else 0).tolist()) for b in range(64)}) > 32


def test_spec_augment_with_zero_widths_is_the_identity() -> None:
    x = torch.randn(4, 1, 80, 50)
    assert torch.equal(spec_augment(x, freq_mask=0, time_mask=0), x)


def test_mixup_mixes_inputs_and_targets_alike() -> None:
    torch.manual_seed(0)
    n, c = 16, 16
    # Clip i is the constant i; its target is class i. A mixed clip's value then names the
    # classes and weights its mixed target must hold.
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 4, 6).clone()
    y = torch.eye(c)[:n]
    lams = []
    for _ in range(50):
        mx, my = mixup(x, y, alpha=0.3)
        assert torch.allclose(my.sum(dim=1), torch.ones(n))
        assert torch.allclose(mx[:, 0, 0, 0], my @ torch.arange(c, dtype=torch.float32), atol=1e-5)
        assert torch.allclose(mx, mx[:, :, :1, :1].expand_as(mx))
        lams.append(float(my.max(dim=1).values.min()))
    # Beta(0.3, 0.3) is U-shaped: mostly near-pure mixtures, some strong ones.
    assert sum(l > 0.9 for l in lams) > 20 and any(l < 0.8 for l in lams)
    same_x, same_y = mixup(x, y, alpha=0.0)
    assert same_x is x and same_y is y


def test_random_resized_crop_stretches_time_and_keeps_frequency() -> None:
    g = torch.Generator().manual_seed(0)
    b, f, t = 32, 80, 100
    per_bin = torch.arange(f, dtype=torch.float32).view(1, 1, f, 1).expand(b, 1, f, t)
    torch.testing.assert_close(random_resized_crop(per_bin, min_scale=0.6, generator=g), per_bin)  # constant in time
    ramp = torch.arange(t, dtype=torch.float32).view(1, 1, 1, t).expand(b, 1, f, t)
    out = random_resized_crop(ramp, min_scale=0.6, generator=g)
    assert out.shape == ramp.shape
    spans = []
    for i in range(b):
        line = out[i, 0, 0]
        assert torch.equal(out[i, 0], line.expand(f, t))  # the same crop for every bin
        assert (line.diff() >= 0).all() and line.min() >= 0 and line.max() <= t - 1
        spans.append(float(line[-1] - line[0]))
    # A stretch of 60-100% of the frames, stretched back to the full length.
    assert 0.6 * t - 3 <= min(spans) and max(spans) <= t - 1
    assert max(spans) - min(spans) > 10
    assert torch.equal(random_resized_crop(ramp, min_scale=1.0), ramp)
