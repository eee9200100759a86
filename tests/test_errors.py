"""Tests for jaxcifar.errors: one exit status convention, tracebacks kept for programming errors."""

import errno

import numpy as np
import pytest

from jaxcifar import gradcam, lr_range, seeds, show, train
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
    if kind == "full":  # a write that fails on a full disk, as the OS reports it
        raise OSError(errno.ENOSPC, "No space left on device", argv[1])
    if kind == "full-orbax":  # as orbax reports a checkpoint's shard that could not be written
        message = 'RESOURCE_EXHAUSTED: Error writing "params.fc.kernel/0" in OCDBT database at local file "{0}/": '
        raise ValueError((message + 'Failed writing: "{0}/d/ab12": No space left on device').format(argv[1]))
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
    "kind, path, named",
    [
        ("full", "/runs/r/metrics.json", "/runs/r/metrics.json"),
        ("full", None, None),  # a write that names no file
        ("full-orbax", "/runs/r/checkpoints/20.orbax-checkpoint-tmp/state.orbax-checkpoint-tmp/ocdbt.process_0",
         "the checkpoint /runs/r/checkpoints/20"),
    ],
)  # fmt: skip
def test_a_full_disk_is_one_line_naming_the_file_and_what_to_do(kind, path, named, capsys):
    with pytest.raises(SystemExit) as exc:
        command([kind, path])
    assert exc.value.code == 1
    where = f" while writing {named}" if named else ""
    assert capsys.readouterr().err == (
        f"error: no space left on the device{where}: free some space, then run the same command again "
        "(a training run: add --resume, it continues from its last checkpoint)\n"
    )


@pytest.mark.parametrize("kind, raised", [("usage", ValueError), ("full", OSError), ("missing", FileNotFoundError)])
def test_jaxcifar_debug_keeps_every_traceback(kind, raised, monkeypatch):
    monkeypatch.setenv("JAXCIFAR_DEBUG", "1")
    with pytest.raises(raised):
        command([kind, "/runs/r/x.json"])
    monkeypatch.setenv("JAXCIFAR_DEBUG", "0")  # 0 is off
    with pytest.raises(SystemExit):
        command([kind, "/runs/r/x.json"])


@pytest.mark.parametrize(
    "main, argv, message",
    [
        (train.main, ["--data", "/nowhere/cifar", "--out", "{tmp}/r"], "--data '/nowhere/cifar': no such file"),
        (lr_range.main, ["--data", "/nowhere/cifar", "--out", "{tmp}/l"], "--data '/nowhere/cifar': no such file"),
        (gradcam.main, ["--run", "{tmp}/none"], "config.json not found"),
        (seeds.main, ["--seeds", "0"], "--seeds must be positive"),
        (show.main, ["schedule", "--lr-min", "1", "--lr-max", "0.1"], "one_cycle needs 0 <= lr_min <= lr_max"),
        (show.main, ["samples", "--images", "0"], "--images must be in 1..50"),
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


TINY_TRAIN = "--data synthetic --n-train 64 --n-test 64 --width 4 --batch-size 32 --epochs 1 --no-progress".split()
SWEEP = "--data synthetic --n-train 64 --batch-size 32 --width 4 --lr-range-iters 3".split()


@pytest.mark.parametrize(
    "main, argv, first_line",
    [
        (train.main, [*TINY_TRAIN, "--out", "{file}"], "--out {file}: {file} is a file, not a folder"),
        (train.main, [*TINY_TRAIN, "--out", "{file}/run"], "--out {file}/run: {file} is a file, not a folder"),
        (train.main, [*TINY_TRAIN, "--lr-range-json", "{dir}", "--out", "{tmp}/r"],
         "--lr-range-json {dir}: not readable JSON ({dir} is a folder, not a JSON file)"),
        (train.main, [*TINY_TRAIN, "--lr-max", "0.05", "--cache-dir", "{file}", "--out", "{tmp}/r"],
         "--cache-dir {file}: a file, not a folder"),
        (train.main, ["--data", "download", "--data-dir", "{file}", "--out", "{tmp}/r"],
         "--data-dir {file}: a file, not a folder"),
        (train.main, ["--data", "{file}", "--out", "{tmp}/r"],
         "{file} is neither a tar archive (plain, gz, bz2 or xz) nor a zip file: it may be truncated or corrupt"),
        (train.main, ["--data", "{zip}", "--out", "{tmp}/r"], "{zip} is a zip file with no zip directory"),
        (train.main, ["--data", "{dir}", "--out", "{tmp}/r"], "{dir} holds no images in the form"),
        (lr_range.main, [*SWEEP, "--out", "{file}"], "--out {file}: {file} is a file, not a folder"),
        (lr_range.main, [*SWEEP, "--cache-dir", "{file}", "--out", "{tmp}/r"], "--cache-dir {file}: a file, not"),
        (lr_range.main, [*SWEEP, "--data", "{file}", "--out", "{tmp}/r"], "{file} is neither a tar archive"),
        (gradcam.main, ["--run", "{file}"], "{file}/config.json not found: --run must be a folder written by"),
        (gradcam.main, ["--run", "{dir}"], "{dir}/config.json not found: --run must be a folder written by"),
        (gradcam.main, ["--run", "{dir}", "--out", "{file}"], "--out {file}: {file} is a file, not a folder"),
        (seeds.main, ["--seeds", "1", *TINY_TRAIN, "--out", "{file}"], "--out {file}: {file} is a file, not a folder"),
    ],
)  # fmt: skip
def test_every_path_argument_of_the_wrong_kind_is_one_line_and_starts_nothing(main, argv, first_line, tmp_path, capsys):
    names = {"{file}": tmp_path / "a-file", "{dir}": tmp_path / "a-folder", "{zip}": tmp_path / "bad.zip"}
    names["{file}"].write_text("not an archive, a folder or JSON\n")
    names["{dir}"].mkdir()
    names["{zip}"].write_bytes(b"PK\x03\x04 cut short")
    names["{tmp}"] = tmp_path

    def fill(text):
        for key, path in names.items():
            text = text.replace(key, str(path))
        return text

    before = sorted(tmp_path.iterdir())
    with pytest.raises(SystemExit) as exc:
        main([fill(a) for a in argv])
    assert exc.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {fill(first_line)}"), lines
    assert sorted(tmp_path.iterdir()) == before  # no run folder, no sweep folder: nothing was started


def test_ctrl_c_while_the_interpreter_exits_prints_nothing_and_keeps_the_status():
    import subprocess
    import sys

    # A library's atexit callback (JAX registers one when imported) that a late Ctrl-C interrupts.
    code = (
        "import atexit, os, signal, time\n"
        "atexit.register(lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(0.5)))\n"
        "from jaxcifar.errors import entry_point\n"
        "entry_point(lambda argv: print('done'))([])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "done\n", "")
