"""The one-cycle ("triangle") learning-rate schedule, as an optax schedule.

    LR_MAX ..........*
                   /   \\
                 /       \\
    LR_MIN  ...*           *....
            step 0   peak   last step

`one_cycle` rises linearly from LR_MIN at step 0 to LR_MAX at step
`peak_epoch * steps_per_epoch`, then falls linearly to LR_MIN at the last step,
`epochs * steps_per_epoch - 1`. There is no annihilation phase: it never goes
below LR_MIN.

Relation to the PyTorch original, which used
`OneCycleLR(max_lr=LR_MAX, epochs=24, steps_per_epoch=S, pct_start=0.167,
anneal_strategy='linear', div_factor=10, final_div_factor=1, cycle_momentum=False)`:
that schedule starts at LR_MAX / div_factor = LR_MAX / 10, peaks at step
pct_start * 24 * S - 1 (4.0 epochs in), and ends at the starting value
(final_div_factor=1) at step 24 * S - 1. So `one_cycle(LR_MAX / 10, LR_MAX, S,
epochs=24, peak_epoch=(0.167 * 24 * S - 1) / S)` is the same schedule, knot for
knot (tests/test_schedule.py checks every step). Our default peak is the end of
epoch 5, as the project's goal states.

`python -m jaxcifar.show schedule --lr-min 0.00444 --lr-max 0.0444` draws the triangle.
"""

from __future__ import annotations

import numpy as np
import optax

Schedule = optax.Schedule


def one_cycle(
    lr_min: float,
    lr_max: float,
    steps_per_epoch: int,
    epochs: int = 24,
    peak_epoch: float = 5.0,
) -> Schedule:
    """Piecewise-linear LR_MIN -> LR_MAX -> LR_MIN over `epochs`.

    Args:
      lr_min: learning rate at the first and the last step (0 allowed: cifar10-fast).
      lr_max: learning rate at the peak.
      steps_per_epoch: optimizer steps per epoch (50,000 // 512 = 97).
      epochs: length of the run.
      peak_epoch: where the peak lies, in epochs (may be fractional).

    Returns:
      An optax schedule: step -> learning rate.

    Example:
      >>> s = one_cycle(0.01, 0.1, steps_per_epoch=10, epochs=4, peak_epoch=1)
      >>> [round(float(s(i)), 4) for i in (0, 5, 10, 39)]
      [0.01, 0.055, 0.1, 0.01]
    """
    if not (0 <= lr_min <= lr_max and lr_max > 0):
        raise ValueError(f"one_cycle needs 0 <= lr_min <= lr_max and lr_max > 0, got lr_min={lr_min}, lr_max={lr_max}")
    if steps_per_epoch < 1 or epochs < 1:
        raise ValueError(f"steps_per_epoch and epochs must be positive, got {steps_per_epoch} and {epochs}")
    if not (0 < peak_epoch < epochs):
        raise ValueError(f"peak_epoch must lie strictly between 0 and epochs={epochs}, got {peak_epoch}")
    peak = peak_epoch * steps_per_epoch
    last = epochs * steps_per_epoch - 1
    if peak >= last:
        raise ValueError(f"the peak (step {peak:g}) must come before the last step ({last})")
    rise = optax.linear_schedule(lr_min, lr_max, peak)
    fall = optax.linear_schedule(lr_max, lr_min, last - peak)
    return optax.join_schedules([rise, fall], [peak])


def values(schedule: Schedule, steps: int) -> np.ndarray:
    """float64[steps]: the schedule at steps 0..steps-1."""
    return np.asarray(schedule(np.arange(steps)), dtype=np.float64)
