"""What the command lines do before JAX loads: `--help` at once, XLA's CPU flags, huge pages.

Importing jaxcifar changes nothing in the environment. The training and LR range
commands call `prepare` first thing, before any heavy import, so that `--help`
answers without loading JAX and the restart with huge pages does not import
everything twice. A Python user who wants the commands' CPU speed calls
`set_cpu_flags()` before their first JAX computation (docs/performance.md).
"""

from __future__ import annotations

import importlib.util
import mmap
import os
import signal
import sys
from collections.abc import Callable, MutableMapping, Sequence
from importlib import metadata
from pathlib import Path

from jaxcifar import errors

# XLA:CPU (jaxlib 0.10) hands convolutions and dots to YNNPACK by default; its convolution
# kernel gradients made the training step at batch 512 0.46x as fast as XLA's own kernels
# on the 2-core development CPU (docs/performance.md). "=" with no value switches it off.
YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
# glibc's malloc on transparent huge pages: the step's temporaries come in 2 MB pages
# instead of 4 KB ones, 1.09x as fast on that CPU, the numbers unchanged (docs/performance.md).
HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1"
# Distributions that give JAX an accelerator; without one, JAX runs on the CPU.
ACCELERATOR_PLUGINS = ("jax-cuda", "jax_cuda", "jax-rocm", "jax_rocm", "libtpu")


def on_cpu(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Whether JAX will run on the CPU: JAX_PLATFORMS says so, or no accelerator plugin is installed."""
    platforms = environ.get("JAX_PLATFORMS", "")
    if platforms:
        return platforms.split(",")[0].strip() == "cpu"
    names = (d.metadata["Name"] or "" for d in metadata.distributions())
    return not any(name.lower().startswith(ACCELERATOR_PLUGINS) for name in names)


def jaxlib_knows(flag: str) -> bool:
    """Whether the installed jaxlib's XLA defines `flag` (XLA aborts on flags it does not know).

    Looks for the flag's name in jaxlib's shared libraries, which JAX is about to load anyway.
    """
    spec = importlib.util.find_spec("jaxlib")
    if spec is None or spec.origin is None:
        return False
    name = flag.lstrip("-").encode()
    for library in Path(spec.origin).parent.glob("*.so"):
        with open(library, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            if m.find(name) >= 0:
                return True
    return False


def set_cpu_flags(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Switches XLA:CPU's YNNPACK off in XLA_FLAGS; returns whether it did.

    Only where JAX runs on the CPU, the installed jaxlib knows the flag, the user set no
    value of their own and JAXCIFAR_YNNPACK is not 1. Takes effect if called before JAX
    starts its CPU backend (the first computation), not after.
    """
    return on_cpu(environ) and _ynnpack_off(environ)


def _ynnpack_off(environ: MutableMapping[str, str]) -> bool:
    """set_cpu_flags on a platform known to be the CPU."""
    flags = environ.get("XLA_FLAGS", "")
    if YNN_FLAG in flags or environ.get("JAXCIFAR_YNNPACK") == "1" or not jaxlib_knows(YNN_FLAG):
        return False
    environ["XLA_FLAGS"] = f"{flags} {YNN_FLAG}=".strip()
    return True


def exec_with_huge_pages(module: str, argv: Sequence[str], execve: Callable[..., None] = os.execve) -> None:
    """Starts `python -m module argv` again with glibc's malloc on transparent huge pages.

    glibc reads GLIBC_TUNABLES only when a process starts, hence the restart (the same
    process id, so signals and exit statuses are those of the command). Nothing happens
    off Linux, where GLIBC_TUNABLES is set already (a restarted process, or the user's
    choice), or with JAXCIFAR_HUGE_PAGES=0. Other C libraries ignore the variable.
    """
    if sys.platform != "linux" or "GLIBC_TUNABLES" in os.environ or os.environ.get("JAXCIFAR_HUGE_PAGES") == "0":
        return
    execve(sys.executable, [sys.executable, "-m", module, *argv], {**os.environ, "GLIBC_TUNABLES": HUGE_PAGES_TUNABLE})


def prepare(module: str, argv: Sequence[str], parser: Callable[[], object]) -> None:
    """The start of a command line, before JAX loads: `--help` answered from `parser()` (it exits),
    then on the CPU the XLA flags and the restart with huge pages."""
    if {"-h", "--help"} & set(argv):
        parser().parse_args(argv)  # prints the help and exits
    if on_cpu():  # looked up once: it reads every installed distribution's metadata
        _ynnpack_off(os.environ)
        exec_with_huge_pages(module, argv)
    # Ctrl-C while JAX and the rest import (seconds): one line and 130, not a page of import traceback.
    # The command's entry point puts Python's own handler back (`errors.end_startup`) before any work starts.
    signal.signal(signal.SIGINT, errors.interrupted_while_starting)
