"""Ctrl-C at random moments of a command's start-up: does any end in a crash?

    python -m research.ctrl_c_startup --tries 50 --out results/ctrl-c-startup-cpu.json   # ~5 min on 2 cores

An earlier report (issue 33): once in 5 tries, Ctrl-C during the LR range test's start-up
ended in a segmentation fault (exit 139) after printing "interrupted". This starts the
tiny sweep `--tries` times, sends SIGINT after a delay drawn uniformly from 0 to
`--window` seconds (the import, the data, the compilation and the first iterations lie
in it), and records each exit status, the last line it printed and where it was. Every
try must end with 130 (stopped by Ctrl-C) or, when the signal came after the sweep had
finished, 0. A Ctrl-C in the first hundredths of a second reaches the interpreter while it
starts, before any code of ours: Python then exits 1, printing "KeyboardInterrupt" (counted
apart). Anything else (139: SIGSEGV, 134: SIGABRT, a fatal error) is a crash.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxcifar import records
from jaxcifar.errors import entry_point

SWEEP = "--data synthetic --n-train 256 --batch-size 32 --width 4 --lr-range-iters 30".split()
CLEAN = (0, 130)  # finished before the signal; stopped by it


def classify(status: int, text: str, lines: Sequence[str]) -> tuple[bool, str]:
    """(crash, outcome) of a try that ended with `status` (as a shell reports it) and printed `text`."""
    if status in CLEAN:
        outcome = "clean"
    elif status == 1 and lines and lines[-1] == "KeyboardInterrupt" and "/jaxcifar/" not in text:
        # Ctrl-C while the interpreter itself starts (site.py; "Fatal Python error: init_import_site"):
        # Python exits 1 before the command's first line runs
        outcome = "python start-up"
    else:
        outcome = "crash"  # killed by another signal (139: SIGSEGV, 134: SIGABRT), or any other status
    fatal = "Fatal Python error" in text and "init_import_site" not in text
    crash = outcome == "crash" or fatal or "Segmentation fault" in text
    return crash, "crash" if crash else outcome


def _noisy(text: str) -> bool:
    """Whether a log holds a traceback or an error Python ignored (kept, to see where it came from)."""
    return "Traceback" in text or "Exception ignored" in text or "KeyboardInterrupt:" in text


def one_try(delay: float, command: Sequence[str], timeout: float = 120.0) -> dict:
    """Starts `command`, sends SIGINT after `delay` s; the exit status and the last line of its output."""
    out = Path(tempfile.mkdtemp(prefix="jaxcifar-ctrl-c-startup-"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}  # a crash prints its stack
    # Ctrl-C's default action in the child, as in a terminal: a shell starts a background job (`cmd &`)
    # with SIGINT ignored, which children inherit (a handler is reset on exec, "ignored" is not), and
    # Python then never raises KeyboardInterrupt. So this process holds a handler while it starts one.
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.perf_counter()
    try:
        proc = subprocess.Popen([*command, "--out", str(out / "sweep")], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env)  # fmt: skip
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        try:
            log, _ = proc.communicate(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            log, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(out, ignore_errors=True)
    lines = [line for line in (log or "").splitlines() if line.strip()]
    # as a shell reports it: killed by signal N is 128 + N (Python re-raises an uncaught Ctrl-C as SIGINT: 130)
    status = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
    crash, outcome = classify(status, log or "", lines)
    return {
        "outcome": outcome,
        "delay_s": round(delay, 3),
        "exit_code": status,
        "seconds": round(time.perf_counter() - started, 2),
        "last_line": lines[-1][:300] if lines else "",
        "crash": crash,
        "log_tail": lines[-30:] if crash or _noisy(log or "") else [],
    }


@entry_point
def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m research.ctrl_c_startup", description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=50, help="starts to interrupt (default: 50)")
    parser.add_argument("--window", type=float, default=None, help="seconds the delays are drawn from (default: "
                        "the time one uninterrupted sweep takes here)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the delays (default: 0)")
    parser.add_argument("--module", default="jaxcifar.lr_range", help="the command (default: jaxcifar.lr_range)")
    parser.add_argument("--out", type=Path, help="write the record here (default: print it only)")
    parser.add_argument("--force", action="store_true", help="replace --out (default: refuse)")
    args = parser.parse_args(argv)
    if args.tries < 1:
        parser.error(f"--tries must be positive, got {args.tries}")
    if args.out:
        records.refuse_overwrite(args.out, force=args.force)
    command = [sys.executable, "-m", args.module, *SWEEP]
    window = args.window
    if window is None:  # the whole start-up and run, measured once without a signal
        whole = one_try(600.0, command)
        if whole["exit_code"] != 0:
            raise RuntimeError(f"the uninterrupted sweep failed ({whole['exit_code']}): {whole['last_line']}")
        window = whole["seconds"]
    rng = np.random.default_rng(args.seed)
    tries = []
    for k, delay in enumerate(rng.uniform(0.0, window, args.tries)):
        tries.append(one_try(float(delay), command))
        t = tries[-1]
        print(f"{k + 1:>3}/{args.tries}: SIGINT after {t['delay_s']:.2f} s -> exit {t['exit_code']}"
              f"{'  CRASH' if t['crash'] else ''}  ({t['last_line'][:80]})", flush=True)  # fmt: skip
    counts = collections.Counter(t["exit_code"] for t in tries)
    outcomes = collections.Counter(t["outcome"] for t in tries)
    result = {
        "command": records.command_line(),
        "tried": " ".join([args.module, *SWEEP]),
        "window_s": window,
        "tries": tries,
        "exit_codes": {str(k): v for k, v in sorted(counts.items())},
        "outcomes": dict(sorted(outcomes.items())),
        "crashes": sum(t["crash"] for t in tries),
        **records.provenance(),
    }
    print(f"{args.tries} starts interrupted at random: exit codes {result['exit_codes']}, outcomes "
          f"{result['outcomes']}, {result['crashes']} crashes")  # fmt: skip
    if args.out:
        records.write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
