"""How long Ctrl-C takes to stop a training run: from the signal to the saved checkpoint and the exit.

    python -m research.ctrl_c_latency --data PATH --out results/ctrl-c-cpu.json    # full width, ~3 min on a CPU

Starts `python -m jaxcifar.train` in a subprocess (width 64, batch 512 unless told
otherwise), waits until training has run `--after` seconds past compilation,
sends SIGINT as Ctrl-C would, and times the exit. Records the latency, the batch
the run stopped at, the step time the run itself announced, and the exit status
(130: stopped and resumable). The run folder is removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from jaxcifar import records
from jaxcifar.errors import entry_point


def measure(train_args: Sequence[str], after: float, timeout: float = 1800.0) -> dict:
    """Runs `python -m jaxcifar.train TRAIN_ARGS --out TMP`, Ctrl-C `after` s into training; the timings."""
    out = Path(tempfile.mkdtemp(prefix="jaxcifar-ctrl-c-")) / "run"
    command = [sys.executable, "-m", "jaxcifar.train", *train_args, "--no-gradcam", "--out", str(out)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    try:
        for line in proc.stdout:  # wait for the line that ends compilation: training starts now
            lines.append(line)
            if "compiled in" in line:
                break
        else:
            raise RuntimeError("the training run ended before it started training:\n" + "".join(lines[-20:]))
        time.sleep(after)
        signalled = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=timeout)
        latency = time.perf_counter() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(out.parent, ignore_errors=True)
    log = "".join(lines) + rest
    stopped = re.search(r"Stopped at epoch (\d+), batch (\d+)", log)
    step = re.search(r"One step takes ([0-9.]+) s here", log)
    return {
        "signal_to_exit_s": latency,
        "after_s": after,
        "exit_code": proc.returncode,
        "stopped_at": [int(stopped.group(1)), int(stopped.group(2))] if stopped else None,
        "step_seconds": float(step.group(1)) if step else None,
        "train_command": "python -m jaxcifar.train " + " ".join(train_args),
        "log_tail": log[-1500:],
    }


@entry_point
def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m research.ctrl_c_latency",
        description="Time how long Ctrl-C takes to stop a full-size training run.",
    )
    parser.add_argument("--data", default="synthetic", help="CIFAR-10 source (default: synthetic)")
    parser.add_argument("--width", type=int, default=64, help="base width (default: 64)")
    parser.add_argument("--batch-size", type=int, default=512, help="images per step (default: 512)")
    parser.add_argument("--after", type=float, default=60.0, help="seconds of training before Ctrl-C (default: 60)")
    parser.add_argument("--out", default=None, help="JSON record (default: print only)")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists (default: off)")
    args = parser.parse_args(argv)
    if args.out:
        records.refuse_overwrite(args.out, force=args.force)
    train_args = ["--data", args.data, "--width", str(args.width), "--batch-size", str(args.batch_size)]
    train_args += ["--lr-max", "0.05", "--no-progress"]
    result = {**records.provenance(), **measure(train_args, args.after)}
    print(
        f"Ctrl-C after {args.after:g} s of training: exit status {result['exit_code']} "
        f"{result['signal_to_exit_s']:.1f} s after the signal, stopped at epoch/batch {result['stopped_at']}; "
        f"a step takes {result['step_seconds']} s"
    )
    if args.out:
        records.write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
