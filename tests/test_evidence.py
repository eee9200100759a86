"""Tests for research.readme_tables: a run brought into results/ and figures/, never overwriting."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from research import collect_run, conv_layers, cpu24_runs, readme_tables


def test_collect_run_copies_evidence_and_never_overwrites(tmp_path, tiny_run):
    run, summary, _, _ = tiny_run
    out = collect_run.collect(run, "tiny", "-cpu", root=tmp_path)
    saved = json.loads(out.read_text())
    assert (
        saved["status"] == "completed"
        and saved["epochs"]["test_accuracy"]
        == json.loads((run / "metrics.json").read_text())["epochs"]["test_accuracy"]
    )
    assert saved["final_test_accuracy"] == summary["final_test_accuracy"] and saved["config"]["width"] == 4
    assert saved["command"] and saved["versions"]["jax"]
    assert saved["started_with"] == json.loads((run / "config.json").read_text())["command"]  # not a resume's
    for name in ("accuracy", "loss_accuracy", "one_cycle", "gradcam_misclassified", "misclassified"):
        assert (tmp_path / "figures" / f"{name}-cpu.png").read_bytes() == (run / f"{name}.png").read_bytes()
    with pytest.raises(FileExistsError, match="Pass --force"):
        collect_run.collect(run, "tiny", "-cpu", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="is .* a finished jaxcifar run"):
        collect_run.collect(tmp_path, "none", root=tmp_path)
    assert "data_file" not in saved  # synthetic data: no file to name


def test_a_result_names_the_file_its_images_came_from(tmp_path):
    archive = tmp_path / "cifar10-png.tar.gz"
    archive.write_bytes(b"abc")
    expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # FIPS 180-2's test vector
    found = collect_run.data_file("cifar10-png.tar.gz", tmp_path)
    assert found == {"file": "cifar10-png.tar.gz", "bytes": 3, "sha256": expected}
    assert collect_run.data_file("synthetic", tmp_path) is None and collect_run.data_file(None) is None
    assert collect_run.data_file(str(tmp_path)) is None  # an extracted folder: its files are not hashed
    # A known archive gets the name every number is reported under (the digest is looked up, not the file name).
    monkey = dict(collect_run.KNOWN_DATA)
    try:
        collect_run.KNOWN_DATA[expected] = "official CIFAR-10 (lossless PNG)"
        assert collect_run.data_file("cifar10-png.tar.gz", tmp_path)["label"] == "official CIFAR-10 (lossless PNG)"
    finally:
        collect_run.KNOWN_DATA.clear()
        collect_run.KNOWN_DATA.update(monkey)


def test_a_run_that_did_not_record_its_cpu_is_given_its_machine(tmp_path, tiny_run):
    run = tiny_run[0]
    out = collect_run.collect(run, "tiny", root=tmp_path, machine="2-core AMD EPYC (AVX2, no AVX-512)")
    host = json.loads(out.read_text())["host"]
    assert host["described"] == "2-core AMD EPYC (AVX2, no AVX-512)" and host["cpu_count"] >= 1


def write_ctrl_c(root, latency):
    (root / "results").mkdir(parents=True, exist_ok=True)
    record = {"stopped_at": [1, 6], "step_seconds": 4.1, "after_s": 30.0, "signal_to_exit_s": latency,
              "exit_code": 130, "command": "python -m research.ctrl_c_latency"}  # fmt: skip
    (root / "results" / "ctrl-c-cpu.json").write_text(json.dumps(record))


def test_docs_blocks_are_made_from_results_and_checked_against_them(tmp_path):
    write_ctrl_c(tmp_path, 5.25)
    text = "# x\n\nBefore.\n\n<!-- results: ctrl-c -->\nstale\n<!-- /results -->\n\nAfter 93.18%.\n"
    made = readme_tables.render_readme(text, tmp_path)
    assert "5.2 s after the signal" in made and "stale" not in made and made.endswith("After 93.18%.\n")
    assert readme_tables.readme_problems(made, tmp_path) == []
    write_ctrl_c(tmp_path, 9.0)  # the results changed: the README no longer agrees
    assert "block 'ctrl-c' differs from its results" in readme_tables.readme_problems(made, tmp_path)[0]
    # measured figures outside any block; a unit without a number is no figure
    stray = made + "\nIt reached 91.23% and 1,234 img/s (a bar shows loss, accuracy, images/s).\n"
    problems = readme_tables.readme_problems(readme_tables.render_readme(stray, tmp_path), tmp_path)
    assert len(problems) == 2 and "91.23%" in problems[0] and "1,234 img/s" in problems[1]
    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir()
    page.write_text(made)
    (tmp_path / "README.md").write_text("# x\n\nIt reached 91.23%.\n")  # written by hand: tests/test_readme.py
    with pytest.raises(SystemExit) as exc:
        readme_tables.main(["--check", "--root", str(tmp_path)])
    assert exc.value.code == 1
    readme_tables.main(["--root", str(tmp_path)])
    assert "9.0 s after the signal" in page.read_text()
    assert readme_tables.main(["--check", "--root", str(tmp_path)]) == []
    assert (tmp_path / "README.md").read_text() == "# x\n\nIt reached 91.23%.\n"  # not touched


def test_a_block_in_docs_links_up_to_results_and_broken_links_are_found(tmp_path):
    write_ctrl_c(tmp_path, 5.25)
    (tmp_path / "README.md").write_text("# x\n\nSee [the details](docs/speed.md).\n")
    docs = tmp_path / "docs"
    docs.mkdir()
    page = docs / "speed.md"
    page.write_text("# Speed\n\n<!-- results: ctrl-c -->\n<!-- /results -->\n")
    readme_tables.main(["--root", str(tmp_path)])
    made = page.read_text()
    assert "(../results/ctrl-c-cpu.json)" in made and "](results/" not in made
    assert readme_tables.main(["--check", "--root", str(tmp_path)]) == []
    page.write_text(made + "\n![a figure](../figures/none.png) and [back](../README.md)\n")
    with pytest.raises(SystemExit) as exc:
        readme_tables.main(["--check", "--root", str(tmp_path)])
    assert exc.value.code == 1
    problems = readme_tables.readme_problems(page.read_text(), tmp_path, page)
    assert problems == ["link '../figures/none.png' points at nothing"]


def test_the_readme_and_docs_agree_with_the_committed_results():
    root = Path(__file__).resolve().parents[1]
    for path in readme_tables.documents(root):
        assert readme_tables.readme_problems(path.read_text(), root, path) == [], path


def test_the_24_epoch_block_says_the_run_is_under_way_until_its_results_exist(tmp_path):
    assert "under way" in readme_tables.block_cpu24_epochs(tmp_path)
    (tmp_path / "results").mkdir()
    accuracies = [0.3141, 0.479, 0.4952]
    epochs = {"test_accuracy": accuracies, "seconds": [400.0, 410.0, 700.0], "eval_seconds": [40.0, 42.0, 45.0]}
    record = {"epochs": epochs, "command": "python -m jaxcifar.train --tta"}
    (tmp_path / "results" / "cpu-24.json").write_text(json.dumps(record))
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "accuracy-cpu-24.png").write_bytes(b"png")
    made = readme_tables.block_cpu24_epochs(tmp_path)
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
    name, label, _ = cpu24_runs.CPU24_EXPERIMENTS[0]
    other = recipe | {"status": "interrupted", "epochs_completed": 2, "lr_max": 0.0444, "final_test_accuracy": 0.6}
    other["epochs"] = {"test_accuracy": [0.4812, 0.6]}
    (tmp_path / "results" / f"{name}.json").write_text(json.dumps(other))
    made = readme_tables.block_cpu24_epochs(tmp_path)
    assert f"jaxcifar with {label}" in made
    assert "| 1 | 31.41 | 48.12 | 48.40 | 440 |" in made and "| 3 | 49.52 |  | 68.11 | 440 |" in made
    rows = readme_tables.block_results(tmp_path)
    assert "stopped after epoch 2 of 3" in rows and "| 60.00% / 49.52% | 50.00% | 0.0444 / 0.0078 |" in rows


def test_the_time_block_takes_each_runs_median_epoch_and_judges_todays_kernels_by_the_goal(tmp_path):
    assert readme_tables.block_cpu24_time(tmp_path) == "No 24-epoch CPU run is committed yet.\n"
    (tmp_path / "results").mkdir()

    def write(name, seconds, eval_seconds, conv, batch_norm):
        epochs = {"seconds": seconds, "eval_seconds": eval_seconds, "test_accuracy": [0.5] * len(seconds)}
        run = {"epochs": epochs, "config": {"epochs": 24, "batch_size": 512}, "status": "completed", "platform": "cpu"}
        run |= {"steps_per_epoch": 97}
        run |= {"conv": conv, "batch_norm": batch_norm}
        (tmp_path / "results" / f"{name}.json").write_text(json.dumps(run))

    write("cpu-24", [400.0, 410.0, 900.0], [40.0, 42.0, 80.0], "xla", "flax")  # medians 410 and 42
    name, label, _ = cpu24_runs.CPU24_EXPERIMENTS[0]
    write(name, [360.0, 367.0, 380.0, 700.0], [46.0, 43.0, 44.0, 60.0], "winograd", "matvec")  # 373.5, 45
    made = readme_tables.block_cpu24_time(tmp_path)
    assert "| the recipe ([results/cpu-24.json](results/cpu-24.json)) | XLA, Flax's | 410 | 121.1 | 42 | 3.01 |" in made
    # 24 * (373.5 + 45) / 3600 = 2.79 h, 13 minutes under 3; the recipe's kernels are not today's: no sentence for it
    short = readme_tables._short(label)
    assert f"| {short} ([results/{name}.json](results/{name}.json)) | Winograd, matrix-vector |" in made
    assert "| 374 | 133.0 | 45 | 2.79 |" in made  # 97 * 512 / 373.5 images/s
    assert made.count("With today's CPU defaults") == 1
    assert f"the run with {short} makes 24 epochs 2.79 hours: 13 minutes under the goal of 3.\n" in made
    write(name, [420.0], [50.0], "winograd", "matvec")  # 24 * 470 / 3600 = 3.13 h
    assert "makes 24 epochs 3.13 hours: 8 minutes over the goal of 3." in readme_tables.block_cpu24_time(tmp_path)
    write(name, [401.7], [48.2], "winograd", "matvec")  # 24 * 449.9 s = 10,797.6 s
    assert "makes 24 epochs 3.00 hours: within a minute of the goal of 3." in readme_tables.block_cpu24_time(tmp_path)


def test_a_variants_run_across_revisions_gets_its_own_table_and_link(tmp_path):
    (tmp_path / "results").mkdir()
    what = "jaxcifar: Winograd, as at commit 6895e0d of 2026-11-24"
    rows = [{"what": "jaxcifar", "images_per_s": 128.1, "vs_default": 1.0}]
    rows.append({"what": what, "images_per_s": 64.1, "vs_default": 64.1 / 128.1})
    record = {"rows": rows, "batch_size": 512, "rounds": 2, "steps": 3, "command": "python -m research.cpu_variants"}
    (tmp_path / "results" / "cpu-step-revisions.json").write_text(json.dumps(record))
    text = "<!-- results: cpu-step-revisions -->\n<!-- /results -->\n"
    made = readme_tables.render_readme(text, tmp_path)
    assert f"| {what} | 64.1 | 0.50x |" in made and "(results/cpu-step-revisions.json)" in made


def test_the_cifar10_fast_run_brings_pages_logged_run_into_the_table(tmp_path):
    (tmp_path / "results").mkdir()
    epochs = {"test_accuracy": [0.3141, 0.479], "seconds": [400.0] * 2, "eval_seconds": [40.0] * 2}
    (tmp_path / "results" / "cpu-24.json").write_text(json.dumps({"epochs": epochs, "command": "c"}))
    assert "Page" not in readme_tables.block_cpu24_epochs(tmp_path)  # no cifar10-fast run yet
    name = next(n for n, _, kind in cpu24_runs.CPU24_EXPERIMENTS if kind == "page")
    (tmp_path / "results" / f"{name}.json").write_text(json.dumps({"epochs": {"test_accuracy": [0.568]}}))
    made = readme_tables.block_cpu24_epochs(tmp_path)
    assert "| test accuracy %, the PyTorch original | test accuracy %, Page's logged cifar10-fast run" in made
    # epoch, recipe, cifar10-fast, original, Page's log (logs.tsv: 34.69, 74.55), seconds
    assert "| 1 | 31.41 | 56.80 | 48.40 | 34.69 | 440 |" in made and "| 2 | 47.90 |  | 59.78 | 74.55 | 440 |" in made


def test_every_file_the_readme_links_is_committed():
    root = Path(__file__).resolve().parents[1]
    linked = set(re.findall(r"\]\(((?:figures|results)/[^)]+)\)", (root / "README.md").read_text()))
    assert len(linked) >= 5  # the pattern finds the links
    assert sorted(p for p in linked if not (root / p).exists()) == []


def write_sweep_and_recipe(root, lr_max, test_accuracy, train_loss):
    """A 4-LR sweep whose accuracy plateau spans 0.01-0.1, and the recipe's run."""
    (root / "results").mkdir()
    accuracy = [0.2, 0.67, 0.7, 0.68]
    sweep = {"records": {"lr": [0.001, 0.01, 0.05, 0.1], "loss": [2.0] * 4, "smoothed_loss": [2.0] * 4,
                         "accuracy": accuracy, "smoothed_accuracy": accuracy}}  # fmt: skip
    (root / "results" / "lr-range-cpu-full.json").write_text(json.dumps(sweep))
    epochs = {"test_accuracy": test_accuracy, "train_loss": train_loss}
    (root / "results" / "cpu-24.json").write_text(json.dumps({"lr_max": lr_max, "epochs": epochs}))


