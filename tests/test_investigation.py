"""Tests for research.cpu24_runs: the 24-epoch investigation runs' commands and their runner."""

import argparse
import os
import signal
import subprocess
import sys
import time

import pytest

from jaxcifar import flags as flags_lib
from research import cpu24_runs


def test_each_investigation_run_is_one_resumable_train_command(tmp_path):
    (tmp_path / "cpu-24-fast").mkdir()  # started earlier: resumed
    fast, plateau = cpu24_runs.cpu24_commands(["cpu-24-fast", "cpu-24-plateau"], tmp_path)
    assert fast[1:] == ["-m", "jaxcifar.train", "--data", "../shared/data/cifar10-jpeg.tar.gz", "--tta",
                        "--recipe", "cifar10-fast", "--out", str(tmp_path / "cpu-24-fast"), "--resume"]  # fmt: skip
    assert plateau[-4:] == ["--lr-range-rule", "plateau", "--out", str(tmp_path / "cpu-24-plateau")]
    # every run's flags make the settings its label names
    parser = argparse.ArgumentParser()
    flags_lib.add_arguments(parser)
    made = {
        name: flags_lib.from_args(parser.parse_args([*cpu24_runs.CPU24_COMMON, *flags]), parser)
        for name, flags in cpu24_runs.CPU24_FLAGS.items()
    }
    assert (made["cpu-24-lr-original"].lr_max, made["cpu-24-lr-original"].lr_min) == (0.0444, 0.00444)
    assert made["cpu-24-plateau"].lr_range_rule == "plateau" and made["cpu-24-plateau"].lr_max is None
    aug = made["cpu-24-original-aug"]
    assert (aug.lr_max, aug.flip_prob, aug.cutout_prob, aug.cutout_placement) == (0.0444, 0.7, 0.5, "clip")
    assert made["cpu-24-fast"].recipe == "cifar10-fast" and all(c.tta for c in made.values())
    labels = dict((n, lab) for n, lab, _ in cpu24_runs.CPU24_EXPERIMENTS)
    assert labels["cpu-24-fast"] == "David Page's cifar10-fast settings (`--recipe cifar10-fast`)"


def test_the_runner_stops_at_the_first_run_that_does_not_finish(tmp_path, monkeypatch, capsys):
    started = []

    def fake_run(command):
        started.append(command)
        return 130 if len(started) == 2 else 0

    monkeypatch.setattr(cpu24_runs, "run_passing_stops", fake_run)
    names = ["cpu-24-fast", "cpu-24-original-aug", "cpu-24-plateau"]
    with pytest.raises(SystemExit) as exc:
        cpu24_runs.main([*names, "--runs", str(tmp_path)])
    assert exc.value.code == 130 and [c[c.index("--out") + 1] for c in started] == [
        str(tmp_path / "cpu-24-fast"),
        str(tmp_path / "cpu-24-original-aug"),
    ]  # the third never started
    assert capsys.readouterr().out.startswith("python -m jaxcifar.train --data")
    with pytest.raises(SystemExit) as exc:
        cpu24_runs.main(["cpu-24-nope", "--dry-run"])
    assert exc.value.code == 2 and "unknown runs ['cpu-24-nope']; known: cpu-24-lr-original" in capsys.readouterr().err


# A stand-in for a training run: on the first Ctrl-C or SIGTERM it takes a second to
# "save", then exits with 130 or 143; a second signal would make it quit at once (1).
CHILD = """
import signal, sys, time
from pathlib import Path
log = Path(sys.argv[1])
got = []
def stop(signum, frame):
    got.append(signal.Signals(signum).name)
    if len(got) > 1:
        sys.exit(1)
for s in (signal.SIGINT, signal.SIGTERM):
    signal.signal(s, stop)
log.write_text("ready")
while not got:
    time.sleep(0.02)
time.sleep(1.0)
log.write_text(" ".join(got) + " saved")
sys.exit(130 if got[0] == "SIGINT" else 143)
"""


@pytest.mark.parametrize("stop, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_the_runner_passes_a_stop_to_the_run_once_and_waits_for_it_to_save(tmp_path, stop, code):
    log = tmp_path / "child.log"
    (tmp_path / "child.py").write_text(CHILD)
    runner = (
        "import sys; from research.cpu24_runs import run_passing_stops; "
        f"sys.exit(run_passing_stops([sys.executable, {str(tmp_path / 'child.py')!r}, {str(log)!r}]))"
    )
    # Its own session, like a terminal's foreground job: the whole group gets the signal.
    proc = subprocess.Popen([sys.executable, "-c", runner], start_new_session=True)
    deadline = time.monotonic() + 60
    while not (log.exists() and log.read_text() == "ready"):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    os.killpg(proc.pid, stop)
    assert proc.wait(timeout=30) == code
    assert log.read_text() == f"{stop.name} saved"  # got it once, and was not killed while saving
