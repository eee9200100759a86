"""The recipe over several seeds: mean and spread of the final test accuracy.

    python scripts/seeds.py --seeds 5 --data PATH --out runs/seeds          # GPU: about 5 x the run
    python scripts/seeds.py --seeds 2 --quick --data synthetic --out runs/s  # CPU: a few minutes

Takes every flag of `python -m jaxcifar.train`. With --lr-max auto (the default)
the LR range test runs once, with the first seed, and every seed trains with
the LR it found (--lr-range-json reuses an earlier one). Each seed's run folder
is OUT/seed-<k>; OUT/seeds.json holds the table: per seed the final and best
test accuracy and the time, then the mean, standard deviation (n-1), min, max
and the share of runs at or above 93% and 94% (and, with --tta, the same for
the flip-TTA accuracy).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from jaxcifar import config as config_lib
from jaxcifar import lr_range, records, train


def summarize(rows: list[dict]) -> dict:
    """Mean, sample std, min, max of final accuracies and the share above the bars."""
    final = np.array([r["final_test_accuracy"] for r in rows], dtype=np.float64)
    return {
        "runs": len(rows),
        "final_test_accuracy_mean": float(final.mean()),
        "final_test_accuracy_std": float(final.std(ddof=1)) if len(final) > 1 else 0.0,
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
        "final_test_accuracy_tta_mean": float(tta.mean()),
        "final_test_accuracy_tta_std": float(tta.std(ddof=1)) if len(tta) > 1 else 0.0,
        "share_tta_at_least_94": float(np.mean(tta >= 0.94)),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python scripts/seeds.py", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds: 0..N-1 after --seed (default: 5)")
    config_lib.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be positive, got {args.seeds}")
    if args.resume:
        parser.error(
            "--resume applies to one run; resume a seed with python -m jaxcifar.train --out OUT/seed-K --resume"
        )
    config = config_lib.from_args(args, parser)
    out = Path(config.out or "runs/seeds")
    if (out / "seeds.json").exists():
        parser.error(f"{out / 'seeds.json'} exists; nothing is overwritten. Choose another --out.")
    train.enable_compilation_cache(config)
    ds = train.load_data(config)
    if config.lr_max == "auto" and not config.lr_range_json:
        sweep_dir = out / "lr_range"
        lr_range.run(dataclasses.replace(config, out=str(sweep_dir)), ds, sweep_dir)
        config = dataclasses.replace(config, lr_range_json=str(sweep_dir / "lr_range.json"))
    rows = []
    for k in range(args.seeds):
        seed = config.seed + k
        summary = train.train_and_evaluate(dataclasses.replace(config, seed=seed, out=str(out / f"seed-{seed}")), ds)
        if summary["status"] != "completed":
            print(f"seed {seed}: {summary['status']}: {summary['message']}", file=sys.stderr)
            raise SystemExit(1)
        rows.append(
            {
                "seed": seed,
                **{
                    k: summary[k]
                    for k in (
                        "final_test_accuracy",
                        "best_test_accuracy",
                        "best_train_accuracy",
                        "train_seconds",
                        "lr_max",
                        "lr_min",
                        "final_test_accuracy_tta",
                    )
                    if k in summary
                },
            }
        )
    result = {"config": config.to_json(), "per_seed": rows, "summary": summarize(rows), **records.provenance()}
    records.write_json(out / "seeds.json", result)
    s = result["summary"]
    print(f"{'seed':>6}{'final %':>10}{'best %':>10}{'train s':>10}")
    for r in rows:
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
    return result


if __name__ == "__main__":
    main()
