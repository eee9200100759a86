"""The GPU evidence in one call: every part that fits a time budget, in one process.

    bash research/gpu_session.sh all     # on the device: the guard, then this module
    python -m research.gpu_all --data DATA --out OUT --device h200 --budget 450

In this order, each part only while its measured cost fits the time left:

  recipe  the LR range test and the 24-epoch recipe, seed 0, with every figure,
          Grad-CAM and flip TTA (results/<device>-24.json, figures/*-<device>-24.png)
  seeds   seeds 1.. of the recipe from the same sweep (results/seeds-<device>.json);
          a seed starts only if the last one's time fits, less the benchmark's reserve
  fast    seeds of --recipe cifar10-fast (results/seeds-fast-<device>.json); the
          first is costed as a recipe seed plus one compilation
  bench   research.benchmark without the LR range test, whose time the recipe's
          lr_range.json holds (results/benchmark-<device>.json), bounded by what is left

The data is read once and every seed of a recipe runs the same program (the same
LR, so the compilation cache answers after the first). After every part
OUT/evidence.tar.gz (all the results and figures made so far) and OUT/all.json
(each part with its seconds, each part left out with the reason) are rewritten
atomically, so a call killed at its time limit still returns what it finished.
With the script's log and gpu.txt, a call brings back four files.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import shlex
import shutil
import sys
import tarfile
import time
from pathlib import Path

from jaxcifar import data as data_lib
from jaxcifar import flags, lr_range, parallel, records, seeds, startup, train
from jaxcifar.config import TrainConfig
from jaxcifar.errors import EXIT_FAILED, entry_point
from jaxcifar.loader import load_data
from research import benchmark, collect_run

MAX_FILE_BYTES = 16 * 2**20  # what the device tool brings back of one file


def run_config(data: str, extra: str, out: Path) -> TrainConfig:
    """A run's config from training-command flags `extra` (as `python -m jaxcifar.train` reads them), with
    the settings every run of the call shares: flip TTA, no checkpoints, no progress bar."""
    parser = flags.parser("research.gpu_all", "one run of the GPU call")
    fixed = ["--data", data, "--out", str(out), "--tta", "--checkpoint-every", "0", "--no-progress"]
    return flags.from_args(parser.parse_args([*shlex.split(extra), *fixed]), parser)


class Call:
    """The call's clock, its ledger and its evidence: what each part made, packed after every part."""

    def __init__(self, out: Path, root: Path, device: str, budget: float, reserve: float) -> None:
        self.out, self.root, self.device = out, root, device
        self.budget, self.reserve = budget, reserve
        self.start = time.perf_counter()
        self.made: list[str] = []  # paths under root, in the order made
        self.ledger: dict = {"device": device, "budget_s": budget, "bench_reserve_s": reserve, "parts": []}
        self.ledger["skipped"] = []

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.start)

    def fits(self, part: str, cost: float, keep: float = 0.0) -> bool:
        """Whether `part`, expected to take `cost` s, ends with `keep` s of the budget still left."""
        if cost + keep <= self.left():
            return True
        why = f"{self.left():.0f} s left, it takes about {cost:.0f} s" + (f" and {keep:.0f} s are kept" if keep else "")
        self.ledger["skipped"].append({"part": part, "why": why})
        print(f"{part}: skipped ({why})", file=sys.stderr, flush=True)
        self.pack()
        return False

    def done(self, part: str, seconds: float, *paths: Path) -> None:
        """Record a finished part and the files it made, then pack the evidence."""
        for path in paths:
            name = str(path.relative_to(self.root))
            if name not in self.made:
                self.made.append(name)
        self.ledger["parts"].append({"part": part, "seconds": round(seconds, 1)})
        print(f"{part}: done in {seconds:.0f} s, {self.left():.0f} s of the budget left", flush=True)
        self.pack()

    def pack(self) -> None:
        """OUT/evidence.tar.gz and OUT/all.json, each replaced whole (a killed call keeps the last pair)."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for name in self.made:
                tar.add(self.root / name, arcname=name)
        if buffer.tell() > MAX_FILE_BYTES:
            raise RuntimeError(f"evidence.tar.gz: {buffer.tell():,} bytes, more than a call returns")
        with records.atomic_open(self.out / "evidence.tar.gz") as f:
            f.write(buffer.getvalue())
        self.ledger.update(files=self.made, seconds=round(time.perf_counter() - self.start, 1))
        records.write_json(self.out / "all.json", self.ledger)


def run_seeds(
    call: Call, name: str, config: TrainConfig, ds, count: int, cost: float | None, evidence: bool = False
) -> dict | None:
    """Seeds 0..count-1 of `config`, each only while its cost fits, results/NAME.json rewritten after each.

    `cost`: the first seed's expected seconds (None: it runs whatever is left); each later
    seed is costed by the one before. With `evidence`, seed 0 draws Grad-CAM and its run
    becomes results/<device>-24.json with its figures; the other seeds draw none.
    Returns {"wall_seconds": the last finished seed's, "compile_seconds": the first's}, or None.
    """
    rows: list[dict] = []
    path = call.root / "results" / f"{name}.json"
    spent = None
    for seed in range(count):
        part = f"{name} seed {seed}"
        if cost is not None and not call.fits(part, cost, call.reserve):
            break
        t0 = time.perf_counter()
        run = dataclasses.replace(
            config, seed=seed, out=str(Path(config.out) / f"seed-{seed}"), gradcam=evidence and seed == 0
        )
        summary = train.train_and_evaluate(run, ds)
        if summary["status"] != "completed":
            print(f"{part}: {summary['status']}: {summary['message']}", file=sys.stderr)
            raise SystemExit(EXIT_FAILED)
        rows.append(seeds.seed_row(seed, summary))
        records.write_json(path, seeds.table(config, rows, count))
        made = [path]
        if evidence and seed == 0:
            suffix = f"-{call.device}-24"
            made.append(collect_run.collect(Path(run.out), f"{call.device}-24", suffix, True, call.root))
            made += sorted((call.root / "figures").glob(f"*{suffix}.png"))
        cost = time.perf_counter() - t0
        spent = {"wall_seconds": cost, "compile_seconds": (spent or summary)["compile_seconds"]}
        call.done(part, cost, *made)
    return spent


def bench(call: Call, data: str, extra: str, margin: float) -> None:
    """research.benchmark in this process, bounded by what is left less `margin` (its longest section)."""
    if not call.fits("bench", margin):
        return
    t0 = time.perf_counter()
    path = call.root / "results" / f"benchmark-{call.device}.json"
    argv = ["--data", data, "--force", "--out", str(path), "--budget", f"{call.left() - margin:.0f}"]
    benchmark.main([*argv, *shlex.split(extra)])
    call.done("bench", time.perf_counter() - t0, path)


@entry_point
def main(argv=None) -> dict:
    startup.set_cpu_flags()  # a CPU rehearsal runs as the training command would
    parser = argparse.ArgumentParser(prog="python -m research.gpu_all", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="the images every part reads (required)")
    parser.add_argument("--out", type=Path, required=True, help="the folder the call brings back (required)")
    parser.add_argument("--device", required=True, help="the name results and figures carry, e.g. h200 (required)")
    parser.add_argument("--budget", type=float, default=450.0, help="seconds for all parts (default: 450)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds of the recipe, the first included (default: 5)")
    parser.add_argument("--fast-seeds", type=int, default=5, help="seeds of --recipe cifar10-fast (default: 5)")
    parser.add_argument(
        "--bench-reserve", type=float, default=120.0, help="seconds the seeds leave to the benchmark (default: 120)"
    )
    parser.add_argument(
        "--bench-margin", type=float, default=30.0, help="seconds kept for the benchmark's last section (default: 30)"
    )
    parser.add_argument("--no-bench", action="store_true", help="leave the benchmark out (default: run it last)")
    parser.add_argument("--runs", type=Path, default=Path("runs/all"), help="the run folders (default: runs/all)")
    parser.add_argument("--root", type=Path, default=Path("."), help="where results/ and figures/ are (default: .)")
    parser.add_argument("--extra", default="", help="training flags for every run, e.g. '--width 16' (default: none)")
    parser.add_argument("--fast-extra", default="", help="training flags for the cifar10-fast seeds only")
    parser.add_argument("--bench-extra", default="", help="flags for research.benchmark (default: none)")
    args = parser.parse_args(argv)
    if min(args.seeds, args.fast_seeds) < 0 or args.budget <= 0:
        parser.error("--seeds and --fast-seeds must be 0 or more and --budget positive")
    try:  # every input before the first minute of device time
        records.check_new_folder(args.runs)
        recipe = run_config(args.data, args.extra, args.runs / "recipe")
        fast = run_config(args.data, f"--recipe cifar10-fast {args.extra} {args.fast_extra}", args.runs / "fast")
        records.check_writable(args.out)
    except (FileExistsError, ValueError) as e:
        parser.error(str(e))
    call = Call(args.out, args.root, args.device, args.budget, args.bench_reserve)
    parallel.enable_compilation_cache(data_lib.compile_cache_folder(recipe.cache_dir))
    t0 = time.perf_counter()
    ds = load_data(recipe)
    call.done("data", time.perf_counter() - t0)

    if args.seeds and not recipe.lr_range_json:  # one sweep for every seed of the recipe
        t0 = time.perf_counter()
        sweep_dir = args.runs / "lr_range"
        lr_range.run(dataclasses.replace(recipe, out=str(sweep_dir)), ds, sweep_dir)
        recipe = dataclasses.replace(recipe, lr_range_json=str(sweep_dir / "lr_range.json"))
        kept = call.root / "results" / f"lr-range-{args.device}.json"
        shutil.copyfile(sweep_dir / "lr_range.json", kept)
        call.done("lr range test", time.perf_counter() - t0, kept)
    last = run_seeds(call, f"seeds-{args.device}", recipe, ds, args.seeds, None, evidence=True)
    # A new recipe is a new program: its first seed costs a recipe seed and one compilation more.
    fast_cost = last["wall_seconds"] + last["compile_seconds"] if last else None
    run_seeds(call, f"seeds-fast-{args.device}", fast, ds, args.fast_seeds, fast_cost)
    if not args.no_bench:
        bench(call, args.data, args.bench_extra, args.bench_margin)
    print(f"the call's parts took {time.perf_counter() - call.start:.0f} s; evidence in {args.out}")
    return call.ledger


if __name__ == "__main__":
    main()
