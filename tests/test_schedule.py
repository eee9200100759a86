"""Tests for jaxcifar.schedule: hand-computed values, OneCycleLR's knots, errors, the figure."""

import numpy as np
import pytest

from jaxcifar.schedule import one_cycle, values


def test_values_at_start_peak_end_and_between():
    # 4 epochs of 10 steps, peak at epoch 1 (step 10), last step 39.
    s = one_cycle(0.01, 0.1, steps_per_epoch=10, epochs=4, peak_epoch=1)
    expected = {
        0: 0.01,
        5: 0.01 + 0.09 * 5 / 10,  # half way up
        10: 0.1,  # the peak
        20: 0.1 - 0.09 * 10 / 29,  # 10 of the 29 falling steps
        39: 0.01,  # the last step is back at LR_MIN
    }
    for step, lr in expected.items():
        np.testing.assert_allclose(float(s(step)), lr, rtol=1e-6, err_msg=f"step {step}")
    lrs = values(s, 40)
    assert lrs.min() >= 0.01 * (1 - 1e-6) and np.argmax(lrs) == 10  # float32 rounding
    np.testing.assert_allclose(np.diff(lrs[:11]), 0.009, rtol=1e-5)  # linear rise
    np.testing.assert_allclose(np.diff(lrs[10:]), -0.09 / 29, rtol=1e-4)  # linear fall


def test_no_annihilation_after_the_last_step():
    s = one_cycle(0.004, 0.04, steps_per_epoch=97)
    np.testing.assert_allclose(values(s, 24 * 97 + 50)[24 * 97 - 1 :], 0.004, rtol=1e-6)


def test_cifar10_fast_triangle_from_zero():
    # davidcpage/cifar10-fast: piecewise-linear [0, 5, 24] epochs -> [0, 0.4, 0], 97 steps per epoch.
    s = one_cycle(0.0, 0.4, steps_per_epoch=97, epochs=24, peak_epoch=5)
    lrs = values(s, 24 * 97)
    np.testing.assert_allclose(
        lrs[[0, 97, 485, 485 + 1]], [0.0, 0.4 / 5, 0.4, 0.4 - 0.4 / (24 * 97 - 1 - 485)], rtol=1e-5
    )
    assert lrs[0] == 0.0 and abs(lrs[-1]) < 1e-7 and lrs.min() >= 0


def torch_one_cycle_linear(step, max_lr, total_steps, pct_start, div_factor, final_div_factor):
    """PyTorch's OneCycleLR with anneal_strategy='linear', three_phase=False, from its documented formula."""
    initial = max_lr / div_factor
    final = initial / final_div_factor
    phases = [(float(pct_start * total_steps) - 1, initial, max_lr), (total_steps - 1, max_lr, final)]
    start_step = 0.0
    for i, (end_step, start_lr, end_lr) in enumerate(phases):
        if step <= end_step or i == len(phases) - 1:
            pct = (step - start_step) / (end_step - start_step)
            return (end_lr - start_lr) * pct + start_lr
        start_step = end_step


def test_matches_the_pytorch_originals_onecycle_knots():
    # The original: OneCycleLR(max_lr=0.0444, epochs=24, steps_per_epoch=98,
    # pct_start=0.167, anneal_strategy='linear', div_factor=10, final_div_factor=1).
    max_lr, spe, epochs, pct = 0.0444, 98, 24, 0.167
    total = spe * epochs
    peak_epoch = (pct * total - 1) / spe  # about 4.0 epochs
    s = one_cycle(max_lr / 10, max_lr, spe, epochs, peak_epoch)
    ours = values(s, total)
    theirs = np.array([torch_one_cycle_linear(i, max_lr, total, pct, 10, 1) for i in range(total)])
    np.testing.assert_allclose(ours, theirs, rtol=2e-5)
    assert 3.9 < peak_epoch < 4.1
    np.testing.assert_allclose([ours[0], ours.max(), ours[-1]], [0.00444, 0.0444, 0.00444], rtol=1e-4)


@pytest.mark.parametrize(
    "args, message",
    [
        ((0.2, 0.1, 10), r"0 <= lr_min <= lr_max and lr_max > 0, got lr_min=0.2, lr_max=0.1"),
        ((-0.01, 0.1, 10), r"0 <= lr_min <= lr_max"),
        ((0.0, 0.0, 10), r"lr_max > 0"),
        ((0.01, 0.1, 10, 24, 24), r"peak_epoch must lie strictly between 0 and epochs=24, got 24"),
        ((0.01, 0.1, 10, 24, 0), r"peak_epoch must lie strictly between 0 and epochs=24, got 0"),
        ((0.01, 0.1, 0), r"steps_per_epoch and epochs must be positive"),
    ],
)
def test_argument_errors(args, message):
    with pytest.raises(ValueError, match=message):
        one_cycle(*args)
