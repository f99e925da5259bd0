"""The KL weight λ(t) and the learning-rate multiplier, as functions of the optimizer step.

t = step / total_steps (step counted from 0, total honouring max_steps) and τ = the end of phase 1 (default
1 / num_epochs). Schedules (PROTOCOL.md §5):

* ``liminal``: for t ≤ τ, λ goes linearly from λ₀ to 1; for t > τ it decays linearly from 1 to 0 at t = 1;
* ``constant``: λ₀; ``anneal``: λ₀ → 0 over the run; ``rise``: 0 → λ₀;
* ``anchor``: λ₀ while t ≤ τ, then 0; ``end_anchor``: λ₀ only in the last epoch (t ≥ 1 − τ).
"""

from __future__ import annotations


def kl_weight(schedule: str, step: int, total_steps: int, *, lambda_0: float, tau: float) -> float:
    """λ at ``step`` of ``total_steps``."""
    t = step / total_steps if total_steps > 0 else 0.0
    if schedule == "liminal":
        if t <= tau:
            return lambda_0 + (1.0 - lambda_0) * (t / tau)
        return max(0.0, (1.0 - t) / (1.0 - tau))
    if schedule == "constant":
        return lambda_0
    if schedule == "anneal":
        return lambda_0 * (1.0 - t)
    if schedule == "rise":
        return lambda_0 * t
    if schedule == "anchor":
        return lambda_0 if t <= tau else 0.0
    if schedule == "end_anchor":
        return lambda_0 if t >= 1.0 - tau else 0.0
    raise ValueError(f"unknown kl_schedule {schedule!r}")


def lr_multiplier(kind: str, step: int, total_steps: int, warmup_steps: int) -> float:
    """Warm-up then ``linear`` decay to 0 at the last step, or ``constant``.

    During warm-up the multiplier is (step + 1) / (warmup_steps + 1), so the first update is not zero.
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if kind == "constant":
        return 1.0
    remaining = total_steps - step
    return max(0.0, remaining / max(1, total_steps - warmup_steps))
