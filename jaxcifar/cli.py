"""The `jaxcifar` command: every command line of the package under one name.

    jaxcifar train --quick --data synthetic      # = python -m jaxcifar.train --quick --data synthetic
    jaxcifar lr-range --data PATH                # = python -m jaxcifar.lr_range ...
    jaxcifar gradcam --run runs/r1 --image photo.jpg
    jaxcifar predict --run runs/r1 photo.jpg
    jaxcifar seeds --seeds 5 --data PATH

Each subcommand becomes `python -m jaxcifar.X` with the same arguments, in the same
process (exec), so its help, start-up (XLA's CPU flags, huge pages), signals and exit
statuses are exactly those of the module's command line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

from jaxcifar import __version__

COMMANDS = {
    "train": ("jaxcifar.train", "train the recipe (the 24-epoch one-cycle run)"),
    "lr-range": ("jaxcifar.lr_range", "the LR range test that finds LR_MAX and LR_MIN"),
    "gradcam": ("jaxcifar.gradcam", "Grad-CAM of a run's misclassified test images, or of your own"),
    "predict": ("jaxcifar.predict", "a run's top classes for your own images"),
    "seeds": ("jaxcifar.seeds", "the recipe over several seeds: mean and spread"),
    "show": ("jaxcifar.show", "the network's layers, the LR triangle or augmented samples, without training"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items()]
    return "usage: jaxcifar COMMAND [ARGS ...]   (jaxcifar COMMAND --help: its flags)\n\ncommands:\n" + "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"jaxcifar {__version__}")
        return 0
    if argv[0] not in COMMANDS:
        print(f"{usage()}\n\nerror: unknown command {argv[0]!r}; one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    command = [sys.executable, "-m", COMMANDS[argv[0]][0], *argv[1:]]
    if os.name == "posix":
        sys.stdout.flush()
        os.execv(sys.executable, command)  # never returns: the module's process from here on
    return subprocess.call(command)  # elsewhere: a child with the same arguments and its exit status


if __name__ == "__main__":
    raise SystemExit(main())
