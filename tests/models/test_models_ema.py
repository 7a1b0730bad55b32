"""The teacher: no gradients, eval mode, exact EMA update, decay schedule."""

import math

import pytest
import torch

from aape_plugin.losses import AapeCriterion, AapeCriterionConfig
from aape_plugin.models.archs import aape_tiny
from aape_plugin.models.ema import EmaConfig, ema_decay
from aape_plugin.models.factory import create_aape_model


def test_teacher_gets_no_gradient_and_follows_the_ema_formula() -> None:
    torch.manual_seed(0)
    model = create_aape_model(aape_tiny())
    model.train()
    assert not model.teacher.training and model.student.training

    # Teacher and student start identical.
    for t, s in zip(model.teacher.parameters(), model.student.parameters()):
        torch.testing.assert_close(t, s, rtol=0, atol=0)

    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = AapeCriterion(AapeCriterionConfig())(model(torch.randn(4, 1, 80, 96))).total
    loss.backward()

    assert all(p.grad is None and not p.requires_grad for p in model.teacher.parameters())

    before = [p.detach().clone() for p in model.teacher.parameters()]
    opt.step()
    decay = 0.9
    model.update_teacher(decay)

    moved = 0
    for t_new, t_old, s in zip(model.teacher.parameters(), before, model.student.parameters()):
        # Exact up to float32 rounding (one unit in the last place).
        expected = decay * t_old.double() + (1 - decay) * s.double()
        torch.testing.assert_close(t_new.double(), expected, rtol=1.2e-7, atol=1e-9)
        moved += int(not torch.equal(t_new, t_old))
    assert moved > 0


def test_decay_schedule_is_a_half_cosine_from_start_to_end() -> None:
    config = EmaConfig(start=0.9998, end=0.99999, num_steps=1000)
    assert ema_decay(config, 0) == pytest.approx(0.9998)
    assert ema_decay(config, 500) == pytest.approx((0.9998 + 0.99999) / 2)
    assert ema_decay(config, 1000) == pytest.approx(0.99999)
    assert ema_decay(config, 5000) == pytest.approx(0.99999)
    values = [ema_decay(config, s) for s in range(0, 1001, 50)]
    assert all(b >= a for a, b in zip(values, values[1:]))
    quarter = 0.99999 - (0.99999 - 0.9998) * (1 + math.cos(math.pi / 4)) / 2
    assert ema_decay(config, 250) == pytest.approx(quarter)


def test_bad_decay_is_named() -> None:
    model = create_aape_model(aape_tiny())
    with pytest.raises(ValueError, match="EMA decay"):
        model.update_teacher(1.5)
    result = EmaConfig(start=2.0).validate()
    assert result.has_error() and "EMA decays must be in [0, 1]" in str(result)
