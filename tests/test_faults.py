"""Faults made for real, through the commands: a full disk (a small tmpfs), at a checkpoint and at Grad-CAM.

Each asserts the exit status, the one line said, that nothing the user had is lost, and,
for a training run, that `--resume` afterwards ends with the numbers of a run that saw
no fault. A tmpfs needs root: elsewhere these skip, saying so. (The other faults are made
where their code is tested: a damaged checkpoint, Ctrl-C and SIGTERM in test_train, truncated
JSON in test_records, a second run on a folder in use in test_train.)
"""

import contextlib
import json
import os
import subprocess
import sys

import pytest

TINY = (
    "--data synthetic --n-train 640 --n-test 100 --width 4 --batch-size 64 --epochs 2 --peak-epoch 1 "
    "--lr-max 0.05 --no-progress --no-gradcam"
).split()
ADVICE = (
    "free some space, then run the same command again (a training run: add --resume, it continues from its last "
    "checkpoint)"
)


@contextlib.contextmanager
def small_disk(where, size):
    """A tmpfs of `size` mounted on `where` (made here), unmounted afterwards."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("a full disk is made with a small tmpfs, which needs root")
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def command(*args):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=300)


def test_a_disk_that_fills_at_the_first_checkpoint_is_one_line_and_resume_ends_as_if_it_had_not(tmp_path):
    from jaxcifar import flags, train

    reference = tmp_path / "reference"  # the same flags, trained here, with no fault
    train.train_and_evaluate(flags.parse([*TINY, "--out", str(reference)], "train", ""))
    with small_disk(tmp_path / "disk", "80k") as disk:
        out = disk / "run"
        full = command("jaxcifar.train", *TINY, "--out", str(out))
        assert full.returncode == 1, full.stderr[-3000:]
        assert full.stderr.splitlines() == [
            f"error: no space left on the device while writing the checkpoint {out}/checkpoints/0: {ADVICE}"
        ]
        saved = json.loads((out / "config.json").read_text())  # the run's record is whole
        assert saved["config"]["width"] == 4 and json.loads((out / "metrics.json").read_text())["epochs"]
        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)  # space freed
        resumed = command("jaxcifar.train", "--out", str(out), "--resume")
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert "has no intact finished checkpoint" in resumed.stdout
        got = json.loads((out / "metrics.json").read_text())
    want = json.loads((reference / "metrics.json").read_text())
    assert got["steps"] == want["steps"] and got["epochs"]["test_accuracy"] == want["epochs"]["test_accuracy"]


def test_a_disk_that_fills_while_drawing_grad_cam_is_one_line_and_leaves_no_half_figure(tmp_path, tiny_run):
    run = tiny_run[0]
    with small_disk(tmp_path / "disk", "64k") as disk:
        with open(disk / "filler", "wb", buffering=0) as f, contextlib.suppress(OSError):
            while True:  # every block taken
                f.write(b"\0" * 4096)
        figures = disk / "figures"
        figures.mkdir()
        done = command("jaxcifar.gradcam", "--run", str(run), "--out", str(figures))
        assert done.returncode == 1, done.stderr[-3000:]
        (line,) = done.stderr.splitlines()
        assert line.startswith(f"error: no space left on the device while writing {figures}/") and line.endswith(ADVICE)
        assert list(figures.iterdir()) == []  # no half-written figure, no temporary file


def test_a_read_only_data_dir_is_named_before_any_download(tmp_path):
    with small_disk(tmp_path / "disk", "1m") as disk:
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        done = command("jaxcifar.train", "--data", "download", "--data-dir", str(disk), "--out", str(tmp_path / "r"))
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.splitlines() == [
        f"error: cannot write the download to {disk} (Read-only file system): pass --data-dir with a folder you can "
        "write to, or --data PATH with an archive you have"
    ]
    assert "Downloading" not in done.stdout and not (tmp_path / "r").exists()


def test_grad_cam_into_a_read_only_folder_is_one_line_before_any_work(tmp_path, tiny_run):
    with small_disk(tmp_path / "disk", "1m") as disk:
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        done = command("jaxcifar.gradcam", "--run", str(tiny_run[0]), "--out", str(disk))
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.splitlines() == [
        f"error: --out {disk}: cannot write in {disk} (Read-only file system). Choose a folder you can write to."
    ]


def test_grad_cam_of_a_damaged_checkpoint_is_one_line_naming_the_file(tmp_path, tiny_run):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run[0], run)  # the shared run stays whole
    best = json.loads((run / "summary.json").read_text())["best_epoch"] * 10  # 10 steps an epoch
    damaged = max(
        (p for p in (run / "checkpoints" / str(best)).rglob("*") if p.is_file()), key=lambda p: p.stat().st_size
    )
    damaged.write_bytes(damaged.read_bytes()[:-5])
    done = command("jaxcifar.gradcam", "--run", str(run), "--out", str(tmp_path / "figures"))
    assert done.returncode == 2, done.stderr[-2000:]
    name = damaged.relative_to(run)
    assert done.stderr.splitlines() == [
        f"error: the best checkpoint of {run} is damaged ({name} has changed since it was written): use "
        "--checkpoint latest, or resume the run (python -m jaxcifar.train --out RUN --resume sets it aside)"
    ]