def test_the_why_block_compares_the_investigation_with_the_recipe_and_the_original(tmp_path):
    test_acc = [0.30, 0.50] + [0.70, 0.74] * 9 + [0.8] * 4  # 24 epochs, swinging by 4 points in 6-19
    write_sweep_and_recipe(tmp_path, 0.0781, test_acc, [2.73] + [1.0] * 23)
    made = readme_tables.block_cpu24_why(tmp_path)
    assert "within 5% of its peak (70.00%) from LR 0.01 to 0.1, a factor of 10" in made
    assert "the `plateau` rule takes its geometric middle, 0.0316" in made  # sqrt(0.01 * 0.1)
    assert "loss over epoch 1 was 2.73, above the 2.30 (ln 10)" in made
    assert "moved by 4.00 points" in made and "the original's by 1.90" in made  # |diff| of 48.4.. over 6-19
    assert "With" not in made  # no investigation run yet
    name, label, _ = cpu24_runs.CPU24_EXPERIMENTS[0]
    other = {
        "status": "interrupted",
        "command": "c",
        "epochs": {"test_accuracy": [0.47, 0.60], "train_loss": [1.7, 1.2]},
    }
    (tmp_path / "results" / f"{name}.json").write_text(json.dumps(other))
    made = readme_tables.block_cpu24_why(tmp_path)
    assert f"With {label}" in made and "stopped after epoch 2" in made
    assert (
        "reached 47.00% after epoch 1 (the recipe's run 30.00%, the original 48.40%; mean training loss 1.70)" in made
    )
    assert "60.00% after epoch 2 (the recipe's run 50.00%, the original 59.78%)" in made
    # mean of (0.47-0.30, 0.60-0.50) and of (0.47-0.484, 0.60-0.5978)
    assert "stands +13.50 points from the recipe's run and -0.59 from the original" in made


