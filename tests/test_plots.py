"""Tests for jaxcifar.plots: what the figures hold, read back from the matplotlib objects."""

import numpy as np

from jaxcifar import plots

HISTORY = {
    "train_loss": [2.0, 1.0, 0.5],
    "train_accuracy": [0.30, 0.70, 0.90],
    "test_loss": [1.8, 1.1, 0.7],
    "test_accuracy": [0.40, 0.75, 0.72],
}


def test_accuracy_curves_and_their_best_values(tmp_path):
    fig = plots.accuracy(HISTORY, tmp_path / "a.png")
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["train (best 90.00%)", "test (best 75.00%)"]
    np.testing.assert_allclose(lines[1].get_ydata(), [40.0, 75.0, 72.0])
    np.testing.assert_array_equal(lines[1].get_xdata(), [1, 2, 3])
    assert (tmp_path / "a.png").stat().st_size > 5_000


def test_accuracy_adds_the_flip_tta_curve_when_recorded(tmp_path):
    fig = plots.accuracy({**HISTORY, "test_accuracy_tta": [0.41, 0.76, 0.74]}, tmp_path / "a.png")
    lines = fig.axes[0].get_lines()
    assert lines[2].get_label() == "test, flip TTA (best 76.00%)"
    np.testing.assert_allclose(lines[2].get_ydata(), [41.0, 76.0, 74.0])


def test_loss_accuracy_has_four_panels_in_percent(tmp_path):
    fig = plots.loss_accuracy(HISTORY, tmp_path / "la.png")
    assert len(fig.axes) == 4
    np.testing.assert_allclose(fig.axes[1].get_lines()[0].get_ydata(), [30.0, 70.0, 90.0])  # train accuracy, %
    np.testing.assert_allclose(fig.axes[2].get_lines()[0].get_ydata(), HISTORY["test_loss"])


def test_compare_accuracy_draws_each_run_to_where_it_got(tmp_path):
    curves = {"full": [0.3, 0.6, 0.9], "stopped": [0.5, 0.7]}
    fig = plots.compare_accuracy(curves, tmp_path / "c.png", references={"full"})
    lines = fig.axes[0].get_lines()
    assert [line.get_linestyle() for line in lines] == ["--", "-"]  # the published reference dashed
    assert [line.get_label() for line in lines] == ["full: 90.00% after epoch 3", "stopped: 70.00% after epoch 2"]
    np.testing.assert_allclose(lines[1].get_ydata(), [50.0, 70.0])
    np.testing.assert_array_equal(lines[1].get_xdata(), [1, 2])
    assert (tmp_path / "c.png").stat().st_size > 5_000
