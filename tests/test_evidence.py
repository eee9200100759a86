"""Tests for jaxcifar.evidence: a run brought into results/ and figures/, never overwriting."""

import json
import re
from pathlib import Path

import pytest

from jaxcifar import evidence


def test_collect_run_copies_evidence_and_never_overwrites(tmp_path, tiny_run):
    run, summary, _, _ = tiny_run
    out = evidence.collect(run, "tiny", "-cpu", root=tmp_path)
    saved = json.loads(out.read_text())
    assert (
        saved["status"] == "completed"
        and saved["epochs"]["test_accuracy"]
        == json.loads((run / "metrics.json").read_text())["epochs"]["test_accuracy"]
    )
    assert saved["final_test_accuracy"] == summary["final_test_accuracy"] and saved["config"]["width"] == 4
    assert saved["command"] and saved["versions"]["jax"]
    for name in ("accuracy", "loss_accuracy", "one_cycle", "gradcam_misclassified", "misclassified"):
        assert (tmp_path / "figures" / f"{name}-cpu.png").read_bytes() == (run / f"{name}.png").read_bytes()
    with pytest.raises(FileExistsError, match="Pass --force"):
        evidence.collect(run, "tiny", "-cpu", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="is .* a finished jaxcifar run"):
        evidence.collect(tmp_path, "none", root=tmp_path)


def write_ctrl_c(root, latency):
    (root / "results").mkdir(parents=True, exist_ok=True)
    record = {"stopped_at": [1, 6], "step_seconds": 4.1, "after_s": 30.0, "signal_to_exit_s": latency,
              "exit_code": 130, "command": "python scripts/ctrl_c_latency.py"}  # fmt: skip
    (root / "results" / "ctrl-c-cpu.json").write_text(json.dumps(record))


def test_readme_blocks_are_made_from_results_and_checked_against_them(tmp_path):
    write_ctrl_c(tmp_path, 5.25)
    text = "# x\n\nBefore.\n\n<!-- results: ctrl-c -->\nstale\n<!-- /results -->\n\nAfter 93.18%.\n"
    made = evidence.render_readme(text, tmp_path)
    assert "5.2 s after the signal" in made and "stale" not in made and made.endswith("After 93.18%.\n")
    assert evidence.readme_problems(made, tmp_path) == []
    write_ctrl_c(tmp_path, 9.0)  # the results changed: the README no longer agrees
    assert "block 'ctrl-c' differs from its results" in evidence.readme_problems(made, tmp_path)[0]
    # measured figures outside any block; a unit without a number is no figure
    stray = made + "\nIt reached 91.23% and 1,234 img/s (a bar shows loss, accuracy, images/s).\n"
    problems = evidence.readme_problems(evidence.render_readme(stray, tmp_path), tmp_path)
    assert len(problems) == 2 and "91.23%" in problems[0] and "1,234 img/s" in problems[1]
    readme = tmp_path / "README.md"
    readme.write_text(made)
    with pytest.raises(SystemExit) as exc:
        evidence.readme_main(["--check", "--readme", str(readme)])
    assert exc.value.code == 1
    evidence.readme_main(["--readme", str(readme)])
    assert "9.0 s after the signal" in readme.read_text()


def test_the_readme_agrees_with_the_committed_results():
    root = Path(__file__).resolve().parents[1]
    assert evidence.readme_problems((root / "README.md").read_text(), root) == []


def test_the_24_epoch_block_says_the_run_is_under_way_until_its_results_exist(tmp_path):
    assert "under way" in evidence.block_cpu24_epochs(tmp_path)
    (tmp_path / "results").mkdir()
    accuracies = [0.3141, 0.479, 0.4952]
    epochs = {"test_accuracy": accuracies, "seconds": [400.0, 410.0, 700.0], "eval_seconds": [40.0, 42.0, 45.0]}
    record = {"epochs": epochs, "command": "python -m jaxcifar.train --tta"}
    (tmp_path / "results" / "cpu-24.json").write_text(json.dumps(record))
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "accuracy-cpu-24.png").write_bytes(b"png")
    made = evidence.block_cpu24_epochs(tmp_path)
    assert "| 1 | 31.41 | 48.40 | 440 |" in made and "| 3 | 49.52 | 68.11 | 745 |" in made and "| 4 |" not in made
    assert "the median epoch took 452 s" in made
    assert "(figures/accuracy-cpu-24.png)" in made and "gradcam_grid-cpu-24" not in made  # only figures that exist


def test_an_investigation_run_gets_a_column_and_a_row_that_says_how_far_it_got(tmp_path):
    (tmp_path / "results").mkdir()
    epochs = {"test_accuracy": [0.3141, 0.479, 0.4952], "seconds": [400.0] * 3, "eval_seconds": [40.0] * 3}
    summary = {"train_seconds": 1200.0, "eval_seconds": 120.0, "best_train_accuracy": 0.5, "lr_min": 0.0078}
    recipe = {**summary, "epochs": epochs, "command": "c", "status": "completed", "final_test_accuracy": 0.4952}
    recipe |= {"best_test_accuracy": 0.4952, "lr_max": 0.078, "epochs_completed": 3, "config": {"epochs": 3}}
    (tmp_path / "results" / "cpu-24.json").write_text(json.dumps(recipe))
    name, label = evidence.CPU24_EXPERIMENTS[0]
    other = recipe | {"status": "interrupted", "epochs_completed": 2, "lr_max": 0.0444, "final_test_accuracy": 0.6}
    other["epochs"] = {"test_accuracy": [0.4812, 0.6]}
    (tmp_path / "results" / f"{name}.json").write_text(json.dumps(other))
    made = evidence.block_cpu24_epochs(tmp_path)
    assert f"jaxcifar with {label}" in made
    assert "| 1 | 31.41 | 48.12 | 48.40 | 440 |" in made and "| 3 | 49.52 |  | 68.11 | 440 |" in made
    rows = evidence.block_results(tmp_path)
    assert "stopped after epoch 2 of 3" in rows and "| 60.00% / 49.52% | 50.00% | 0.0444 / 0.0078 |" in rows


def test_every_file_the_readme_links_is_committed():
    root = Path(__file__).resolve().parents[1]
    linked = set(re.findall(r"\]\(((?:figures|results)/[^)]+)\)", (root / "README.md").read_text()))
    assert len(linked) >= 5  # the pattern finds the links
    assert sorted(p for p in linked if not (root / p).exists()) == []
