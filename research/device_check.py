"""Say what JAX runs on, and stop in seconds when it is not the accelerator a session paid for.

    python -m research.device_check --expect gpu     # exit 1 unless JAX found a GPU
    python -m research.device_check --expect any     # a CPU rehearsal: report only

A GPU session has minutes of device time; a silent fallback to the CPU (a jaxlib
without CUDA, a driver JAX cannot use) would pick float32 and the CPU kernel
gradient and be killed at the time limit with nothing back. This check prints
the devices and the versions of jax, jaxlib, flax, optax, orbax and numpy first,
then fails with exit status 1 when the backend is not the one expected.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

import jax

from jaxcifar import records
from jaxcifar.errors import EXIT_FAILED, entry_point


def report() -> dict:
    """Backend, devices and library versions, as printed by `main`."""
    devices = jax.devices()
    return {
        "backend": jax.default_backend(),
        # the name results are filed under: "NVIDIA H200" -> nvidia-h200
        "device": re.sub(r"[^a-z0-9]+", "-", devices[0].device_kind.lower()).strip("-"),
        "devices": [f"{d.platform}:{d.id} {d.device_kind}" for d in devices],
        "versions": records.versions(),
    }


@entry_point
def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m research.device_check", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--expect",
        choices=("gpu", "tpu", "any"),
        default="gpu",
        help="the backend to insist on; any = a CPU rehearsal (default: gpu)",
    )
    args = parser.parse_args(argv)
    found = report()
    print(f"backend {found['backend']}: {', '.join(found['devices'])}")
    print(f"device {found['device']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in found["versions"].items()), flush=True)
    if args.expect != "any" and found["backend"] != args.expect:
        print(
            f"error: JAX runs on {found['backend']}, not {args.expect}: stopping before spending device time. "
            f"Install a jaxlib for the {args.expect} (or set JAXCIFAR_REHEARSAL=1 for a CPU rehearsal).",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_FAILED)
    return found


if __name__ == "__main__":
    main()