def test_the_why_block_says_what_the_numbers_say_when_they_say_otherwise(tmp_path):
    write_sweep_and_recipe(tmp_path, 0.3, [0.5] * 24, [2.0] + [1.0] * 23)
    made = readme_tables.block_cpu24_why(tmp_path)
    assert "0.3 and the original's 0.0444 only one of them lies on that plateau" in made
    assert "loss over epoch 1 was 2.00, below the 2.30 (ln 10)" in made and "moved by 0.00 points" in made


def test_a_finished_investigation_run_gets_its_swing_and_the_bar(tmp_path):
    write_sweep_and_recipe(tmp_path, 0.0781, [0.5] * 24, [2.0] + [1.0] * 23)
    name, _, _ = cpu24_runs.CPU24_EXPERIMENTS[0]
    test_acc = [0.6] * 5 + [0.80, 0.81] * 7 + [0.85, 0.88, 0.89, 0.90, 0.9051]  # 6-19 swing by 1 point
    other = {"status": "completed", "command": "c --resume", "started_with": "c --lr-max 0.0444"}
    other["final_test_accuracy_tta"] = 0.9123
    other["epochs"] = {"test_accuracy": test_acc, "train_loss": [1.7] + [1.0] * 23}
    (tmp_path / "results" / f"{name}.json").write_text(json.dumps(other))
    made = readme_tables.block_cpu24_why(tmp_path)
    assert "the run reached 60.00% after epoch 1" in made and "stopped" not in made
    assert "`c --lr-max 0.0444`" in made and "--resume" not in made  # the command that started it
    assert "moved by 1.00 points an epoch on average" in made
    assert "Its final test accuracy, 90.51% (flip TTA 91.23%), clears the 90.00% bar." in made
    other["epochs"]["test_accuracy"][-1] = 0.8999
    other["status"] = "interrupted"
    (tmp_path / "results" / f"{name}.json").write_text(json.dumps(other))
    made = readme_tables.block_cpu24_why(tmp_path)
    assert "stopped after epoch 24" in made and "bar" not in made
    other["status"] = "completed"
    (tmp_path / "results" / f"{name}.json").write_text(json.dumps(other))
    assert "Its final test accuracy, 89.99% (flip TTA 91.23%), falls short of the 90.00% bar." in (
        readme_tables.block_cpu24_why(tmp_path)
    )
    other["epochs"]["test_accuracy"] = test_acc[:18]
    (tmp_path / "results" / f"{name}.json").write_text(json.dumps(other))
    assert "points an epoch" not in readme_tables.block_cpu24_why(tmp_path)  # epochs 6-19 not all there yet


