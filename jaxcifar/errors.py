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
"error: ..." and that status; an error raised outside jaxcifar's own code (a
programming error, a library's bug) keeps its traceback.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 130, 143
PACKAGE = Path(__file__).resolve().parent


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
        try:
            return main(argv)
        except Stopped as e:
            print(e, file=sys.stderr)
            raise SystemExit(stop_status(e.signal)) from None
        except KeyboardInterrupt:
            print("interrupted (Ctrl-C)", file=sys.stderr)
            raise SystemExit(EXIT_INTERRUPTED) from None
        except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as e:
            if not _raised_by_us(e, own):
                raise
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(EXIT_FAILED if isinstance(e, RuntimeError) else EXIT_USAGE) from e

    return run
