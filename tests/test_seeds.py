"""Tests for jaxcifar.seeds: the table by hand, one LR range test for all seeds, inputs checked first."""

import json

import numpy as np
import pytest

from jaxcifar import lr_range, seeds, train

TINY_FLAGS = (
    "--data synthetic --n-train 640 --n-test 100 --width 4 --batch-size 64 --epochs 2 --peak-epoch 1 "
    "--lr-range-iters 20 --no-progress --no-gradcam --checkpoint-every 0"
).split()


def test_seed_summary_by_hand():
    rows = [
        {"final_test_accuracy": a, "best_test_accuracy": a + 0.01, "train_seconds": 10.0} for a in (0.93, 0.94, 0.95)
    ]
    s = seeds.summarize(rows)
    assert s["final_test_accuracy_mean"] == pytest.approx(0.94)
    assert s["final_test_accuracy_std"] == pytest.approx(0.01)  # sample std of .93 .94 .95
    assert s["share_at_least_94"] == pytest.approx(2 / 3) and s["share_at_least_93"] == 1.0
    assert "final_test_accuracy_tta_mean" not in s
    for r, tta in zip(rows, (0.935, 0.945, 0.955)):
        r["final_test_accuracy_tta"] = tta
    s = seeds.summarize(rows)
    assert s["final_test_accuracy_tta_mean"] == pytest.approx(0.945)
    assert s["final_test_accuracy_tta_std"] == pytest.approx(0.01)
    assert s["share_tta_at_least_94"] == pytest.approx(2 / 3)


def test_seeds_run_the_lr_range_test_once_and_write_the_table_after_every_seed(tmp_path, monkeypatch):
    sweeps, tables = [], []
    real_run, real_train = lr_range.run, train.train_and_evaluate
    monkeypatch.setattr(lr_range, "run", lambda *a, **k: sweeps.append(1) or real_run(*a, **k))
    out = tmp_path / "seeds"

    def train_and_look(config, ds):
        if (out / "seeds.json").exists():  # the table as it stood before this seed
            tables.append(len(json.loads((out / "seeds.json").read_text())["per_seed"]))
        return real_train(config, ds)

    monkeypatch.setattr(train, "train_and_evaluate", train_and_look)
    result = seeds.main(["--seeds", "3", *TINY_FLAGS, "--out", str(out)])
    assert len(sweeps) == 1 and tables == [1, 2]
    saved = json.loads((out / "seeds.json").read_text())
    finals = [r["final_test_accuracy"] for r in saved["per_seed"]]
    assert [r["seed"] for r in saved["per_seed"]] == [0, 1, 2] and len(set(finals)) > 1  # seeds differ
    assert saved["summary"]["final_test_accuracy_mean"] == pytest.approx(np.mean(finals))
    assert len({r["lr_max"] for r in saved["per_seed"]}) == 1  # one LR for all seeds
    assert (out / "seed-2" / "summary.json").exists() and result["summary"]["runs"] == 3


def test_a_time_budget_stops_before_a_seed_that_would_pass_it(tmp_path):
    result = seeds.main(
        ["--seeds", "3", *TINY_FLAGS, "--lr-max", "0.05", "--time-budget", "0.1", "--out", str(tmp_path)]
    )
    assert result["summary"]["runs"] == 1 and result["seeds_planned"] == 3  # the first seed always runs


def test_inputs_are_checked_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        seeds.main(
            ["--seeds", "2", *TINY_FLAGS, "--lr-range-json", str(tmp_path / "none.json"), "--out", str(tmp_path / "s")]
        )
    assert exc.value.code == 2 and "--lr-range-json" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
    (tmp_path / "t" / "seed-1").mkdir(parents=True)
    with pytest.raises(SystemExit) as exc:
        seeds.main(["--seeds", "2", *TINY_FLAGS, "--lr-max", "0.05", "--out", str(tmp_path / "t")])
    assert exc.value.code == 2 and "seed-1 already exists" in capsys.readouterr().err
    assert list((tmp_path / "t").iterdir()) == [tmp_path / "t" / "seed-1"]