def test_a_run_with_other_convolutions_or_batch_norm_than_the_recipes_says_so(tmp_path):
    write_sweep_and_recipe(tmp_path, 0.0781, [0.5] * 24, [2.0] + [1.0] * 23)  # no config: before --conv
    name, _, _ = cpu24_runs.CPU24_EXPERIMENTS[0]
    run = {"status": "interrupted", "command": "c", "epochs": {"test_accuracy": [0.5], "train_loss": [1.0]}}
    run |= {"platform": "cpu", "config": {"conv": None, "width": 64}}  # before --batch-norm: Flax's
    (tmp_path / "results" / f"{name}.json").write_text(json.dumps(run))
    kinds = [readme_tables.run_kernels(r) for r in (run, {**run, "platform": "gpu"}, {**run, "conv": "xla"}, {})]
    assert [(k["conv"], k["batch_norm"]) for k in kinds] == [
        ("winograd", "flax"), ("xla", "flax"), ("xla", "flax"), ("xla", "flax")
    ]  # fmt: skip
    made = readme_tables.block_cpu24_why(tmp_path)
    assert "the same data and code, but Winograd's convolutions, the recipe's run XLA's; [results/" in made
    run["config"]["batch_norm"] = None  # today's default on CPU at width 64: the matrix-vector sums
    assert readme_tables.run_kernels(run)["batch_norm"] == "matvec"
    assert readme_tables.run_kernels({**run, "platform": "gpu"})["batch_norm"] == "flax"
    (tmp_path / "results" / f"{name}.json").write_text(json.dumps(run))
    assert (
        "the same data and code, but Winograd's convolutions and matrix-vector BatchNorm sums, the recipe's run "
        "XLA's and Flax's; [results/"
    ) in readme_tables.block_cpu24_why(tmp_path)
    (tmp_path / "results" / f"{name}.json").write_text(json.dumps({**run, "conv": "xla"}))  # the summary says
    assert "code, but matrix-vector BatchNorm sums, the recipe's run Flax's; [results/" in (
        readme_tables.block_cpu24_why(tmp_path)
    )
    run["config"]["width"] = 16  # XLA's and Flax's below width 32, as the recipe's
    (tmp_path / "results" / f"{name}.json").write_text(json.dumps(run))
    assert "the same data and code; [results/" in readme_tables.block_cpu24_why(tmp_path)


