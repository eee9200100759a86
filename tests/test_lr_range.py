"""Tests for jaxcifar.lr_range: the sweep, smoothing, rules, stopping, outputs, --lr-max auto."""

import dataclasses
import json
import os
import signal

import numpy as np
import pytest
from tiny import TINY_RUN

from jaxcifar import data as data_lib
from jaxcifar import lr_range, parallel, train
from jaxcifar.config import TrainConfig
from jaxcifar.errors import Stopped
from jaxcifar.records import LOCK

TINY = {**TINY_RUN, "lr_range_iters": 40, "lr_range_start": 1e-3, "lr_range_end": 0.5}


@pytest.fixture(scope="module")
def tiny_data():
    return data_lib.synthetic(n_train=640, n_test=128, seed=0)


def test_exponential_sequence():
    lrs = lr_range.lr_sequence(1e-4, 0.1, 980)
    assert len(lrs) == 980
    np.testing.assert_allclose([lrs[0], lrs[-1]], [1e-4, 0.1], rtol=1e-12)
    # A constant ratio per step: (0.1 / 1e-4) ** (1 / 979) = 1000 ** (1 / 979).
    np.testing.assert_allclose(lrs[1:] / lrs[:-1], 1000 ** (1 / 979), rtol=1e-12)


def test_linear_sequence():
    lrs = lr_range.lr_sequence(0.01, 0.05, 5, mode="linear")
    np.testing.assert_allclose(lrs, [0.01, 0.02, 0.03, 0.04, 0.05])


def test_sequence_errors():
    with pytest.raises(ValueError, match=r"0 < lr-range-start < lr-range-end, got start=0.1, end=0.01"):
        lr_range.lr_sequence(0.1, 0.01, 10)
    with pytest.raises(ValueError, match=r"lr-range-iters >= 2, got 1"):
        lr_range.lr_sequence(1e-4, 0.1, 1)


def test_smoothing_formula_on_a_hand_made_series():
    # factor 0.5: m = 0.5, 1.25, 2.125; corrected by 1 - 0.5^(i+1) = 0.5, 0.75, 0.875.
    np.testing.assert_allclose(lr_range.smooth([1.0, 2.0, 3.0], 0.5), [1.0, 1.25 / 0.75, 2.125 / 0.875])
    # The correction makes a constant series stay constant from the first value on.
    np.testing.assert_allclose(lr_range.smooth([4.0] * 50, 0.05), 4.0)
    # factor 1: no smoothing at all.
    np.testing.assert_allclose(lr_range.smooth([3.0, 1.0, 2.0], 1.0), [3.0, 1.0, 2.0])


def test_divergence_index():
    s = np.array([5.0, 3.0, 1.0, 2.0, 3.9, 4.1, 9.0])
    assert lr_range.divergence(s, 4.0) == 5  # 4.1 > 4 x the best so far (1.0)
    assert lr_range.divergence(s[:5], 4.0) is None
    assert lr_range.divergence(np.array([2.0, 1.0, np.nan]), 4.0) == 2


def test_the_sweep_schedule_is_one_definition_on_the_host_and_in_a_jitted_step():
    import jax
    import jax.numpy as jnp

    schedule = lr_range.sweep_schedule(1e-4, 0.1, 980)
    on_device = jax.jit(jax.vmap(schedule))(jnp.arange(980))  # as the jitted step evaluates it (float32)
    np.testing.assert_allclose(np.asarray(on_device), lr_range.lr_sequence(1e-4, 0.1, 980), rtol=1e-5)
    assert lr_range.sweep_schedule(0.01, 0.05, 5, "linear")(2) == pytest.approx(0.03)
    with pytest.raises(ValueError, match="mode must be 'exp' or 'linear', got 'cos'"):
        lr_range.sweep_schedule(0.01, 0.05, 5, "cos")


