"""The recipe over several seeds: mean and spread of the final test accuracy.

    python -m jaxcifar.seeds --seeds 5 --data PATH --out runs/seeds          # GPU: about 5 x the run
    python -m jaxcifar.seeds --seeds 2 --quick --data synthetic --out runs/s  # CPU: a few minutes

Takes every flag of `python -m jaxcifar.train`. With --lr-max auto (the default)
the LR range test runs once, with the first seed, and every seed trains with
the LR it found (--lr-range-json reuses an earlier one, checked before anything
runs). The table is written after every seed, so a run cut short keeps what it
finished. Each seed's run folder
is OUT/seed-<k>; OUT/seeds.json holds the table: per seed the final and best
test accuracy and the time, then the mean, standard deviation (n-1), min, max
and the share of runs at or above 93% and 94% (and, with --tta, the same for
the flip-TTA accuracy).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from jaxcifar import config as config_lib
from jaxcifar import data as data_lib
from jaxcifar import flags, lr_range, parallel, records, startup, train
from jaxcifar.errors import entry_point
from jaxcifar.loader import load_data


def mean_std(name: str, values) -> dict[str, float]:
    """{name}_mean and {name}_std of `values` (the sample standard deviation, n-1; 0 for one value)."""
    values = np.asarray(values, dtype=np.float64)
    return {
        f"{name}_mean": float(values.mean()),
        f"{name}_std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
    }


def summarize(rows: list[dict]) -> dict:
    """Mean, sample std, min, max of final accuracies and the share above the bars."""
    final = np.array([r["final_test_accuracy"] for r in rows], dtype=np.float64)
    return {
        "runs": len(rows),
        **mean_std("final_test_accuracy", final),
        "final_test_accuracy_min": float(final.min()),
        "final_test_accuracy_max": float(final.max()),
        "best_test_accuracy_mean": float(np.mean([r["best_test_accuracy"] for r in rows])),
        "share_at_least_93": float(np.mean(final >= 0.93)),
        "share_at_least_94": float(np.mean(final >= 0.94)),
        "train_seconds_mean": float(np.mean([r["train_seconds"] for r in rows])),
        **_tta_summary(rows),
    }


def _tta_summary(rows: list[dict]) -> dict:
    """With --tta: mean and sample std of the final flip-TTA test accuracy."""
    if not all("final_test_accuracy_tta" in r for r in rows):
        return {}
    tta = np.array([r["final_test_accuracy_tta"] for r in rows], dtype=np.float64)
    return {
        **mean_std("final_test_accuracy_tta", tta),
        "share_tta_at_least_94": float(np.mean(tta >= 0.94)),
    }


def seed_row(seed: int, summary: dict) -> dict:
    """A seed's line of the table, from its run's summary."""
    keys = (
        "final_test_accuracy",
        "best_test_accuracy",
        "best_train_accuracy",
        "train_seconds",
        "lr_max",
        "lr_min",
        "final_test_accuracy_tta",
    )
    return {"seed": seed, **{k: summary[k] for k in keys if k in summary}}


def table(config: config_lib.TrainConfig, rows: list[dict], planned: int) -> dict:
    """seeds.json: the shared config, a row per finished seed, their summary, the seeds planned, the machine."""
    return {
        "config": config.to_json(),
        "per_seed": rows,
        "summary": summarize(rows),
        "seeds_planned": planned,
        **records.provenance(),
    }


@entry_point
def main(argv=None) -> dict:
    startup.set_cpu_flags()  # XLA as the training command has it: YNNPACK off on the CPU
    parser = argparse.ArgumentParser(
        prog="python -m jaxcifar.seeds",
        description="Train the recipe with several seeds and report the mean and spread of the test accuracy.",
    )
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds: 0..N-1 after --seed (default: 5)")
    parser.add_argument(
        "--time-budget",
        type=float,
        default=None,
        help="seconds: start no further seed once the last one's time would pass this (default: no limit)",
    )
    flags.add_version(parser)
    flags.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be positive, got {args.seeds}")
    config = flags.from_args(args, parser)
    if config.resume:
        parser.error(
            "--resume applies to one run; resume a seed with python -m jaxcifar.train --out OUT/seed-K --resume"
        )
    out = Path(config.out or "runs/seeds")
    # Every input is checked before any work: a missing sweep must not show up after an hour.
    # (Their errors are one line and exit status 2, as the training command's.)
    records.check_writable(out)
    records.refuse_overwrite(out / "seeds.json", *(out / f"seed-{config.seed + k}" for k in range(args.seeds)))
    if config.lr_max is None and config.lr_range_json:
        lr_range.load(config.lr_range_json, config.lr_range_partial)
    start = time.perf_counter()
    parallel.enable_compilation_cache(data_lib.compile_cache_folder(config.cache_dir))
    ds = load_data(config)
    if config.lr_max is None and not config.lr_range_json:
        sweep_dir = out / "lr_range"
        lr_range.run(dataclasses.replace(config, out=str(sweep_dir)), ds, sweep_dir)
        config = dataclasses.replace(config, lr_range_json=str(sweep_dir / "lr_range.json"))
    rows: list[dict] = []
    result: dict = {}
    last_seconds = 0.0
    for k in range(args.seeds):
        seed = config.seed + k
        if k and args.time_budget is not None and time.perf_counter() - start + last_seconds > args.time_budget:
            print(f"time budget: {args.time_budget:g} s would pass; stopping after {k} seeds", file=sys.stderr)
            break
        t0 = time.perf_counter()
        summary = train.train_and_evaluate(dataclasses.replace(config, seed=seed, out=str(out / f"seed-{seed}")), ds)
        last_seconds = time.perf_counter() - t0
        if summary["status"] != "completed":
            print(f"seed {seed}: {summary['status']}: {summary['message']}", file=sys.stderr)
            raise SystemExit(1)
        rows.append(seed_row(seed, summary))
        # The table after every seed: a run cut short keeps the seeds it finished.
        result = table(config, rows, args.seeds)
        records.write_json(out / "seeds.json", result)
    print_table(result, out)
    return result


def print_table(result: dict, out: Path) -> None:
    s = result["summary"]
    print(f"{'seed':>6}{'final %':>10}{'best %':>10}{'train s':>10}")
    for r in result["per_seed"]:
        print(
            f"{r['seed']:>6}{100 * r['final_test_accuracy']:>10.2f}{100 * r['best_test_accuracy']:>10.2f}"
            f"{r['train_seconds']:>10.1f}"
        )
    print(
        f"final test accuracy {100 * s['final_test_accuracy_mean']:.2f} +- {100 * s['final_test_accuracy_std']:.2f}% "
        f"(min {100 * s['final_test_accuracy_min']:.2f}, max {100 * s['final_test_accuracy_max']:.2f}) over "
        f"{s['runs']} seeds; >= 94%: {100 * s['share_at_least_94']:.0f}% of runs; wrote {out / 'seeds.json'}"
    )
    if "final_test_accuracy_tta_mean" in s:
        print(
            f"with flip TTA: {100 * s['final_test_accuracy_tta_mean']:.2f}"
            f" +- {100 * s['final_test_accuracy_tta_std']:.2f}%;"
            f" >= 94%: {100 * s['share_tta_at_least_94']:.0f}% of runs"
        )


if __name__ == "__main__":
    main()