def test_a_run_on_top_of_another_experiment_is_compared_with_it_too(tmp_path):
    write_sweep_and_recipe(tmp_path, 0.0781, [0.5] * 24, [2.0] + [1.0] * 23)
    name, base = next(iter(cpu24_runs.CPU24_BASES.items()))
    label = next(lab for n, lab, _ in cpu24_runs.CPU24_EXPERIMENTS if n == name)

    def write(run_name, test_acc):
        run = {"status": "interrupted", "command": "c", "epochs": {"test_accuracy": test_acc, "train_loss": [1.0]}}
        (tmp_path / "results" / f"{run_name}.json").write_text(json.dumps(run))

    write(name, [0.50, 0.62, 0.71])
    assert "Against" not in readme_tables.block_cpu24_why(tmp_path)  # its base is not committed yet
    write(base, [0.47, 0.60])  # stopped earlier: compared over the epochs both have
    made = readme_tables.block_cpu24_why(tmp_path)
    assert f"With {label}" in made
    assert "Against the run with the original's LR pair 0.0444 / 0.00444 alone, it stands +2.00 points after " in made
    assert "epoch 2 and +2.50 on average." in made  # mean of 0.03 and 0.02


def test_the_cifar10_fast_run_is_compared_with_pages_median_not_the_original(tmp_path):
    write_sweep_and_recipe(tmp_path, 0.0781, [0.5] * 24, [2.0] + [1.0] * 23)
    (name, label) = next((n, lab) for n, lab, kind in cpu24_runs.CPU24_EXPERIMENTS if kind == "page")
    run = {"status": "interrupted", "command": "c --resume", "started_with": "c --recipe cifar10-fast"}
    run["epochs"] = {"test_accuracy": [0.55, 0.7], "train_loss": [1.6, 1.1]}
    (tmp_path / "results" / f"{name}.json").write_text(json.dumps(run))
    made = readme_tables.block_cpu24_why(tmp_path)
    assert f"With {label}: Nesterov" in made and "`c --recipe cifar10-fast`" in made
    # Page's logged run: 34.69% and 74.55% after epochs 1 and 2; mean of (55 - 34.69, 70 - 74.55)
    assert "the run, stopped after epoch 2, reached 70.00% after epoch 2, where the one run Page logged" in made
    assert "stood at 74.55%; over epochs 1-2 it stands +7.88 points from that run on average.\n" in made
    assert "nothing else changed" not in made and "median" not in made
    run |= {"status": "completed", "final_test_accuracy_tta": 0.9345}
    run["epochs"]["test_accuracy"] = [0.55] * 23 + [0.9301]
    (tmp_path / "results" / f"{name}.json").write_text(json.dumps(run))
    made = readme_tables.block_cpu24_why(tmp_path)
    assert "the run reached 93.01% after epoch 24 (flip TTA 93.45%), where the one run Page logged" in made
    # Page's epochs 6-23 sum to 1547.14: (18 * 55 - 1547.14 + 93.01 - 94.08) / 19 = -29.38
    assert "stood at 94.08%; over epochs 1-24 it stands -25.73 points from that run on average, and -29.38 " in made
    assert "Page's 50 runs reached a median of 94.08%: -1.07 points" in made  # 93.01 - 94.08


