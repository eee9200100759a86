"""Which LR range test rules pick stable bounds, and which pairs train best: measured, not guessed.

    python -m research.lr_rules --data PATH --json results/lr-rules-cpu-quick.json   # --quick scale, ~15 min on 2 cores

At `--quick` scale (or any settings given as train flags), this runs the LR range
test with several seeds and records every rule's LR_MAX (and every LR_MIN rule's
bound for the accuracy rule's LR_MAX), as mean and standard deviation of log10(LR).
Then, for each pair of rules (LR_MAX rule / LR_MIN rule), it trains with the
bounds the pair picks from sweep k for training seed k, and reports the final test
accuracy's mean and standard deviation. The JSON holds every number and the
command; a quick-scale result need not carry over to the full recipe.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxcifar import data as data_lib
from jaxcifar import flags, lr_range, parallel, records, startup, train
from jaxcifar import seeds as seeds_lib
from jaxcifar.config import LR_MIN_RULES, LR_RULES, TrainConfig
from jaxcifar.console import say
from jaxcifar.errors import entry_point
from jaxcifar.loader import load_data

# The pairs worth comparing: the default, the original's unsmoothed pick, fastai's
# valley, the middle of the accuracy plateau, Smith's rise for LR_MIN, and fastai's minimum / 10.
PAIRS = (
    ("accuracy", "div"),
    ("accuracy-raw", "div"),
    ("valley", "div"),
    ("plateau", "div"),
    ("accuracy", "rise"),
    ("min-loss", "div"),
)


def _spread(values: Sequence[float]) -> dict:
    logs = np.log10(np.asarray(values, dtype=np.float64))
    return {
        "values": [float(v) for v in values],
        "log10_mean": float(logs.mean()),
        "log10_std": float(logs.std(ddof=1)) if len(logs) > 1 else 0.0,
        "geometric_mean": float(10 ** logs.mean()),
    }


def stability(sweeps: Sequence[dict], config: TrainConfig) -> dict:
    """Every rule's picks over the sweeps: LR_MAX by each rule, LR_MIN by each rule for the accuracy LR_MAX."""
    picks_max = {rule: [] for rule in LR_RULES}
    picks_min = {rule: [] for rule in LR_MIN_RULES}
    for result in sweeps:
        rec = lr_range.Sweep.of(result["records"])
        suggested = lr_range.suggest(rec)
        for rule in LR_RULES:
            picks_max[rule].append(suggested[rule])
        found = lr_range.suggest_min(rec, suggested["accuracy"], config.lr_div, config.lr_min_fraction)
        for rule in LR_MIN_RULES:
            if found[rule]["lr"] is not None:
                picks_min[rule].append(found[rule]["lr"])
    return {
        "lr_max": {rule: _spread(v) for rule, v in picks_max.items()},
        "lr_min_for_accuracy_lr_max": {rule: _spread(v) for rule, v in picks_min.items() if v},
    }


def study(config: TrainConfig, out: Path, seeds: int, pairs: Sequence[tuple[str, str]] = PAIRS) -> dict:
    """Sweeps with `seeds` seeds, then trains each pair with each seed; returns the record."""
    t0 = time.perf_counter()
    ds = load_data(config)
    sweeps, paths = [], []
    for seed in range(seeds):
        folder = out / f"sweep-{seed}"
        sweeps.append(lr_range.run(dataclasses.replace(config, seed=seed, out=str(folder)), ds, folder))
        paths.append(folder / "lr_range.json")
    sweep_seconds = time.perf_counter() - t0
    rows = []
    for rule, min_rule in pairs:
        runs = []
        for seed in range(seeds):
            run = dataclasses.replace(
                config,
                seed=seed,
                lr_max=None,
                lr_range_rule=rule,
                lr_min_rule=min_rule,
                lr_range_json=str(paths[seed]),
                out=str(out / f"{rule}-{min_rule}-seed-{seed}"),
            )
            summary = train.train_and_evaluate(run, ds)
            runs.append(
                {
                    "seed": seed,
                    "status": summary["status"],
                    "lr_max": summary["lr_max"],
                    "lr_min": summary["lr_min"],
                    "lr_min_rule": summary["lr"].get("lr_min_rule"),
                    "final_test_accuracy": summary["final_test_accuracy"],
                }
            )
        finals = np.array([r["final_test_accuracy"] or 0.0 for r in runs])
        rows.append(
            {
                "rule": rule,
                "lr_min_rule": min_rule,
                "runs": runs,
                **seeds_lib.mean_std("final_test_accuracy", finals),
            }
        )
        say(
            f"{rule}/{min_rule}: final test accuracy {100 * finals.mean():.2f} +- "
            f"{100 * rows[-1]['final_test_accuracy_std']:.2f}% over {seeds} seeds",
            flush=True,
        )
    return {
        "config": config.to_json(),
        "data_source": ds.source,
        "seeds": seeds,
        "stability": stability(sweeps, config),
        "pairs": rows,
        "sweep_seconds": sweep_seconds,
        "seconds": time.perf_counter() - t0,
        **records.provenance(),
    }


@entry_point
def main(argv: Sequence[str] | None = None) -> dict:
    startup.set_cpu_flags()  # XLA as the training command has it: YNNPACK off on the CPU
    parser = argparse.ArgumentParser(
        prog="python -m research.lr_rules",
        description="Measure how stable each LR range test rule's picks are, and how well each pair of rules trains.",
    )
    parser.add_argument("--seeds", type=int, default=3, help="sweep and training seeds (default: 3)")
    parser.add_argument("--json", default=None, help="write the record here too (default: OUT/lr-rules.json only)")
    parser.add_argument("--force", action="store_true", help="replace --json if it exists (default: off)")
    parser.add_argument(
        "--pairs",
        nargs="+",
        default=[f"{a}/{b}" for a, b in PAIRS],
        metavar="LR_RULE/LR_MIN_RULE",
        help=f"the pairs to train (default: {' '.join(f'{a}/{b}' for a, b in PAIRS)})",
    )
    flags.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.seeds < 2:
        parser.error(f"--seeds must be at least 2 (a spread needs two), got {args.seeds}")
    pairs = [tuple(p.split("/", 1)) for p in args.pairs]
    if bad := [p for p, pair in zip(args.pairs, pairs) if len(pair) != 2 or pair[0] not in LR_RULES
               or pair[1] not in LR_MIN_RULES]:  # fmt: skip
        parser.error(
            f"--pairs {' '.join(bad)}: each is LR_RULE/LR_MIN_RULE, LR_RULE one of {', '.join(LR_RULES)} and "
            f"LR_MIN_RULE one of {', '.join(LR_MIN_RULES)}"
        )
    # --quick scale unless told otherwise; only the last epoch's checkpoint, no figures to wait for
    settings = {"quick": True, "progress": False, "gradcam": False, "checkpoint_every": 0}
    config = TrainConfig.create(**{**settings, **flags.given_settings(args)})
    out = Path(config.out or "runs/lr-rules")
    records.check_new_folder(out)
    if args.json:
        records.refuse_overwrite(args.json, force=args.force)
    parallel.enable_compilation_cache(data_lib.compile_cache_folder(config.cache_dir))
    result = study(config, out, args.seeds, pairs)
    records.write_json(out / "lr-rules.json", result)
    if args.json:
        records.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
