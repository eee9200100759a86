"""Tests for research.lr_rules: every rule's picks and every pair's training, recorded."""

import json
from pathlib import Path

import numpy as np
import pytest

from research import lr_rules

TINY = (
    "--data synthetic --n-train 640 --n-test 100 --width 4 --batch-size 64 --epochs 1 --peak-epoch 0.5 "
    "--lr-range-iters 30 --lr-range-start 1e-3 --lr-range-end 0.5"
).split()


def test_the_study_sweeps_once_per_seed_and_trains_every_pair(tmp_path):
    out = tmp_path / "study"
    # two of the six pairs (each pair's training compiles its own program): the default, and one with
    # another LR_MAX rule and another LR_MIN rule
    pairs = ["accuracy/div", "valley/rise"]
    argv = [*TINY, "--seeds", "2", "--pairs", *pairs, "--out", str(out), "--json", str(tmp_path / "r.json")]
    result = lr_rules.main(argv)
    assert json.loads((tmp_path / "r.json").read_text())["seeds"] == 2
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("sweep")) == ["sweep-0", "sweep-1"]
    assert [f"{r['rule']}/{r['lr_min_rule']}" for r in result["pairs"]] == pairs
    for row in result["pairs"]:
        finals = [r["final_test_accuracy"] for r in row["runs"]]
        assert row["final_test_accuracy_mean"] == pytest.approx(np.mean(finals))
        assert row["final_test_accuracy_std"] == pytest.approx(np.std(finals, ddof=1))
    # Training seed k uses sweep k's pick: the accuracy/div runs' LR_MAX are the sweeps' own.
    sweeps = [json.loads((out / f"sweep-{k}" / "lr_range.json").read_text()) for k in range(2)]
    default = result["pairs"][0]["runs"]
    assert [r["lr_max"] for r in default] == [s["suggestions"]["accuracy"] for s in sweeps]
    picks = result["stability"]["lr_max"]["accuracy"]
    assert picks["values"] == [s["suggestions"]["accuracy"] for s in sweeps]
    assert picks["log10_std"] == pytest.approx(np.std(np.log10(picks["values"]), ddof=1))
    with pytest.raises(SystemExit) as exc:  # the study folder is never reused
        lr_rules.main([*TINY, "--seeds", "2", "--out", str(out)])
    assert exc.value.code == 2


def test_the_pairs_default_to_all_six_and_a_wrong_one_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        lr_rules.main([*TINY, "--pairs", "accuracy/div", "accuracy", "steep/rise", "--out", str(tmp_path / "s")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--pairs accuracy steep/rise: each is LR_RULE/LR_MIN_RULE" in err and not (tmp_path / "s").exists()
    with pytest.raises(SystemExit):
        lr_rules.main(["--help"])
    shown = "".join(capsys.readouterr().out.split())  # argparse wraps lines, at hyphens too
    assert "(default:" + "".join(f"{a}/{b}" for a, b in lr_rules.PAIRS) + ")" in shown


def test_the_stability_study_spreads_each_rules_picks_over_roundings_and_seeds():
    from research import lr_rule_stability as study

    # Two seeds, four roundings each: `accuracy` doubles between roundings, `plateau` moves by 10**0.1.
    picks = {}
    for seed in (0, 1):
        for i, (conv, bn) in enumerate(study.VARIANTS):
            rules = {rule: 0.01 for rule in study.LR_RULES}
            rules["accuracy"] = 0.02 * (2 if i % 2 else 1) * (1 + seed)
            rules["plateau"] = 0.03 * 10 ** (0.1 * (i == 3))
            picks[f"{conv}-{bn}-s{seed}"] = rules
    rules = study.summarise(picks, [0, 1])
    # log10 std (ddof 1) of [a, 2a, a, 2a]: log10(2) * std([0, 1, 0, 1]) = 0.30103 * 0.57735
    assert rules["accuracy"]["log10_std_over_kernels"] == pytest.approx(np.log10(2) * np.std([0, 1, 0, 1], ddof=1))
    assert rules["accuracy"]["max_over_min_over_kernels"] == pytest.approx(2.0)
    assert rules["accuracy"]["log10_std_over_seeds"] == pytest.approx(np.log10(2) / np.sqrt(2))  # 0.02, then 0.04
    assert rules["plateau"]["max_over_min_over_kernels"] == pytest.approx(10**0.1)
    assert rules["plateau"]["log10_std_over_seeds"] == 0.0 and rules["valley"]["log10_std_over_kernels"] == 0.0
    command = study.sweep_command("d", "xla", "flax", 2, Path("o"))
    assert " ".join(command) == (
        "python -m jaxcifar.lr_range --quick --data d --conv xla --batch-norm flax --seed 2 --out o --no-progress"
    )