def test_the_runs_figure_holds_the_recipe_each_investigation_and_the_original(tmp_path):
    assert readme_tables.figure_cpu24_runs(tmp_path) is None  # nothing before the recipe's run
    write_sweep_and_recipe(tmp_path, 0.0781, [0.5] * 24, [2.0] + [1.0] * 23)
    name, _, _ = cpu24_runs.CPU24_EXPERIMENTS[0]
    run = {"status": "interrupted", "command": "c", "epochs": {"test_accuracy": [0.47, 0.6], "train_loss": [1, 1]}}
    (tmp_path / "results" / f"{name}.json").write_text(json.dumps(run))
    assert "figures/cpu-24-runs.png" not in readme_tables.block_cpu24_why(tmp_path)  # not drawn yet
    path = readme_tables.figure_cpu24_runs(tmp_path)
    assert path == tmp_path / "figures" / "cpu-24-runs.png" and path.stat().st_size > 5_000
    assert "![test accuracy per epoch of each 24-epoch run](figures/cpu-24-runs.png)" in (
        readme_tables.block_cpu24_why(tmp_path)
    )


def test_the_convolution_block_sums_the_parts_and_gives_their_share_of_the_step(tmp_path):
    def row(part, jax_ms, torch_ms, difference=1e-6):
        return {"layer": "layer1", "shape": [32, 64, 128], "part": part, "jax_ms": jax_ms, "jax_nchw_ms": 2 * jax_ms,
                "jax_winograd_ms": jax_ms / 2, "torch_ms": torch_ms, "jax_vs_torch": jax_ms / torch_ms,
                "winograd_vs_torch": jax_ms / 2 / torch_ms, "relative_difference": difference,
                "winograd_difference": 10 * difference}  # fmt: skip

    rows = [row("forward", 440.0, 400.0), row("input_grad", 200.0, 250.0, 3e-6), row("kernel_grad", 560.0, 350.0)]
    rows[1]["jax_taps_ms"], rows[2]["jax_taps_ms"] = 300.0, 700.0
    (tmp_path / "results").mkdir()
    record = {"batch_size": 512, "rows": rows, "totals": conv_layers.totals(rows), "command": "python c.py"}
    record["step"] = {"jax_ms": 1000.0, "jax_xla_ms": 1500.0, "torch_channels_last_ms": 1100.0,
                      "convolutions_share": 1200.0 / 1500.0}  # fmt: skip
    (tmp_path / "results" / "conv-layers-cpu.json").write_text(json.dumps(record))
    made = readme_tables.block_conv_layers(tmp_path)
    assert "| layer1 (32x32, 64 -> 128) | forward | 440 | 880 |  | 220 | 400 | 1.10x | 0.55x |" in made
    assert "| layer1 (32x32, 64 -> 128) | kernel gradient | 560 | 1120 | 700 | 280 | 350 | 1.60x | 0.80x |" in made
    assert "| layer1 (32x32, 64 -> 128) | input gradient | 200 | 400 | 300 | 100 | 250 | 0.80x | 0.40x |" in made
    # 440 + 200 + 560 against 400 + 250 + 350; the forward pass has no nine-matmul form here
    assert "| **all 8**, every part |  | 1200 | 2400 |  | 600 | 1000 | 1.20x | 0.60x |" in made
    assert "| **all 8**, kernel gradient |  | 560 | 1120 | 700 | 280 | 350 | 1.60x | 0.80x |" in made
    assert "XLA's convolutions take 1200 ms of the 1500 ms training step that uses them (80%)" in made
    assert "jaxcifar's step as it ships (the variants table's first row) took 1000 ms" in made
    assert "PyTorch's channels-last step 1100 ms" in made and "largest difference 3.0e-06" in made
    assert "Winograd's came within 3.0e-05 of XLA's" in made
    assert (
        "Outside the convolutions, the step with XLA's (otherwise as it ships) spends 300 ms, PyTorch's 100 ms." in made
    )


