"""Errors for people, and the exit status of every command.

Every command (`python -m jaxcifar.X`, `python -m research.X`) ends with one exit status:

  0    done
  1    failed while running (a diverged run, data that could not be fetched)
  2    bad usage or input, found before anything was started or changed
  130  stopped by Ctrl-C (a training run saved a checkpoint to resume from)
  143  stopped by SIGTERM (a scheduler's preemption, `kill`, `timeout`; a training run
       saved a checkpoint to resume from, as on Ctrl-C; an LR range test wrote what it swept)

`entry_point` turns the errors jaxcifar raises for people (ValueError,
FileNotFoundError, FileExistsError: usage; RuntimeError: failure) into a line
"error: ..." and that status, and a full disk anywhere (jaxcifar's files, orbax's
checkpoints, matplotlib's figures) into one line naming the file, with status 1; an
error raised outside jaxcifar's own code (a programming error, a library's bug) keeps
its traceback. JAXCIFAR_DEBUG=1 keeps every traceback, and the libraries' error logs
that a full disk sets off, for a bug report.
"""

from __future__ import annotations

import atexit
import errno
import functools
import inspect
import logging
import os
import re
import signal
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 130, 143
PACKAGE = Path(__file__).resolve().parent
DEBUG_ENV = "JAXCIFAR_DEBUG"  # "1": tracebacks for every error, for bug reports
FULL = ("No space left on device", "Disk quota exceeded")  # strerror of ENOSPC, EDQUOT; orbax's messages quote them


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def disk_full(error: BaseException | None) -> str | None:
    """The file a write failed on where `error`, or an error it came from, is a full disk or quota
    ("" when none is named); None for any other error."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return error.filename or ""
        text = str(error)
        if any(f in text for f in FULL):  # orbax/TensorStore: ValueError("RESOURCE_EXHAUSTED: ... Failed writing: "F"")
            found = re.search(r'Failed writing: "([^"]+)"', text) or re.search(r'local file "([^"]+)"', text)
            return found.group(1) if found else ""
        error = error.__cause__ or error.__context__
    return None


def disk_full_message(path: str) -> str:
    """The one line for a full disk: what was being written, and what to do."""
    if ".orbax-checkpoint-tmp" in path:  # a checkpoint being written: name the checkpoint, not its shard
        path = "the checkpoint " + path.split(".orbax-checkpoint-tmp")[0]
    where = f" while writing {path}" if path else ""
    return (
        f"no space left on the device{where}: free some space, then run the same command again "
        "(a training run: add --resume, it continues from its last checkpoint)"
    )


class _QuietDiskFull(logging.Filter):
    """Drops the error logs a full disk sets off in orbax's writer threads and asyncio (a page per
    save, some printed after the command's own line); the command says it in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        text = record.getMessage() + (str(record.exc_info[1]) if record.exc_info else "")
        return not any(f in text for f in FULL)


@functools.cache  # once per process: the filter and the hook stay, since orbax's threads may log while it exits
def _quiet_disk_full() -> None:
    """Installs the filter on the loggers of orbax (absl's) and asyncio. TensorStore's callbacks into the
    event loop of a save that failed print "Event loop is closed" as unraisable errors: those are dropped too."""
    quiet = _QuietDiskFull()
    for name in ("absl", "asyncio"):
        logging.getLogger(name).addFilter(quiet)
    shown = sys.unraisablehook

    def _drop_closed_loop(unraisable):
        error = unraisable.exc_value
        if not (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"):
            shown(unraisable)

    sys.unraisablehook = _drop_closed_loop


@functools.cache  # once per process
def _quiet_exit() -> None:
    """Ctrl-C ignored once the interpreter exits: the command's work is done by then, and a KeyboardInterrupt
    inside a library's atexit callback (JAX's backend clean-up) prints a traceback and changes nothing.
    Registered after JAX's, so it runs first (atexit runs the last registered first)."""
    atexit.register(signal.signal, signal.SIGINT, signal.SIG_IGN)


# Ctrl-C while a command starts (startup.prepare installs the first, entry_point calls the second).
def interrupted_while_starting(signum: int, frame: object) -> None:
    print("interrupted (Ctrl-C) while starting; nothing was written", file=sys.stderr, flush=True)
    os._exit(130)  # from Python code between imports: no lock held, no file open for writing


def end_startup() -> None:
    """Python's own Ctrl-C (KeyboardInterrupt) again, where `startup.prepare` set the start-up one."""
    if signal.getsignal(signal.SIGINT) is interrupted_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def stop_status(signal_name: str | None) -> int:
    """The exit status of work stopped by a signal: 143 for SIGTERM, 130 for Ctrl-C (SIGINT)."""
    return EXIT_TERMINATED if signal_name == "SIGTERM" else EXIT_INTERRUPTED


class Stopped(KeyboardInterrupt):
    """Work stopped by Ctrl-C or SIGTERM at a safe point; the message says what was kept.

    `entry_point` prints the message and exits with 130 (Ctrl-C) or 143 (SIGTERM).
    """

    def __init__(self, signal_name: str, message: str) -> None:
        super().__init__(message)
        self.signal = signal_name  # "SIGINT" or "SIGTERM"


class UsageError(ValueError):
    """A bad setting or input, found before anything was started (exit status 2)."""


def _raised_by_us(error: BaseException, own: Path | None) -> bool:
    """Whether the error was raised in jaxcifar, or in the package of the command's own module."""
    tb = error.__traceback__
    last = None
    while tb is not None:
        last, tb = tb, tb.tb_next
    where = Path(last.tb_frame.f_code.co_filename).resolve() if last is not None else None
    return where is not None and (where.is_relative_to(PACKAGE) or (own is not None and where.is_relative_to(own)))


def entry_point(main: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps a command's `main(argv)`: errors meant for people become "error: ..." and an exit status."""

    # The studies beside the package (research/) raise errors for people too.
    package = getattr(sys.modules.get(main.__module__), "__package__", None)
    own = Path(inspect.getfile(main)).resolve().parent if package else None

    @functools.wraps(main)
    def run(argv=None):
        end_startup()  # Ctrl-C is KeyboardInterrupt again, answered below
        _quiet_exit()
        if not debugging():
            _quiet_disk_full()
        try:
            return main(argv)
        except Stopped as e:
            print(e, file=sys.stderr)
            raise SystemExit(stop_status(e.signal)) from None
        except KeyboardInterrupt:
            print("interrupted (Ctrl-C)", file=sys.stderr)
            raise SystemExit(EXIT_INTERRUPTED) from None
        except Exception as e:
            if debugging():
                raise
            if (path := disk_full(e)) is not None:
                # the save that failed leaves coroutines never awaited: Python warns of each as it exits
                warnings.filterwarnings("ignore", message="coroutine .* was never awaited", category=RuntimeWarning)
                print(f"error: {disk_full_message(path)}", file=sys.stderr)
                raise SystemExit(EXIT_FAILED) from None
            if not isinstance(e, (ValueError, FileNotFoundError, FileExistsError, RuntimeError)):
                raise
            if not _raised_by_us(e, own):
                raise
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(EXIT_FAILED if isinstance(e, RuntimeError) else EXIT_USAGE) from e

    return run
