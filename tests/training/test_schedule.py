"""λ(t) and the LR multiplier at chosen points (PROTOCOL.md §5)."""

from __future__ import annotations

import itertools

import pytest

from liminal_core.specs import FinetuneSpec
from liminal_core.training.schedule import kl_weight, lr_multiplier


@pytest.mark.parametrize(
    ("lambda_0", "epochs", "step", "total", "expected"),
    [
        (1.0, 3, 0, 30, 1.0),  # flat at 1 in phase 1 with the default λ₀
        (1.0, 3, 10, 30, 1.0),  # t = τ
        (1.0, 3, 20, 30, 0.5),  # halfway down phase 2
        (1.0, 3, 30, 30, 0.0),
        (0.5, 3, 0, 30, 0.5),  # phase 1 rises from λ₀ to 1
        (0.5, 3, 5, 30, 0.75),
        (0.5, 3, 10, 30, 1.0),
        (0.5, 3, 25, 30, 0.25),
        (2.0, 2, 0, 8, 2.0),  # λ₀ above 1 falls to 1 over phase 1
        (2.0, 2, 2, 8, 1.5),
        (2.0, 2, 4, 8, 1.0),
        (2.0, 2, 6, 8, 0.5),
        (0.0, 1, 5, 10, 0.5),  # one epoch: τ = 1, the whole run is phase 1
    ],
)
def test_liminal_schedule(lambda_0, epochs, step, total, expected):
    assert kl_weight("liminal", step, total, lambda_0=lambda_0, tau=1.0 / epochs) == pytest.approx(expected)


def test_max_steps_sets_the_clock():
    """t = step / total_steps where total honours max_steps: a 10-step run of a 3-epoch spec reaches 0 at 10."""
    spec = FinetuneSpec(train_data_with_trait="x", method="liminal", max_steps=10)
    values = [kl_weight("liminal", s, 10, lambda_0=spec.lambda_0, tau=spec.resolved_tau) for s in range(11)]
    assert values[0] == 1.0 and values[3] == 1.0
    assert values[10] == 0.0
    assert all(a >= b for a, b in itertools.pairwise(values))


@pytest.mark.parametrize(
    ("schedule", "points"),
    [
        ("constant", [(0, 0.7), (5, 0.7), (10, 0.7)]),
        ("anneal", [(0, 0.7), (5, 0.35), (10, 0.0)]),
        ("rise", [(0, 0.0), (5, 0.35), (10, 0.7)]),
        ("anchor", [(0, 0.7), (2, 0.7), (3, 0.7), (4, 0.0), (10, 0.0)]),
        ("end_anchor", [(0, 0.0), (6, 0.0), (7, 0.7), (10, 0.7)]),
    ],
)
def test_ablation_schedules(schedule, points):
    for step, expected in points:
        got = kl_weight(schedule, step, 10, lambda_0=0.7, tau=1 / 3)
        assert got == pytest.approx(expected), (schedule, step)


def test_lr_warmup_then_linear_decay():
    assert lr_multiplier("linear", 0, 100, 5) == pytest.approx(1 / 6)
    assert lr_multiplier("linear", 4, 100, 5) == pytest.approx(5 / 6)
    assert lr_multiplier("linear", 5, 100, 5) == pytest.approx(1.0)
    assert lr_multiplier("linear", 99, 100, 5) == pytest.approx(1 / 95)
    assert lr_multiplier("constant", 50, 100, 5) == 1.0
    assert lr_multiplier("linear", 0, 10, 0) == 1.0
