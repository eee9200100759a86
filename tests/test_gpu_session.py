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
    done = session(stand_in, "bench", rehearsal=False, out=stand_in / "out-guard")
    assert done.returncode == 1, done.stderr[-2000:]
    assert "JAX runs on cpu, not gpu" in done.stderr and "versions: python" in done.stdout
    assert not list((stand_in / "results").iterdir())  # nothing was measured or written


def test_lr_train_then_more_seeds_from_its_sweep(stand_in):
    done = session(stand_in, "lr-train", out=stand_in / "out1")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    device = "rehearsal-cpu"
    names = members(stand_in / "out1" / "evidence-lr-train.tar.gz")
    assert {f"results/{device}-24.json", f"results/seeds-{device}.json", "lr_range/lr_range.json"} <= names
    for figure in ("accuracy", "loss_accuracy", "one_cycle", "lr_range", "gradcam_misclassified", "misclassified"):
        assert f"figures/{figure}-{device}-24.png" in names, figure
    run = json.loads((stand_in / "results" / f"{device}-24.json").read_text())
    assert run["status"] == "completed" and "final_test_accuracy_tta" in run and run["lr"]["rule"] == "accuracy"
    table = json.loads((stand_in / "results" / f"seeds-{device}.json").read_text())
    assert table["summary"]["runs"] == 5 and [r["seed"] for r in table["per_seed"]] == [0, 1, 2, 3, 4]
    assert len({r["lr_max"] for r in table["per_seed"]}) == 1 and table["per_seed"][0]["lr_max"] == run["lr_max"]
    # seeds: the hand-off of lr-train's sweep
    done = session(stand_in, "seeds", "2", out=stand_in / "out2")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    more = json.loads((stand_in / "results" / f"seeds-more-{device}.json").read_text())
    assert [r["seed"] for r in more["per_seed"]] == [5, 6] and more["per_seed"][0]["lr_max"] == run["lr_max"]


def test_seeds_without_a_sweep_stop_at_once(tmp_path):
    work = tmp_path / "repo"
    work.mkdir()
    (work / "research").symlink_to(ROOT / "research")
    (work / "jaxcifar").symlink_to(ROOT / "jaxcifar")
    done = session(work, "seeds", "2")
    assert done.returncode == 2 and "no LR range test to reuse" in done.stderr


def test_seeds_fast_and_bench(stand_in):
    done = session(stand_in, "seeds-fast", "2", extra=f"{RUN_FLAGS} --lr-max 0.05", out=stand_in / "out3")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    table = json.loads((stand_in / "results" / "seeds-fast-rehearsal-cpu.json").read_text())
    assert table["summary"]["runs"] == 2 and table["config"]["recipe"] == "cifar10-fast"
    assert table["config"]["overrides"] == ["lr_max"]  # the tiny LR, recorded as changed from Page's 0.4
    assert "final_test_accuracy_tta_mean" in table["summary"]
    bench = "--batch-size 16 --width 4 --steps 1 --epoch-steps 2 --no-torch"
    done = session(stand_in, "bench", extra=bench, out=stand_in / "out4")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert members(stand_in / "out4" / "evidence-bench.tar.gz") == {"results/benchmark-rehearsal-cpu.json"}
    saved = json.loads((stand_in / "results" / "benchmark-rehearsal-cpu.json").read_text())
    assert saved["lr_range"]["iterations"] == 980 and saved["skipped"] == []


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
