"""How far each LR range test rule's pick moves when only the rounding of the sums changes.

    python -m research.lr_rule_stability --data ../shared/data/cifar10-png.tar.gz \
        --json results/lr-rule-stability-cpu.json      # 12 sweeps, about 8 min on 2 cores

The same `--quick` sweep picked LR_MAX 0.0285 on one 2-core CPU and 0.0534 on another
(issue 46): another CPU's vector extensions make XLA emit other kernels, which round the
same sums otherwise. Here the rounding is changed on one machine by the two kernel
choices (`--conv xla|winograd`, `--batch-norm flax|matvec`: the same sums, rounded
otherwise), for each of a few sweep seeds. For each rule the JSON holds every pick and
the spread of log10(LR) over the kernel variants of one seed (what another CPU moves)
and over the seeds (what another draw of batches moves). Each sweep is a subprocess,
exactly the command a user runs.
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxcifar import records
from jaxcifar.config import LR_RULES
from jaxcifar.errors import entry_point

VARIANTS = tuple(itertools.product(("xla", "winograd"), ("flax", "matvec")))


def sweep_command(data: str, conv: str, batch_norm: str, seed: int, out: Path) -> list[str]:
    """The `--quick` LR range test with the given kernels and seed, writing into `out`."""
    return [
        *("python", "-m", "jaxcifar.lr_range", "--quick", "--data", data, "--conv", conv, "--batch-norm", batch_norm),
        *("--seed", str(seed), "--out", str(out), "--no-progress"),
    ]


def spread(values: Sequence[float]) -> float:
    """Standard deviation of log10 of `values` (0 for one value): 0.30 is a factor of 2 either way."""
    logs = np.log10(np.asarray(values, dtype=np.float64))
    return float(logs.std(ddof=1)) if len(logs) > 1 else 0.0


def summarise(picks: dict[str, dict[str, float]], seeds: Sequence[int]) -> dict[str, dict]:
    """Per rule: the mean over seeds of the spread over kernel variants, and the spread over seeds of the
    default kernels' pick. `picks[f"{conv}-{bn}-s{seed}"][rule]` is one sweep's LR_MAX by `rule`."""
    out = {}
    for rule in LR_RULES:
        over_kernels = [spread([picks[f"{c}-{b}-s{s}"][rule] for c, b in VARIANTS]) for s in seeds]
        ratios = [
            max(picks[f"{c}-{b}-s{s}"][rule] for c, b in VARIANTS)
            / min(picks[f"{c}-{b}-s{s}"][rule] for c, b in VARIANTS)
            for s in seeds
        ]
        out[rule] = {
            "log10_std_over_kernels": float(np.mean(over_kernels)),
            "max_over_min_over_kernels": float(np.max(ratios)),
            "log10_std_over_seeds": spread([picks[f"xla-flax-s{s}"][rule] for s in seeds]),
            "geometric_mean": float(10 ** np.mean(np.log10([p[rule] for p in picks.values()]))),
        }
    return out


@entry_point
def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m research.lr_rule_stability", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="CIFAR-10 to sweep on (required)")
    parser.add_argument("--seeds", type=int, default=3, help="sweep seeds 0..N-1 (default: 3)")
    parser.add_argument(
        "--runs",
        type=Path,
        default=Path("runs/lr-rule-stability"),
        help="sweep folders (default: runs/lr-rule-stability)",
    )
    parser.add_argument("--json", type=Path, required=True, help="write the result here (required)")
    parser.add_argument("--force", action="store_true", help="replace --json if it exists (default: off)")
    args = parser.parse_args(argv)
    records.refuse_overwrite(args.json, force=args.force)
    seeds = list(range(args.seeds))
    picks, commands, started = {}, {}, time.perf_counter()
    for seed, (conv, bn) in itertools.product(seeds, VARIANTS):
        name, out = f"{conv}-{bn}-s{seed}", args.runs / f"{conv}-{bn}-s{seed}"
        command = sweep_command(args.data, conv, bn, seed, out)
        if not (out / "lr_range.json").exists():
            subprocess.run([sys.executable, *command[1:]], check=True, stdout=subprocess.DEVNULL)
        picks[name] = records.read_json(out / "lr_range.json")["suggestions"]
        commands[name] = " ".join(command)
        print(name, {rule: f"{lr:.4g}" for rule, lr in picks[name].items()}, flush=True)
    result = {
        **records.provenance(),
        "data": args.data,
        "seeds": seeds,
        "variants": [f"{c}-{b}" for c, b in VARIANTS],
        "sweep_commands": commands,
        "picks": picks,
        "rules": summarise(picks, seeds),
        "seconds": time.perf_counter() - started,
    }
    records.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