def test_the_jpeg_block_gives_each_variants_psnr_accuracy_and_change(tmp_path):
    def variant(spec, quality, shift, psnr, finals):
        return {"variant": spec, "quality": quality, "shift": shift, "test_psnr_db": psnr,
                "train_psnr_db": psnr and psnr + 0.25, "runs": [{"final_test_accuracy": f} for f in finals],
                "final_test_accuracy_mean": sum(finals) / 2,
                "final_test_accuracy_std": abs(finals[0] - finals[1]) / 2**0.5}  # fmt: skip

    record = {
        "config": {"recipe": "cifar10-fast", "width": 16, "epochs": 24, "batch_size": 512},
        "seeds": 2,
        "seconds": 5400.0,
        "command": "python -m research.jpeg_quality --width 16",
        "variants": [
            variant("none", None, None, None, [0.90, 0.91]),
            variant("75@4", 75, 4, 31.7, [0.89, 0.89]),
            variant("50", 50, 0, 28.4, [0.87, 0.88]),
        ],  # fmt: skip
    }

    def network(run, width, accuracies):
        specs = [("none", None, None, None), ("75@4", 75, 4, 31.66)]
        variants = [{"variant": v, "quality": q, "shift": s, "test_psnr_db": p, "test_accuracy": a}
                    for (v, q, s, p), a in zip(specs, accuracies)]  # fmt: skip
        return {"run": run, "config": {"recipe": "cifar10-fast", "width": width}, "variants": variants}

    trained = {
        "command": "python -m research.jpeg_quality --trained runs/fast runs/narrow",
        "networks": [network("runs/fast", 64, [0.91, 0.8968]), network("runs/narrow", 16, [0.876, 0.8555])],
    }
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / f"{readme_tables.JPEG_STUDY}.json").write_text(json.dumps(record))
    (tmp_path / "results" / f"{readme_tables.JPEG_TRAINED}.json").write_text(json.dumps(trained))
    made = readme_tables.block_jpeg_quality(tmp_path)
    assert "| `none`: the copy as it is |  | 90.50% +- 0.71 |  |" in made
    # 89.00 - 90.50 and 87.50 - 90.50 points
    assert (
        "| `75@4`: once more at quality 75, block grid shifted by 4 px | 31.7 / 31.9 | 89.00% +- 0.00 | -1.50 |" in made
    )
    assert "| `50`: once more at quality 50, on the copy's block grid | 28.4 / 28.6 | 87.50% +- 0.71 | -3.00 |" in made
    assert "width 16, 24 epochs, batch 512, 2 seeds per row, 1.50 h on the 2-core CPU" in made
    assert "| test images | PSNR to the copy (dB) | `runs/fast` (`cifar10-fast`, width 64) | `runs/narrow` (" in made
    assert "| `none`: the copy as it is |  | 91.00% | 87.60% |" in made
    # 89.68 - 91.00 and 85.55 - 87.60 points
    assert (
        "| `75@4`: once more at quality 75, block grid shifted by 4 px | 31.7 | 89.68% (-1.32) | 85.55% (-2.05) |"
        in made
    )
    # the networks were not tested on quality 50
    assert made.endswith(
        "Side by side: `75@4` -1.50 points trained and tested on (width 16), tested on alone -1.32 at width 64 and "
        "-2.05 at width 16; `50` -3.00 points trained and tested on (width 16), not tested on alone.\n"
    )


