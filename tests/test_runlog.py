"""Tests for jaxcifar.runlog: epoch rows from the steps, metrics.json cut back to a checkpoint, the epoch line."""

import pytest

from jaxcifar.checkpoint import Position
from jaxcifar.config import TrainConfig
from jaxcifar.runlog import RunLog, epoch_line


def test_epoch_line_marks_a_resumed_epochs_speed_as_partial():
    row = {"train_loss": 1.0, "train_accuracy": 0.5, "test_loss": 1.2, "test_accuracy": 0.4, "lr": 0.01,
           "seconds": 1.4, "images_per_second": 94.0}  # fmt: skip
    assert "(resumed: the speed of this session's 2 of 97 batches)" in epoch_line(3, 24, row, 2, 97)
    assert "resumed" not in epoch_line(3, 24, row, 97, 97)


def test_epochs_are_means_of_their_steps_and_a_read_log_is_cut_to_the_checkpoint(tmp_path):
    log = RunLog(steps_per_epoch=2, tta=False)
    test = {"loss": 1.5, "accuracy": 0.25}
    log.add_steps([{"lr": 0.1, "loss": 2.0, "accuracy": 0.0}, {"lr": 0.2, "loss": 1.0, "accuracy": 0.5}])
    row = log.end_epoch(0, test, seconds=4.0, eval_seconds=1.0, images_per_second=50.0)
    assert (row["train_loss"], row["train_accuracy"], row["lr"]) == (1.5, 0.25, 0.2)  # means; the last LR
    log.add_steps([{"lr": 0.3, "loss": 0.5, "accuracy": 1.0}, {"lr": 0.4, "loss": 0.5, "accuracy": 1.0}])
    log.end_epoch(1, {"loss": 1.0, "accuracy": 0.75}, seconds=6.0, eval_seconds=1.0, images_per_second=100.0)
    log.add_steps([{"lr": 0.5, "loss": 0.25, "accuracy": 1.0}])  # into epoch 3, unfinished
    log.write(tmp_path / "metrics.json")
    assert log.best == (0.75, 2) and log.epochs_done == 2
    summary = log.summary(TrainConfig(lr_max=0.4, lr_min=0.04), "completed", "", {})
    # images/s over the run: (4 s * 50 + 6 s * 100) / 10 s
    assert summary["images_per_second"] == pytest.approx(80.0) and summary["train_seconds"] == 10.0
    # a checkpoint after epoch 1 and one step of epoch 2: what came later is dropped
    back = RunLog.read(tmp_path / "metrics.json", Position(1, 1, 3), tta=False)
    assert back.epochs_done == 1 and back.steps["lr"] == [0.1, 0.2, 0.3]
    assert back.history["test_accuracy"] == [0.25]


def test_metrics_csv_holds_a_row_per_epoch_with_metrics_jsons_columns(tmp_path):
    import csv

    log = RunLog(steps_per_epoch=1, tta=True)
    for epoch, accuracy in enumerate((0.5, 0.625)):
        log.add_steps([{"lr": 0.1 * (epoch + 1), "loss": 1.0 / (epoch + 1), "accuracy": accuracy}])
        test = {"loss": 0.75, "accuracy": accuracy, "tta_loss": 0.5, "tta_accuracy": accuracy + 0.125}
        log.end_epoch(epoch, test, seconds=2.0, eval_seconds=0.5, images_per_second=10.0)
    log.write(tmp_path / "metrics.json")
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", *log.history]  # the same columns, in the same order
    assert [int(r["epoch"]) for r in rows] == [1, 2] and [float(r["test_accuracy"]) for r in rows] == [0.5, 0.625]
    assert [float(r["test_accuracy_tta"]) for r in rows] == [0.625, 0.75] and float(rows[1]["lr"]) == 0.2
    # a resumed run cut back to epoch 1 writes one row again
    RunLog.read(tmp_path / "metrics.json", Position(1, 0, 1), tta=True).write(tmp_path / "metrics.json")
    with open(tmp_path / "metrics.csv", newline="") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1"]
    assert log.summary(TrainConfig(seed=7, lr_max=0.2, lr_min=0.02), "completed", "", {})["seed"] == 7