def test_a_sweep_is_typed_reads_back_from_its_json_and_has_a_rule_for_every_setting():
    from jaxcifar.config import LR_RULES

    lrs = np.geomspace(1e-3, 1.0, 30)
    sweep = lr_range.Sweep.measured(lrs, np.linspace(2.3, 1.0, 30), np.linspace(0.1, 0.6, 30), smoothing=0.5)
    again = lr_range.Sweep.of(sweep.to_json())
    assert len(again) == 30 and again.to_json() == sweep.to_json() and lr_range.Sweep.of(again) is again
    np.testing.assert_allclose(sweep.smoothed_loss, lr_range.smooth(np.linspace(2.3, 1.0, 30), 0.5))
    read = sweep.read()  # the first 10 and last 5 iterations left out
    assert len(read) == 15 and read.lr[0] == lrs[lr_range.SKIP_START] and read.lr[-1] == lrs[-1 - lr_range.SKIP_END]
    assert len(sweep.until(7)) == 7
    assert tuple(lr_range.LR_MAX_RULES) == LR_RULES  # each rule a flag value, each flag value a rule
    assert lr_range.suggest(sweep) == {name: rule(sweep) for name, rule in lr_range.LR_MAX_RULES.items()}


def records(lrs, loss, acc, raw_acc=None):
    """A sweep's records from hand-made curves (the smoothed ones given directly)."""
    return {"lr": lrs, "loss": loss, "smoothed_loss": loss, "smoothed_accuracy": acc,
            "accuracy": acc if raw_acc is None else raw_acc}  # fmt: skip


def test_rules_on_hand_made_curves():
    lrs = np.geomspace(1e-4, 1.0, 101)  # log10 step 0.04
    x = np.log10(lrs)
    # Loss: a tanh step falling fastest at 1e-2, minimum 1.0 at 10^-0.6 ~ 0.251, rising after.
    loss = 2.0 - np.tanh(3 * (x + 2)) + np.where(x > -0.6, 20 * (x + 0.6) ** 2, 0)
    # Accuracy: a bump peaking at 10^-1.2 ~ 0.0631.
    acc = np.exp(-((x + 1.2) ** 2))
    s = lr_range.suggest(records(lrs, loss, acc))
    np.testing.assert_allclose(s["accuracy"], 10**-1.2, rtol=1e-6)
    np.testing.assert_allclose(s["steepest"], 1e-2, rtol=1e-6)
    np.testing.assert_allclose(s["min-loss"], 10 ** (x[np.argmin(loss)]) / 10, rtol=1e-6)
    assert 0.02 < s["min-loss"] < 0.03
    # valley: the loss falls strictly from iteration 10 (the first one read) to its minimum
    # at 85 (10^-0.6): 76 points, window indices 0..75. fastai takes start = end - length
    # = -1 and d = 76: -1 + int(76 / 3) + int(76 / 6) = 36 in the window, iteration 46.
    assert int(np.argmin(loss)) == 85
    np.testing.assert_allclose(s["valley"], lrs[46], rtol=1e-12)
    # plateau: acc >= 0.95 where |x + 1.2| <= sqrt(-ln 0.95) = 0.2265, grid points x = -1.40
    # .. -1.00; their geometric middle is the bump's peak again.
    np.testing.assert_allclose(s["plateau"], 10**-1.2, rtol=1e-9)


def test_the_plateau_spans_the_first_to_the_last_lr_near_the_peak():
    rec = records(np.arange(1.0, 7.0), np.ones(6), np.array([0.1, 0.96, 0.5, 1.0, 0.95, 0.9]))
    assert lr_range.accuracy_plateau(rec) == (2.0, 5.0, 1.0)  # a dip inside (0.5 at 3) stays in
    assert lr_range.accuracy_plateau(rec, fraction=0.99) == (4.0, 4.0, 1.0)
    np.testing.assert_allclose(lr_range.suggest(rec)["plateau"], np.sqrt(2.0 * 5.0), rtol=1e-12)
    # 30 iterations: the first 10 and the last 5 are not read, so a peak there is left out.
    acc = np.full(30, 0.5)
    acc[[2, 12, 20, 27]] = [1.0, 0.8, 0.78, 1.0]
    lo, hi, peak = lr_range.accuracy_plateau(records(np.arange(30.0) + 1, np.ones(30), acc))
    assert (lo, hi, peak) == (13.0, 21.0, 0.8)


def test_valley_is_fastais_longest_decreasing_run():
    # The longest strictly decreasing subsequence is 10, 9, 8, 7, 6.5, 5, 4, 3, 2, 1 (the
    # bump to 7.5 left out), 10 long, ending at index 10: start = end - length = 0 and
    # 0 + int(10 / 3) + int(10 / 6) = 4.
    loss = np.array([10, 9, 8, 7, 7.5, 6.5, 5, 4, 3, 2, 1, 1.5])
    assert lr_range.valley_index(loss) == 4
    assert lr_range.valley_index(np.arange(5.0)) == 0  # rising: a valley of one point


