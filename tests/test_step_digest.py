"""The training step computes bit for bit what it computed at BASELINE, the code of the committed runs.

Refactors of the model, its kernels and the steps must keep the step's numbers, so that
runs begun on earlier code stay valid when resumed, and results stay comparable. The
baseline's jaxcifar is exported from this checkout's git history and runs
research/step_digest.py in its own process, as today's code does; both print the sha256
of the state after two steps at widths 64 (Winograd's convolutions and the matrix-vector
BatchNorm on CPU) and 8 (XLA's and Flax's).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jaxcifar.errors import UsageError
from research import cpu_variants

BASELINE = "57ee951"  # the last commit before the kernels left model.py; the width-16 PNG runs' code
ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "research" / "step_digest.py"


def digests(source: Path, tmp_path: Path) -> list[dict]:
    """The digests at widths 64 and 8, in one process running `source`'s jaxcifar."""
    command = [sys.executable, str(SCRIPT), "--width", "64", "8", "--batch-size", "16", "--steps", "2"]
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(source)}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = [json.loads(line) for line in done.stdout.strip().splitlines()[-2:]]
    assert [d["width"] for d in out] == [64, 8]
    return out


def test_the_step_is_bit_for_bit_the_baselines(tmp_path):
    try:
        full, _ = cpu_variants.revision(BASELINE)
    except (UsageError, subprocess.CalledProcessError, FileNotFoundError) as e:
        pytest.skip(f"the baseline {BASELINE} is not in this checkout's history ({e}); clone jaxcifar with git")
    baseline = cpu_variants.export_revision(full, tmp_path)
    old, new = digests(baseline, tmp_path), digests(ROOT, tmp_path)
    assert [d["jaxcifar"] for d in old] == [str(baseline / "jaxcifar" / "__init__.py")] * 2
    assert [d["jaxcifar"] for d in new] == [str(ROOT / "jaxcifar" / "__init__.py")] * 2

    def numbers(runs):
        return [(d["width"], d["losses"], d["sha256"]) for d in runs]

    assert numbers(new) == numbers(old)
