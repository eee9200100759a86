"""research/png_queue.sh rehearsed tiny: the runs in order from a frozen worktree, the better rule's
seeds, and a second call that skips what finished and resumes what did not (as a later session does)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = "--n-train 320 --n-test 64 --width 4 --batch-size 64 --epochs 2 --peak-epoch 1 --no-gradcam"


def stand_in(where: Path) -> Path:
    """A git repository holding the product, the script and the PNG sweep, as the queue needs them."""
    repo = where / "repo"
    shutil.copytree(ROOT / "jaxcifar", repo / "jaxcifar", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "research").mkdir()
    shutil.copy(ROOT / "research" / "png_queue.sh", repo / "research")
    (repo / "results").mkdir()
    shutil.copy(ROOT / "results" / "lr-range-cpu-png.json", repo / "results")
    (repo / ".gitignore").write_text("runs/\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "stand-in"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    return repo


def queue(repo: Path) -> list[str]:
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "DATA": "synthetic",
        "EXTRA": TINY,
        "FAST_EXTRA": "--lr-max 0.05",
        "NICE": "0",
    }
    done = subprocess.run(
        ["bash", "research/png_queue.sh"], cwd=repo, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [line.split(" ", 1)[1] for line in done.stdout.splitlines() if line[:4].isdigit()]  # past the timestamp


def summary(repo: Path, name: str) -> dict:
    return json.loads((repo / "runs" / name / "summary.json").read_text())


def test_the_queue_runs_in_order_then_skips_what_finished_and_resumes_what_did_not(tmp_path):
    repo = stand_in(tmp_path)
    said = queue(repo)
    a, c = summary(repo, "cpu-24-png-plateau"), summary(repo, "cpu-24-png")
    better = "cpu-24-png-plateau" if a["final_test_accuracy"] >= c["final_test_accuracy"] else "cpu-24-png"
    order = ["cpu-24-png-plateau", "cpu-24-png-fast", "cpu-24-png", f"{better}-seed1", f"{better}-seed2"]
    assert said == [line for name in order for line in (f"{name}: start", f"{name}: exit 0")] + ["queue done"]
    # The frozen code ran, with the sweep's pairs, the recipe and the seeds asked for.
    commit = (repo / "runs" / "code.commit").read_text().strip()
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert commit == head.strip() and (repo / "runs" / "code" / "jaxcifar" / "train.py").exists()
    sweep = json.loads((repo / "results" / "lr-range-cpu-png.json").read_text())["suggestions"]
    assert a["lr_max"] == sweep["plateau"] and c["lr_max"] == sweep["accuracy"]
    assert summary(repo, "cpu-24-png-fast")["lr_max"] == 0.05
    seeds = [summary(repo, f"{better}-seed{s}") for s in (1, 2)]
    assert [s["seed"] for s in seeds] == [1, 2] and {s["lr_max"] for s in seeds} == {summary(repo, better)["lr_max"]}
    assert all("final_test_accuracy_tta" in s for s in (a, c, *seeds))
    config = json.loads((repo / "runs" / f"{better}-seed2" / "config.json").read_text())
    assert config["command"].startswith("python -m jaxcifar.train --data synthetic --tta")

    # A session ends while the last run writes its summary: the next call resumes that run alone.
    last = repo / "runs" / f"{better}-seed2"
    before = summary(repo, f"{better}-seed2")
    (last / "summary.json").unlink()
    said = queue(repo)
    assert said == [f"{name}: finished, skipped" for name in order[:-1]] + [
        f"{order[-1]}: --resume", f"{order[-1]}: exit 0", "queue done"
    ]  # fmt: skip
    after = summary(repo, f"{better}-seed2")
    assert after["status"] == "completed" and after["final_test_accuracy"] == before["final_test_accuracy"]
