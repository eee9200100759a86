"""research/gpu_session.sh rehearsed on this CPU, every stage through the script itself, tiny.

GPU sessions are rare and short: a typo or a missing hand-off must show up here,
not after minutes of device time.
"""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN_FLAGS = (
    "--n-train 640 --n-test 100 --width 4 --batch-size 64 --epochs 2 --peak-epoch 1 --lr-range-iters 20 "
    "--lr-range-start 1e-3 --lr-range-end 0.5"
)


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    """A stand-in repository root (the script writes runs/, results/ and figures/ there)."""
    work = tmp_path_factory.mktemp("repo")
    for name in ("jaxcifar", "research"):
        (work / name).symlink_to(ROOT / name)
    (work / "results").mkdir()
    (work / "figures").mkdir()
    return work


def session(work, *args, extra=RUN_FLAGS, rehearsal=True, out=None, env=None):
    env = {
        **os.environ,
        **(env or {}),  # the test's own settings win over the caller's environment
        "OUT": str(out or work / "out"),
        "DATA": "synthetic",
        "EXTRA": extra,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # python3 = this interpreter
        "JAXCIFAR_CACHE": str(work / "cache"),
        "JAXCIFAR_REHEARSAL": "1" if rehearsal else "0",
    }
    return subprocess.run(
        ["bash", str(work / "research" / "gpu_session.sh"), *args],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def members(path):
    with tarfile.open(path) as tar:
        return set(tar.getnames())


def test_the_guard_stops_a_run_that_found_no_gpu(stand_in):
    done = session(stand_in, "all", rehearsal=False, out=stand_in / "out-guard")
    assert done.returncode == 1, done.stderr[-2000:]
    assert "JAX runs on cpu, not gpu" in done.stderr and "versions: python" in done.stdout
    assert not list((stand_in / "results").iterdir())  # nothing was measured or written


SEEDS = "--seeds 2 --fast-seeds 1"  # the recipe's seed 0 with its evidence, seed 1, one cifar10-fast seed
BENCH = "--batch-size 16 --width 4 --steps 1 --epoch-steps 2 --no-torch --only-dtypes --augment-batches 2"
FAST = "--lr-max 0.05"  # Page's 0.4 is for width 64; the tiny network needs less
DEVICE = "rehearsal-cpu"


def all_stage(work, out, budget, flags):
    env = {"BUDGET": str(budget), "ALL_FLAGS": flags, "FAST_EXTRA": FAST, "BENCH_EXTRA": BENCH}
    done = session(work, "all", out=out, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    ledger = json.loads((out / "all.json").read_text())
    files = sorted(p.name for p in out.iterdir())
    assert files == ["all.json", "all.log", "evidence.tar.gz", "gpu.txt"]  # at most 8 files come back
    assert all((out / f).stat().st_size < 16 * 2**20 for f in files)
    return ledger, members(out / "evidence.tar.gz")


def test_all_runs_every_part_that_fits_and_packs_them(stand_in):
    ledger, names = all_stage(stand_in, stand_in / "out-all", 3000, f"{SEEDS} --runs runs/all")
    parts = [p["part"] for p in ledger["parts"]]
    assert parts == ["data", "lr range test", f"seeds-{DEVICE} seed 0", f"seeds-{DEVICE} seed 1",
                     f"seeds-fast-{DEVICE} seed 0", "bench"]  # fmt: skip
    assert ledger["skipped"] == [] and ledger["device"] == DEVICE and 0 < ledger["budget_s"] <= 3000
    made = {f"results/{DEVICE}-24.json", f"results/seeds-{DEVICE}.json", f"results/seeds-fast-{DEVICE}.json",
            f"results/lr-range-{DEVICE}.json", f"results/benchmark-{DEVICE}.json"}  # fmt: skip
    drawn = ("accuracy", "loss_accuracy", "one_cycle", "lr_range", "gradcam_misclassified", "misclassified")
    figures = {f"figures/{f}-{DEVICE}-24.png" for f in drawn}
    assert made | figures <= names and set(ledger["files"]) == names
    run = json.loads((stand_in / "results" / f"{DEVICE}-24.json").read_text())
    assert run["status"] == "completed" and "final_test_accuracy_tta" in run and run["lr"]["rule"] == "plateau"
    table = json.loads((stand_in / "results" / f"seeds-{DEVICE}.json").read_text())
    assert [r["seed"] for r in table["per_seed"]] == [0, 1] and table["seeds_planned"] == 2
    assert {r["lr_max"] for r in table["per_seed"]} == {run["lr_max"]}  # both seeds from the one sweep
    fast = json.loads((stand_in / "results" / f"seeds-fast-{DEVICE}.json").read_text())
    assert fast["config"]["recipe"] == "cifar10-fast" and fast["per_seed"][0]["lr_max"] == 0.05
    bench = json.loads((stand_in / "results" / f"benchmark-{DEVICE}.json").read_text())
    assert "lr_range" not in bench  # the sweep's time is in lr-range-<device>.json
    assert [s["dtype"] for s in bench["steps"]] == ["float32", "bfloat16"]  # --only-dtypes, as on a GPU
    # seed 1 and the fast seed drew no Grad-CAM: only seed 0's run is the evidence
    runs = stand_in / "runs" / "all"
    assert (runs / "recipe" / "seed-0" / "gradcam_misclassified.png").exists()
    assert {p.parent for p in runs.glob("*/seed-*/gradcam*.png")} == {runs / "recipe" / "seed-0"}


def test_all_stops_between_parts_when_its_budget_is_spent(stand_in):
    # A budget of 1 s is gone before the sweep ends: the recipe's seed 0 (the point of the call)
    # still runs; every later part is left out, with its reason, and the evidence holds seed 0's.
    out = stand_in / "out-cut"
    ledger, names = all_stage(stand_in, out, 1, f"{SEEDS} --runs runs/cut")
    assert [p["part"] for p in ledger["parts"]] == ["data", "lr range test", f"seeds-{DEVICE} seed 0"]
    skipped = ledger["skipped"]
    assert [s["part"] for s in skipped] == [f"seeds-{DEVICE} seed 1", f"seeds-fast-{DEVICE} seed 0", "bench"]
    assert all(s["why"].startswith("-") and "s left, it takes about" in s["why"] for s in skipped)
    table = json.loads((stand_in / "results" / f"seeds-{DEVICE}.json").read_text())
    assert [r["seed"] for r in table["per_seed"]] == [0] and table["seeds_planned"] == 2
    assert f"results/{DEVICE}-24.json" in names and not any("seeds-fast" in n or "benchmark" in n for n in names)
    assert "seeds-fast-rehearsal-cpu seed 0: skipped" in (out / "all.log").read_text()


def test_lr_pairs_trains_each_pair_with_its_tenth_as_lr_min(stand_in):
    env_pairs = {"LR_PAIRS": "0.05 0.02"}
    done = session(stand_in, "lr-pairs", "1", out=stand_in / "out5", env=env_pairs)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    made = {f"results/lr-pairs-{lr}-rehearsal-cpu.json" for lr in ("0.05", "0.02")}
    assert members(stand_in / "out5" / "evidence-lr-pairs.tar.gz") == made
    for lr in (0.05, 0.02):
        table = json.loads((stand_in / "results" / f"lr-pairs-{lr}-rehearsal-cpu.json").read_text())
        assert table["summary"]["runs"] == 1
        assert table["per_seed"][0]["lr_max"] == lr and table["per_seed"][0]["lr_min"] == pytest.approx(lr / 10)


def test_an_unknown_stage_is_refused(stand_in):
    bad = session(stand_in, "train")
    assert bad.returncode == 2 and "unknown stage train" in bad.stderr