def test_the_png_sweep_block_puts_every_rules_picks_beside_the_jpeg_sweeps(tmp_path):
    # The committed JPEG sweep, and a stand-in "PNG" sweep: the same curves at twice the LR,
    # so every rule must pick the LR twice as high (each rule picks a point of the curve).
    jpeg = json.loads((Path(__file__).resolve().parents[1] / "results" / "lr-range-cpu-full.json").read_text())
    png = json.loads(json.dumps(jpeg))
    png["records"]["lr"] = [2 * lr for lr in jpeg["records"]["lr"]]
    png["settings"]["data"] = "image folder ../shared/data/cifar10-png.tar.gz"
    png["command"], png["seconds"] = "python -m jaxcifar.lr_range --data ../shared/data/cifar10-png.tar.gz", 3600.0
    png["data_file"] = {"file": "cifar10-png.tar.gz", "bytes": 134_623_143, "sha256": "81e53ff6ac7f" + "0" * 52}
    (tmp_path / "results").mkdir()
    for name, sweep in (("lr-range-cpu-full", jpeg), ("lr-range-cpu-png", png)):
        (tmp_path / "results" / f"{name}.json").write_text(json.dumps(sweep))
    made = readme_tables.block_lr_range_png(tmp_path)
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in made.splitlines()[2:8]}
    assert list(rows) == ["`accuracy`", "`accuracy-raw`", "`steepest`", "`min-loss`", "`valley`", "`plateau` (default)"]
    assert rows["`accuracy`"][:2] == ["0.156", "0.0781"]  # the JPEG sweep's own pick: 0.0781
    for png_max, jpeg_max, *mins in rows.values():
        assert float(png_max) == pytest.approx(2 * float(jpeg_max), rel=1e-2)  # both printed to 3 digits
        for both in mins:
            if "cannot decide" not in both:
                a, b = (float(x) for x in both.split(" / "))
                assert a == pytest.approx(2 * b, rel=1e-2)
    assert "980 and 980 iterations, 50,000 images, batch 512, width 64, seed 0; 1.00 h and 2.46 h" in made
    assert "PNG: cifar10-png.tar.gz (sha256 81e53ff6ac7f...) ([results/" in made and "JPEG: cifar10-jpeg.tar.gz" in made


def test_the_readme_is_a_product_page_and_the_details_live_in_docs():
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    assert len(readme.encode()) <= 12 * 1024  # the first screen a user reads, not the lab book
    for heading in ("## Headline", "## Set-up", "## Usage", "## Layout"):
        assert heading in readme, heading
    linked = set(re.findall(r"\]\((docs/[a-z_]+\.md)\)", readme))
    assert linked == {f"docs/{p.name}" for p in (root / "docs").glob("*.md")}  # every page is reachable


def test_the_data_load_is_timed_twice_and_the_block_says_both(tmp_path):
    from PIL import Image

    from research import data_load

    folder = tmp_path / "images"
    rng = np.random.default_rng(0)
    classes = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    for split, n in (("train", 3), ("test", 2)):
        for c in classes:
            (folder / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / split / c / f"{i}.png")
    out = tmp_path / "results" / "data-load-cpu-png.json"
    result = data_load.main(["--data", str(folder), "--out", str(out)])
    assert (result["train_images"], result["test_images"]) == (30, 20) and result["data_file"] is None
    assert result["first_load_s"] > 0 and result["cached_load_s"] > 0 and result["cache_bytes"] > 50 * 32 * 32 * 3
    saved = json.loads(out.read_text())
    saved.update(data_file={"file": "cifar10-png.tar.gz", "bytes": 134_623_143, "sha256": "81e53ff6ac7f" + "0" * 52})
    saved.update(first_load_s=41.26, cached_load_s=0.534, cache_bytes=184_000_000)
    out.write_text(json.dumps(saved))
    made = readme_tables.block_data_load(tmp_path)
    assert "cifar10-png.tar.gz (135 MB, sha256 81e53ff6ac7f...): 30 + 20 PNGs decoded in 41.3 s" in made
    assert "then 0.53 s from the cache (184 MB)" in made


def test_the_headline_per_epoch_table_puts_the_original_beside_it_and_means_the_gap(tmp_path):
    (tmp_path / "results").mkdir()
    original = readme_tables.ORIGINAL_TEST_ACCURACY
    ours = [(o - 1.0) / 100 for o in original]  # one point under the original in every epoch...
    ours[23] = (original[23] + 0.5) / 100  # ...but half a point over at the end
    epochs = {"test_accuracy": ours, "test_accuracy_tta": [a + 0.01 for a in ours], "seconds": [400.0] * 24,
              "eval_seconds": [50.0] * 24}  # fmt: skip
    (tmp_path / "results" / f"{readme_tables.HEADLINE}.json").write_text(json.dumps({"epochs": epochs}))
    made = readme_tables.block_png_epochs(tmp_path)
    assert "| 1 | 47.40 | 48.40 | 48.40 | -1.00 | 450 |" in made  # no JPEG run committed here: no column
    assert "| 24 | 93.68 | 94.68 | 93.18 | +0.50 | 450 |" in made
    assert "| mean, epochs 7-19 |  |  |  | -1.00 |  |" in made
    assert f"| mean, epochs 22-24 |  |  |  | {(-1 - 1 + 0.5) / 3:+.2f} |  |" in made
    (tmp_path / "results" / "cpu-24.json").write_text(json.dumps({"epochs": {"test_accuracy": [0.3141] * 24}}))
    assert "| 1 | 47.40 | 48.40 | 48.40 | -1.00 | 31.41 | 450 |" in readme_tables.block_png_epochs(tmp_path)