def test_accuracy_raw_is_the_originals_unsmoothed_pick():
    lrs = np.geomspace(1e-4, 0.1, 30)
    raw = np.full(30, 0.3)
    raw[[3, 17, 28]] = [0.9, 0.8, 0.95]  # the highest single batch is the 29th, at the very end
    smoothed = np.linspace(0.1, 0.5, 30)
    s = lr_range.suggest(records(lrs, np.ones(30), smoothed, raw))
    assert s["accuracy-raw"] == lrs[28]  # no iterations left out: exactly the original's argmax
    assert s["accuracy"] == lrs[30 - lr_range.SKIP_END - 1]  # the smoothed rule skips the ends


def test_lr_min_rules_on_hand_made_curves():
    lrs = np.geomspace(1e-4, 1.0, 101)
    x = np.log10(lrs)
    acc = 0.1 + 0.6 / (1 + np.exp(-4 * (x + 2)))  # rises from 0.1 to 0.7 around LR 1e-2
    loss = 2.0 - np.tanh(3 * (x + 2)) + np.where(x > -0.6, 20 * (x + 0.6) ** 2, 0)
    rec = records(lrs, loss, acc)
    found = lr_range.suggest_min(rec, lr_max=0.1, div=10, fraction=0.25)
    assert found["div"]["lr"] == pytest.approx(0.01)
    # rise: acc[10] + 0.25 x (max up to LR 0.1 - acc[10]), first reached at this index:
    window = acc[10:96]
    top = int(np.searchsorted(lrs[10:96], 0.1, side="right"))
    target = window[0] + 0.25 * (window[:top].max() - window[0])
    assert found["rise"]["lr"] == lrs[10 + int(np.argmax(window >= target))]
    assert 1e-3 < found["rise"]["lr"] < 1e-2
    assert found["min-loss"]["lr"] == pytest.approx(lrs[85] / 10)  # the lowest loss at 10^-0.6, / 10
    low = lr_range.suggest_min(rec, lr_max=0.02, div=10, fraction=0.25)["min-loss"]
    assert low["lr"] is None and "0.02512 is not below LR_MAX 0.02" in low["note"]


def test_rise_falls_back_to_div_on_a_flat_curve_and_says_why():
    lrs = np.geomspace(1e-4, 1.0, 60)
    flat = records(lrs, np.linspace(2.3, 2.2, 60), np.full(60, 0.1) + 0.01 * np.sin(np.arange(60)))
    picked = lr_range.choose({"records": flat}, "accuracy", "rise", 10.0, 0.1)
    assert picked["lr_min_rule"] == "div" and picked["lr_min"] == pytest.approx(picked["lr_max"] / 10)
    assert picked["fallback"].startswith("the rise rule cannot decide: the smoothed accuracy rises by only")


def test_rules_skip_the_noisy_ends():
    lrs = np.geomspace(1e-4, 1.0, 50)
    acc = np.linspace(0, 0.5, 50)
    acc[2] = 0.99  # a noisy early spike
    acc[-1] = 0.98  # and a late one
    assert lr_range.suggest(records(lrs, np.ones(50), acc))["accuracy"] == lrs[-1 - lr_range.SKIP_END]


