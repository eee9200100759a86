"""The 24-epoch runs that look for why the recipe's run ends below the original (issue 17), and their runner.

    python -m research.cpu24_runs [NAME ...]

Each run is the recipe's own command with one group of settings changed, in
runs/NAME, resumed where that folder exists; the runner starts them one after
another (hours each on a CPU) and passes a Ctrl-C or SIGTERM on to the run under
way, which saves a checkpoint and stops. `evidence` compares the committed ones
with the recipe's run and the published runs in the README.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from jaxcifar.console import StopRequest
from jaxcifar.errors import UsageError, entry_point

# 24-epoch runs that look for why the recipe's run ends below the original (issue 17):
# results/NAME.json, what was changed, the flags that change it, and what it is compared
# with: "recipe" runs change one setting of the recipe; the "page" run trains with David
# Page's cifar10-fast settings on the same data and code, to compare with his published
# median. Every run adds CPU24_COMMON, as the recipe's own run did;
# `python -m research.cpu24_runs` runs them.
_CPU24 = (
    ("cpu-24-lr-original", "the original's LR pair 0.0444 / 0.00444", "--lr-max 0.0444 --lr-min 0.00444", "recipe"),
    (
        "cpu-24-plateau",
        "the `plateau` rule's LR pair 0.029 / 0.0029",
        "--lr-range-json results/lr-range-cpu-full.json --lr-range-rule plateau",
        "recipe",
    ),
    (
        "cpu-24-original-aug",
        # Not the original's augmentation, as it was once labelled: the original cut every image (p=1).
        "the original's LR pair, its flip p=0.7 and a clipped Cutout on half the images",
        "--lr-max 0.0444 --lr-min 0.00444 --flip-prob 0.7 --cutout-prob 0.5 --cutout-placement clip",
        "recipe",
    ),
    ("cpu-24-fast", "David Page's cifar10-fast settings", "--recipe cifar10-fast", "page"),
)
CPU24_COMMON = ("--data", "../shared/data/cifar10-jpeg.tar.gz", "--tta")
CPU24_FLAGS = {name: flags.split() for name, _, flags, _ in _CPU24}
CPU24_EXPERIMENTS = tuple((name, f"{what} (`{flags}`)", kind) for name, what, flags, kind in _CPU24)
# Runs that differ from an earlier experiment in one setting group, compared with it too:
# the flip and Cutout changes on top of the original's LR pair.
CPU24_BASES = {"cpu-24-original-aug": "cpu-24-lr-original"}


def cpu24_commands(names: Sequence[str], runs: Path = Path("runs")) -> list[list[str]]:
    """The `python -m jaxcifar.train` command of each named investigation run, in runs/NAME;
    with --resume where that folder exists (a finished run is then left as it is).

    Raises:
      UsageError: a name that is not in CPU24_EXPERIMENTS.
    """
    if unknown := [n for n in names if n not in CPU24_FLAGS]:
        raise UsageError(f"unknown runs {unknown}; known: {', '.join(CPU24_FLAGS)}")
    commands = []
    for name in names:
        out = runs / name
        command = [sys.executable, "-m", "jaxcifar.train", *CPU24_COMMON, *CPU24_FLAGS[name], "--out", str(out)]
        commands.append(command + (["--resume"] if out.exists() else []))
    return commands


def run_passing_stops(command: Sequence[str]) -> int:
    """Runs `command` to its end and returns its exit status; Ctrl-C and SIGTERM sent to this
    process are passed to it once each, and this process waits while it saves and stops.

    subprocess.run would kill the child 0.25 s after a Ctrl-C, before a training run
    finishes its step (7.6 s on the 2-core CPU) and saves, and a SIGTERM would leave it
    running alone. The child gets its own session, so that a terminal's Ctrl-C reaches it
    only through here: twice would be "quit at once".
    """
    child = subprocess.Popen(list(command), start_new_session=True)

    def hand_on(signum, frame) -> None:
        child.send_signal(signum)

    previous = {s: signal.signal(s, hand_on) for s in StopRequest.SIGNALS}
    try:
        return child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@entry_point
def main(argv: Sequence[str] | None = None) -> list[int]:
    """`python -m research.cpu24_runs [NAME ...]`: the investigation runs one after another, each resumable."""
    parser = argparse.ArgumentParser(
        prog="python -m research.cpu24_runs",
        description="Run the 24-epoch investigation runs one after another (hours each on a CPU), each in "
        "runs/NAME, resuming a run whose folder exists; then bring one in with python -m research.collect_run.",
    )
    parser.add_argument(
        "names", nargs="*", help=f"runs, in order (default: those without results/NAME.json): {', '.join(CPU24_FLAGS)}"
    )
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="folder of the run folders (default: runs)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only (default: off)")
    args = parser.parse_args(argv)
    names = args.names or [n for n in CPU24_FLAGS if not (Path("results") / f"{n}.json").exists()]
    commands = cpu24_commands(names, args.runs)
    codes = []
    for command in commands:
        print("python", *command[1:], flush=True)
        if not args.dry_run:
            codes.append(run_passing_stops(command))
            if codes[-1] != 0:  # a stopped or failed run: the next would take its place on the machine
                raise SystemExit(codes[-1])
    return codes
