"""Tests for jaxcifar.errors: one exit status convention, tracebacks kept for programming errors."""

import numpy as np
import pytest

from jaxcifar import augment, gradcam, lr_range, schedule, seeds, train
from jaxcifar.config import TrainConfig
from jaxcifar.data import load_cifar10
from jaxcifar.errors import Stopped, entry_point
from research import benchmark, collect_run, device_check


@entry_point
def command(argv):
    """Raises what jaxcifar's own code raises for each kind of trouble."""
    kind = argv[0]
    if kind == "usage":
        TrainConfig(width=-1)
    if kind == "missing":
        load_cifar10("/nowhere/cifar")
    if kind == "failed":  # a loss gone NaN: train.Diverged is a RuntimeError
        train.check_finite([{"loss": float("nan"), "lr": 0.1}], epoch=0, first_batch=0, steps_per_epoch=10)
    if kind == "ctrl-c":
        raise KeyboardInterrupt
    if kind == "sigterm":  # stopped at a safe point, what was kept in the message
        raise Stopped("SIGTERM", "stopped by SIGTERM; kept: x")
    if kind == "bug":
        np.zeros(3).reshape(2, 2)  # a ValueError raised in NumPy: a programming error
    return "done"


@pytest.mark.parametrize(
    "kind, status", [("usage", 2), ("missing", 2), ("failed", 1), ("ctrl-c", 130), ("sigterm", 143)]
)
def test_errors_for_people_become_a_line_and_a_status(kind, status, capsys):
    with pytest.raises(SystemExit) as exc:
        command([kind])
    assert exc.value.code == status
    err = capsys.readouterr().err
    expected = {"ctrl-c": "interrupted (Ctrl-C)\n", "sigterm": "stopped by SIGTERM; kept: x\n"}
    assert err == expected[kind] if kind in expected else err.startswith("error: ")


def test_a_programming_error_keeps_its_traceback():
    with pytest.raises(ValueError, match="cannot reshape"):
        command(["bug"])
    assert command(["fine"]) == "done"


@pytest.mark.parametrize(
    "main, argv, message",
    [
        (train.main, ["--data", "/nowhere/cifar", "--out", "{tmp}/r"], "--data '/nowhere/cifar': no such file"),
        (lr_range.main, ["--data", "/nowhere/cifar", "--out", "{tmp}/l"], "--data '/nowhere/cifar': no such file"),
        (gradcam.main, ["--run", "{tmp}/none"], "config.json not found"),
        (seeds.main, ["--seeds", "0"], "--seeds must be positive"),
        (schedule.main, ["--lr-min", "1", "--lr-max", "0.1"], "one_cycle needs 0 <= lr_min <= lr_max"),
        (augment.main, ["--images", "0"], "--images must be in 1..50"),
        (collect_run.main, ["{tmp}/none", "--name", "x"], "is {tmp}/none a finished jaxcifar run"),
        (benchmark.main, ["--steps", "0"], "must be positive"),
        (device_check.main, ["--expect", "gpu"], "JAX runs on cpu, not gpu"),
    ],
)
def test_every_command_follows_the_convention(main, argv, message, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    expected = 1 if main is device_check.main else 2
    assert exc.value.code == expected
    assert message.replace("{tmp}", str(tmp_path)) in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not (tmp_path / "l").exists()  # nothing was started
