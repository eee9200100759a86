"""What a run prints and the stop signals it hears: messages from process 0, progress bars and lines, Ctrl-C.

On a terminal each epoch (and the LR range test) gets a tqdm bar. When the
output goes to a file there is no bar, so a CPU epoch of many minutes would
leave the log silent: `Progress` then prints a short line every `every_s`
seconds instead. Only process 0 of a multi-process run prints. `StopRequest`
turns Ctrl-C and SIGTERM into a request the training loop and the LR range
test answer at their next step.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Any

import jax


def say(*args: Any, **kwargs: Any) -> None:
    """print(), on process 0 only: a multi-process run logs once."""
    if jax.process_index() == 0:
        print(*args, **kwargs)


class Progress:
    """Progress of `total` steps: a tqdm bar on a terminal, a line every `every_s` seconds in a log.

    Nothing is shown when `enabled` is False or on processes other than 0.
    """

    def __init__(
        self, enabled: bool, total: int, desc: str, initial: int = 0, every_s: float = 60.0, stream=None
    ) -> None:
        self.total, self.desc, self.done, self.every_s = total, desc, initial, every_s
        self.stream = stream or sys.stderr
        self.bar = None
        self.logging = False
        self._t0 = self._last = time.perf_counter()
        self._initial = initial
        self._postfix: dict[str, str] = {}
        if not enabled or jax.process_index() != 0:
            return
        if _is_terminal(self.stream) or in_notebook():
            from tqdm.auto import tqdm  # here: only terminals and notebooks draw bars (tqdm.auto: a widget there)

            self.bar = tqdm(
                total=total, initial=initial, desc=desc, unit="step", leave=False, dynamic_ncols=True, file=self.stream
            )
        else:
            self.logging = True

    def update(self, n: int = 1, **postfix: str) -> None:
        """`n` more steps done; `postfix` values are shown beside the count."""
        self.done += n
        self._postfix.update(postfix)
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix(**postfix)
        elif self.logging and time.perf_counter() - self._last >= self.every_s:
            self._last = time.perf_counter()
            elapsed = self._last - self._t0
            rate = (self.done - self._initial) / elapsed if elapsed > 0 else 0.0
            left = (self.total - self.done) / rate if rate > 0 else float("nan")
            extra = "".join(f" {k} {v}" for k, v in self._postfix.items())
            print(
                f"  {self.desc}: {self.done}/{self.total} steps, {elapsed:.0f} s, about {left:.0f} s left{extra}",
                file=self.stream,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def in_notebook() -> bool:
    """Whether this process is a Jupyter/Colab kernel (its output cells draw bars; a pipe to a log does not)."""
    shell = sys.modules.get("IPython")
    ipython = getattr(shell, "get_ipython", lambda: None)() if shell else None
    return ipython is not None and type(ipython).__name__ in ("ZMQInteractiveShell", "Shell")  # Jupyter, Colab


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class StopRequest:
    """Turns the first Ctrl-C (SIGINT) or SIGTERM into a request to stop at the next step boundary.

    SIGTERM is what Slurm, Kubernetes, `timeout` and `kill` send before they kill a
    process: answered like Ctrl-C, a preempted run saves where it is and resumes
    exactly, instead of losing the epoch under way (13 minutes on a 2-core CPU).
    A second signal interrupts at once. Only installed in the main thread.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, then: str = "saving a checkpoint after this step") -> None:
        self.then = then  # what the first signal does, as said to the person who sent it
        self.requested = False
        self.signal: str | None = None  # the name of the signal that asked to stop: "SIGINT" or "SIGTERM"
        self._previous: dict = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.signal = signal.Signals(signum).name
        print(f"\n{self.who}: {self.then} ({self.who} again to quit at once).", file=sys.stderr)

    @property
    def who(self) -> str | None:
        """The signal that asked to stop, as people know it: "Ctrl-C" or "SIGTERM"."""
        return "Ctrl-C" if self.signal == "SIGINT" else self.signal

    def __exit__(self, *exc) -> None:
        for s, previous in self._previous.items():
            if previous is not None:  # None: a handler not installed from Python, which cannot be put back
                signal.signal(s, previous)
