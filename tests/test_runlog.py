"""Tests for jaxcifar.runlog: epoch rows from the steps, metrics.json cut back to a checkpoint, the epoch line."""

import pytest

from jaxcifar.config import TrainConfig
from jaxcifar.runlog import Position, RunLog, epoch_line


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


def read_events(folder):
    """{tag: [(step, value), ...]} of every scalar in the TensorBoard event files under `folder`.

    The files are TFRecords (length, its CRC, the Event proto, its CRC), read here without TensorBoard.
    """
    import struct

    from tensorboardX.proto import event_pb2

    scalars = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        blob = path.read_bytes()
        at = 0
        while at < len(blob):
            (length,) = struct.unpack("<Q", blob[at : at + 8])
            event = event_pb2.Event.FromString(blob[at + 12 : at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_tensorboard_events_hold_every_epoch_and_step_of_metrics_json(tmp_path):
    import json

    pytest.importorskip("tensorboardX")
    from tiny import TINY_RUN

    from jaxcifar import train

    out = tmp_path / "run"
    train.train_and_evaluate(TrainConfig(**TINY_RUN, n_train=320, n_test=64, tensorboard=True, out=str(out)))
    metrics = json.loads((out / "metrics.json").read_text())
    events = read_events(out / "tensorboard")
    for name, column in metrics["epochs"].items():
        steps, values = zip(*events[f"epoch/{name}"])
        assert steps == (1, 2) and values == pytest.approx(column, rel=1e-6)  # float32 in the events
    for name in ("loss", "accuracy", "lr"):
        steps, values = zip(*events[f"step/{name}"])
        assert steps == tuple(range(1, 11)) and values == pytest.approx(metrics["steps"][name], rel=1e-6)


def test_tensorboard_without_tensorboardx_is_refused_before_the_run(tmp_path, monkeypatch):
    import importlib.util

    from tiny import TINY_RUN

    from jaxcifar import train
    from jaxcifar.errors import UsageError

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tensorboardX" else real(name, *a)
    )
    with pytest.raises(UsageError, match=r"^--tensorboard needs tensorboardX: pip install 'jaxcifar\[tensorboard\]'"):
        train.train_and_evaluate(TrainConfig(**TINY_RUN, tensorboard=True, out=str(tmp_path / "run")))
    assert not (tmp_path / "run").exists()