def test_sweep_writes_json_and_plot(tmp_path, tiny_data):
    cfg = TrainConfig(**TINY, out=str(tmp_path))
    result = lr_range.run(cfg, tiny_data, tmp_path)
    saved = json.loads((tmp_path / "lr_range.json").read_text())
    assert (tmp_path / "lr_range.png").stat().st_size > 20_000
    assert saved["iterations"] == result["iterations"] == 40 and saved["stopped"] == "completed"
    rec = saved["records"]
    assert set(rec) == {"lr", "loss", "accuracy", "smoothed_loss", "smoothed_accuracy"}
    np.testing.assert_allclose(rec["lr"], lr_range.lr_sequence(1e-3, 0.5, 40))
    np.testing.assert_allclose(rec["smoothed_loss"], lr_range.smooth(rec["loss"], 0.05))
    assert min(rec["smoothed_loss"]) < 0.9 * rec["smoothed_loss"][0]  # it learns while the LR grows
    assert set(saved["suggestions"]) == {"accuracy", "accuracy-raw", "steepest", "min-loss", "valley", "plateau"}
    assert set(saved["lr_min_suggestions"]) == {"div", "rise", "min-loss"}
    assert saved["rule"] == "plateau" and saved["lr_max"] == saved["suggestions"]["plateau"]  # the default rule
    assert saved["lr_min_rule"] == "div" and saved["lr_min_fallback"] is None
    np.testing.assert_allclose(saved["lr_min"], saved["lr_max"] / 10)
    # The figure marks the chosen pair and every other rule's bounds, both panels.
    fig = lr_range.plot(saved, tmp_path / "again.png")
    marked = {round(line.get_xdata()[0], 12) for line in fig.axes[0].lines if len(set(line.get_xdata())) == 1}
    expected = set(saved["suggestions"].values()) | {v["lr"] for v in saved["lr_min_suggestions"].values() if v["lr"]}
    assert {round(v, 12) for v in expected} <= marked
    assert saved["settings"]["weight_decay"] == 5e-3 and saved["settings"]["batch_size"] == 64


def test_sweep_stops_when_the_loss_diverges(tmp_path, tiny_data):
    cfg = TrainConfig(**{**TINY, "lr_range_iters": 120, "lr_range_end": 1e6}, out=str(tmp_path))
    result = lr_range.run(cfg, tiny_data, tmp_path)
    assert result["stopped"].startswith("diverged at iteration")
    assert result["iterations"] < 120
    s = np.array(result["records"]["smoothed_loss"])
    last = s[-1]
    assert not np.isfinite(last) or last > 4 * s[:-1].min()  # the last record is the diverging one
    assert np.all(s[:-1] <= 4 * np.minimum.accumulate(s[:-1]))  # none before it


def signal_at_put(monkeypatch, nth, stop):
    """Sends `stop` to this process while the nth batch goes to the device."""
    calls = {"n": 0}
    real_put = parallel.put_batch

    def put(arrays, mesh):
        calls["n"] += 1
        if calls["n"] == nth:
            os.kill(os.getpid(), stop)
        return real_put(arrays, mesh)

    monkeypatch.setattr(parallel, "put_batch", put)


@pytest.mark.parametrize("stop, code, who", [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")])
def test_a_stopped_sweep_keeps_what_it_swept_and_exits(tmp_path, monkeypatch, capsys, stop, code, who):
    signal_at_put(monkeypatch, 12, stop)  # the 12th step runs, the 13th never starts
    argv = "--data synthetic --n-train 640 --width 4 --batch-size 64 --lr-range-iters 40 --no-progress --out".split()
    with pytest.raises(SystemExit) as exc:
        lr_range.main([*argv, str(tmp_path)])
    assert exc.value.code == code
    saved = json.loads((tmp_path / "lr_range.json").read_text())
    lr_12 = lr_range.lr_sequence(1e-4, 0.1, 40)[11]
    assert saved["iterations"] == len(saved["records"]["loss"]) == 12 and saved["stopped_by"] == stop.name
    assert saved["stopped"] == f"stopped by {who} after 12 of 40 iterations, at LR {lr_12:.4g}"
    assert (tmp_path / "lr_range.png").exists()
    err = capsys.readouterr().err
    assert f"{who}: stopping the sweep after this step; what it swept is written ({who} again" in err
    assert "checkpoint" not in err  # the sweep keeps none
    assert f"LR range test stopped by {who} after 12 of 40 iterations" in err
    assert f"what it swept is in {tmp_path / 'lr_range.json'}" in err and "pass --lr-max and --lr-min" in err


def test_a_run_whose_sweep_is_stopped_never_trains(tmp_path, tiny_data, monkeypatch, capsys):
    signal_at_put(monkeypatch, 5, signal.SIGTERM)
    cfg = TrainConfig(**{**TINY, "lr_max": None}, out=str(tmp_path / "run"))
    with pytest.raises(Stopped) as exc:  # `python -m jaxcifar.train` exits with 143 on it (test_errors)
        train.train_and_evaluate(cfg, tiny_data)
    assert exc.value.signal == "SIGTERM" and "stopped by SIGTERM after 5 of 40 iterations" in str(exc.value)
    assert json.loads((tmp_path / "run" / "lr_range.json").read_text())["iterations"] == 5
    # no training: the sweep's files and the lock of the run that never started
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [LOCK, "lr_range.json", "lr_range.png"]
    # and that sweep is refused as a run's LR range test, unless asked for
    sweep, again = tmp_path / "run" / "lr_range.json", TrainConfig(**{**TINY, "lr_max": None}, out=str(tmp_path / "r2"))
    with pytest.raises(ValueError, match=r"that sweep is partial \(stopped by SIGTERM after 5 of 40 iterations.*"
                                         r"pass --lr-range-partial to use it anyway"):  # fmt: skip
        train.train_and_evaluate(dataclasses.replace(again, lr_range_json=str(sweep)), tiny_data)
    assert not (tmp_path / "r2").exists()
    taken = train.train_and_evaluate(
        dataclasses.replace(again, lr_range_json=str(sweep), lr_range_partial=True, epochs=1, peak_epoch=0.5),
        tiny_data,
    )
    assert taken["status"] == "completed" and "too few for the rules to drop" in capsys.readouterr().err


def test_lr_max_auto_end_to_end(tmp_path, tiny_data, capsys):
    cfg = TrainConfig(**{**TINY, "lr_max": None}, out=str(tmp_path / "run"))
    summary = train.train_and_evaluate(cfg, tiny_data)
    sweep = json.loads((tmp_path / "run" / "lr_range.json").read_text())
    assert (tmp_path / "run" / "lr_range.png").exists()
    assert summary["status"] == "completed"
    assert summary["lr_max"] == sweep["suggestions"]["plateau"]
    np.testing.assert_allclose(summary["lr_min"], summary["lr_max"] / 10)
    assert summary["lr"]["rule"] == "plateau"
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["config"]["lr_max"] == summary["lr_max"]  # the LR used is recorded
    out = capsys.readouterr().out
    assert f"LR_MAX {summary['lr_max']:.4g} (plateau), LR_MIN {summary['lr_min']:.4g} (div)" in out
    assert f"(epoch {summary['best_epoch']}) on {len(tiny_data.test_labels)} test images; results in" in out
    assert config["lr"] == {"source": f"LR range test in {tmp_path / 'run' / 'lr_range.json'}", "rule": "plateau",
                            "lr_min_rule": "div"}  # fmt: skip
    # Training starts from a fresh initialisation: its first step's LR is LR_MIN.
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    np.testing.assert_allclose(metrics["steps"]["lr"][0], summary["lr_min"], rtol=1e-5)


def test_lr_range_json_is_reused_without_a_new_sweep(tmp_path, tiny_data, monkeypatch):
    cfg = TrainConfig(**TINY, out=str(tmp_path / "sweep"))
    lr_range.run(cfg, tiny_data, tmp_path / "sweep")

    def no_sweep(*args, **kwargs):
        raise AssertionError("swept again")

    monkeypatch.setattr(lr_range, "sweep", no_sweep)
    run_cfg = TrainConfig(
        **{**TINY, "lr_range_rule": "min-loss", "lr_max": None},
        lr_range_json=str(tmp_path / "sweep" / "lr_range.json"),
        out=str(tmp_path / "run"),
    )
    summary = train.train_and_evaluate(run_cfg, tiny_data)
    sweep = json.loads((tmp_path / "sweep" / "lr_range.json").read_text())
    assert summary["lr_max"] == sweep["suggestions"]["min-loss"]
    assert (tmp_path / "run" / "lr_range.png").exists()
    # The run folder's copy records the rules this run used, and where the sweep came from.
    copy = json.loads((tmp_path / "run" / "lr_range.json").read_text())
    assert copy["rule"] == "min-loss" and copy["lr_max"] == summary["lr_max"] and copy["records"] == sweep["records"]
    assert copy["reused_from"] == str(tmp_path / "sweep" / "lr_range.json")


def test_lr_min_rules_choose_the_first_lr_of_training(tmp_path, tiny_data):
    sweep = tmp_path / "sweep"
    lr_range.run(TrainConfig(**TINY, out=str(sweep)), tiny_data, sweep)
    saved = json.loads((sweep / "lr_range.json").read_text())
    cfg = TrainConfig(
        **{**TINY, "lr_max": None, "lr_min_rule": "min-loss", "epochs": 1, "peak_epoch": 0.5},
        lr_range_json=str(sweep / "lr_range.json"),
        out=str(tmp_path / "run"),
    )
    summary = train.train_and_evaluate(cfg, tiny_data)
    expected = lr_range.suggest_min(saved["records"], summary["lr_max"], 10.0, 0.1)["min-loss"]
    if expected["lr"] is None:  # a fallback is recorded with its reason
        assert summary["lr"]["lr_min_rule"] == "div" and "cannot decide" in summary["lr"]["lr_min_fallback"]
        np.testing.assert_allclose(summary["lr_min"], summary["lr_max"] / 10)
    else:
        assert summary["lr"]["lr_min_rule"] == "min-loss" and summary["lr_min"] == expected["lr"]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    np.testing.assert_allclose(metrics["steps"]["lr"][0], summary["lr_min"], rtol=1e-5)
    # Given LR_MAX, the rule reads the sweep for LR_MIN alone; without a sweep it is refused.
    given = dataclasses.replace(cfg, lr_max=0.05, lr_min_rule="rise", out=str(tmp_path / "given"))
    summary = train.train_and_evaluate(given, tiny_data)
    assert summary["lr_max"] == 0.05 and summary["lr"]["lr_max"] == "--lr-max"
    assert summary["lr_min"] < 0.05 and summary["lr"]["lr_min_rule"] in ("rise", "div")
    with pytest.raises(ValueError, match="lr-min-rule rise reads an LR range test"):
        dataclasses.replace(given, lr_range_json=None)


def test_a_run_that_sweeps_says_its_lr_pair_once(tmp_path, tiny_data, capsys):
    cfg = TrainConfig(**{**TINY, "lr_max": None, "epochs": 1, "peak_epoch": 0.5}, out=str(tmp_path / "run"))
    summary = train.train_and_evaluate(cfg, tiny_data)
    out = capsys.readouterr().out
    assert out.count(f"LR_MAX {summary['lr_max']:.4g}") == 1 and out.count(f"LR_MIN {summary['lr_min']:.4g}") == 1


def test_cli_writes_outputs_and_refuses_to_overwrite(tmp_path, capsys):
    argv = [
        *"--data synthetic --n-train 640 --width 4 --batch-size 64 --lr-range-iters 20".split(),
        *"--lr-range-rule steepest --out".split(),
        str(tmp_path),
        "--no-progress",
    ]
    result = lr_range.main(argv)
    assert result["rule"] == "steepest" and (tmp_path / "lr_range.json").exists()
    assert f"LR_MAX {result['lr_max']:.4g} (steepest rule)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        lr_range.main(argv)
    assert exc.value.code == 2
    assert "exists; nothing is overwritten" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--lr-range-start", "0.1", "--lr-range-end", "0.01"],
            "lr-range-start (0.1) must be below lr-range-end (0.01)",
        ),
        (["--lr-range-iters", "1"], "needs lr-range-iters >= 2, got 1"),
        (["--lr-range-rule", "bogus"], "invalid choice: 'bogus'"),
        (["--lr-range-smoothing", "0"], "lr-range-smoothing must be in (0, 1], got 0.0"),
    ],
)
def test_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        lr_range.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_lr_range_json(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match=r"--lr-range-json .*x.json is not an lr_range.json of jaxcifar"):
        lr_range.load(bad)
    bad.write_text('{"settings": {"start_lr": 1e-4, "end')  # truncated
    with pytest.raises(ValueError, match=r"--lr-range-json .*x.json: not readable JSON .*may be truncated"):
        lr_range.load(bad)
    with pytest.raises(FileNotFoundError, match="no such file"):
        lr_range.load(tmp_path / "missing.json")


def test_a_sweep_is_not_written_into_a_training_runs_folder(tiny_run, capsys):
    before = sorted(p.name for p in tiny_run[0].iterdir())
    with pytest.raises(SystemExit) as exc:
        lr_range.main(["--data", "synthetic", "--width", "4", "--out", str(tiny_run[0])])
    assert exc.value.code == 2
    assert f"error: {tiny_run[0]} holds a training run" in capsys.readouterr().err
    assert sorted(p.name for p in tiny_run[0].iterdir()) == before
