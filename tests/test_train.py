"""Tests for jaxcifar.train: the driver, its records, resume, Ctrl-C, failures, exit codes."""

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny import TINY_RUN

from jaxcifar import data as data_lib
from jaxcifar import flags, gradcam, parallel, records, train
from jaxcifar import steps as steps_lib
from jaxcifar.checkpoint import Checkpoints, abstract_state
from jaxcifar.config import TrainConfig
from jaxcifar.console import Progress, StopRequest
from jaxcifar.schedule import one_cycle

# The session's tiny run: 3 epochs of 10 steps (640 images, batches of 64), flip TTA.
TINY = {**TINY_RUN, "epochs": 3, "tta": True, "n_train": 640, "n_test": 200}


def tiny_config(tmp_path, name="run", **kw):
    return TrainConfig(**{**TINY, "out": str(tmp_path / name), **kw})


def leaves_equal(a, b):
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def final_state(out, config):
    """(state, meta) of a run's latest checkpoint."""
    template = steps_lib.initial_state(config, lambda step: 0.1)
    with Checkpoints(out, read_only=True) as ckpt:
        return ckpt.restore(abstract_state(template, parallel.make_mesh(1)))


def read(path):
    return json.loads(path.read_text())


# --- a finished run ----------------------------------------------------------------


def test_a_tiny_run_writes_every_output(tiny_run):
    out, summary, config, _ = tiny_run
    for name in (
        "config.json",
        "metrics.json",
        "summary.json",
        "accuracy.png",
        "loss_accuracy.png",
        "one_cycle.png",
        "gradcam_misclassified.png",
        "misclassified.png",
    ):
        assert (out / name).exists(), name
    assert not list(out.rglob(".*.tmp"))  # atomic writes leave no temporaries
    assert summary["status"] == "completed" and summary["epochs_completed"] == 3
    assert summary["conv"] == "xla"  # the convolutions the steps used: XLA's below width 32
    assert summary["batch_norm"] == "flax"  # and Flax's BatchNorm
    # Learnable data: high train accuracy after 3 tiny epochs, test far above chance (10%).
    # Over seeds 0-4 on the 2-core CPU: train 0.89-1.0, best test 0.81-1.0; a CPU that
    # rounds otherwise takes another path through the same spread, so the bars sit under it.
    assert summary["final_train_accuracy"] > 0.85 and summary["best_test_accuracy"] > 0.75
    metrics = read(out / "metrics.json")
    history = metrics["epochs"]
    assert len(history["test_accuracy"]) == 3 and metrics["steps_per_epoch"] == 10
    assert summary["best_test_accuracy"] == max(history["test_accuracy"])
    assert summary["best_epoch"] == 1 + int(np.argmax(history["test_accuracy"]))
    assert summary["final_test_accuracy_tta"] == history["test_accuracy_tta"][-1]
    # The epoch's train loss is the mean of its steps' losses.
    np.testing.assert_allclose(history["train_loss"][1], np.mean(metrics["steps"]["loss"][10:20]), rtol=1e-12)
    lrs = np.array(metrics["steps"]["lr"])
    assert len(lrs) == 30
    # The recorded LR is the one-cycle schedule: 0.005 -> 0.05 at step 10 -> 0.005 at step 29.
    np.testing.assert_allclose(lrs[[0, 10, 29]], [0.005, 0.05, 0.005], rtol=1e-5)
    assert history["train_loss"][2] < history["train_loss"][0]
    saved = read(out / "config.json")
    assert saved["config"]["lr_max"] == 0.05 and saved["config"]["lr_min"] == 0.005
    assert saved["config"]["data"] == "synthetic" and saved["data_source"].startswith("synthetic")
    assert saved["versions"]["jax"] == jax.__version__ and saved["platform"] == "cpu"
    assert summary["train_seconds"] == pytest.approx(sum(history["seconds"]))
    # Checkpoints: the latest (step 30) and the best epoch's, nothing else.
    with Checkpoints(out, read_only=True) as ckpt:
        assert ckpt.latest_step() == 30 and ckpt.best_step() == 10 * summary["best_epoch"]
        assert set(ckpt.steps()) == {30, 10 * summary["best_epoch"]}


def test_the_data_source_is_recorded_when_it_came_from_the_default(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXCIFAR_DATA", "synthetic")
    cfg = TrainConfig(**{**TINY, "data": None, "epochs": 1, "peak_epoch": 0.5, "tta": False}, out=str(tmp_path / "r"))
    summary = train.train_and_evaluate(cfg)
    assert read(tmp_path / "r" / "config.json")["config"]["data"] == "synthetic"
    assert summary["data_source"].startswith("synthetic")


def test_cifar10_fast_recipe_trains_from_lr_zero(tmp_path):
    cfg = TrainConfig.create(
        recipe="cifar10-fast", **{**TINY, "epochs": 3, "lr_max": 0.4, "out": str(tmp_path / "fast")}
    )
    summary = train.train_and_evaluate(cfg)
    # 3 epochs: 0.80-0.91 over seeds 0-4 on the 2-core CPU. After 2 epochs the spread
    # (0.41-0.49) straddled a bar of 0.5, and a CPU that rounds otherwise fell under it.
    assert summary["status"] == "completed" and summary["final_train_accuracy"] > 0.7
    lrs = np.array(read(tmp_path / "fast" / "metrics.json")["steps"]["lr"])  # 0 -> 0.4 at step 10 -> 0 at 29
    np.testing.assert_allclose(lrs[[0, 5, 10, 29]], [0.0, 0.2, 0.4, 0.0], atol=1e-6)
    config = read(tmp_path / "fast" / "config.json")["config"]
    assert (config["recipe"], config["nesterov"], config["logit_scale"], config["lr_min"]) == (
        "cifar10-fast",
        True,
        0.125,
        0.0,
    )


def test_same_seed_same_metrics(tmp_path):
    def run(name, **kw):
        train.train_and_evaluate(tiny_config(tmp_path, name, epochs=2, peak_epoch=1.0, tta=False, **kw))
        metrics = read(tmp_path / name / "metrics.json")
        return metrics["steps"], metrics["epochs"]["test_loss"]

    a = run("a")
    assert run("b") == a  # bit for bit on CPU
    assert run("c", seed=1)[0]["loss"] != a[0]["loss"]


# --- Ctrl-C and resume -------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, nth, stopped_at",
    [("eval", 2, (2, 0)), ("train", 15, (1, 5))],  # (epoch, batch) saved, 0-based: in epoch 2's eval; mid-epoch 2
)
def test_interrupted_and_resumed_run_ends_where_an_uninterrupted_one_does(
    tmp_path, tiny_run, monkeypatch, kind, nth, stopped_at
):
    full_out, _, full_cfg, ds = tiny_run

    # Ctrl-C (SIGINT) arrives while the nth train batch is put on the device, or
    # during the nth evaluation; the run finishes that step, saves, and stops.
    calls = {"train": 0, "eval": 0}
    real_put, real_evaluate = parallel.put_batch, steps_lib.evaluate

    def count(which):
        calls[which] += 1
        if which == kind and calls[which] == nth:
            os.kill(os.getpid(), signal.SIGINT)

    def put_and_interrupt(arrays, mesh):
        if len(arrays) == 2:  # training batches; eval batches carry weights
            count("train")
        return real_put(arrays, mesh)

    def evaluate_and_interrupt(*args):
        count("eval")
        return real_evaluate(*args)

    monkeypatch.setattr(parallel, "put_batch", put_and_interrupt)
    monkeypatch.setattr(steps_lib, "evaluate", evaluate_and_interrupt)
    cut_cfg = dataclasses.replace(full_cfg, out=str(tmp_path / "cut"), gradcam=False)
    first = train.train_and_evaluate(cut_cfg, ds)
    monkeypatch.undo()
    assert first["status"] == "interrupted"
    state, meta = final_state(tmp_path / "cut", cut_cfg)
    assert (meta["epoch"], meta["batch"]) == stopped_at
    # A stop mid-epoch keeps the epoch's seconds so far; the resumed epoch's time adds them.
    assert (meta["epoch_seconds"] > 0) == (stopped_at[1] > 0)
    assert int(state.step) == 10 * stopped_at[0] + stopped_at[1]
    resumed = train.train_and_evaluate(TrainConfig(out=str(tmp_path / "cut"), resume=True, progress=False), ds)
    assert resumed["status"] == "completed"

    full_state, _ = final_state(full_out, full_cfg)
    cut_state, _ = final_state(tmp_path / "cut", cut_cfg)
    assert int(cut_state.step) == 30
    assert leaves_equal(full_state.params, cut_state.params)
    assert leaves_equal(full_state.batch_stats, cut_state.batch_stats)
    full_m = read(full_out / "metrics.json")
    cut_m = read(tmp_path / "cut" / "metrics.json")
    assert full_m["steps"] == cut_m["steps"]
    assert full_m["epochs"]["test_accuracy"] == cut_m["epochs"]["test_accuracy"]
    assert cut_m["epochs"]["seconds"][stopped_at[0]] > meta["epoch_seconds"]


def test_a_damaged_checkpoint_is_set_aside_and_the_run_resumes_from_the_newest_intact_one(
    tmp_path, tiny_run, monkeypatch, capsys
):
    full_out, _, full_cfg, ds = tiny_run
    calls = {"n": 0}
    real_put = parallel.put_batch

    def put_and_interrupt(arrays, mesh):  # Ctrl-C at epoch 2, batch 5: checkpoints 10 (epoch 1) and 15
        calls["n"] += len(arrays) == 2
        if calls["n"] == 15 and len(arrays) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return real_put(arrays, mesh)

    monkeypatch.setattr(parallel, "put_batch", put_and_interrupt)
    cut = tmp_path / "cut"
    first = train.train_and_evaluate(dataclasses.replace(full_cfg, out=str(cut), gradcam=False), ds)
    monkeypatch.undo()
    assert first["status"] == "interrupted"
    assert sorted(read(cut / "checkpoint-files.json"), key=int) == ["10", "15"]  # both recorded once written
    # The newest checkpoint's largest file loses its last bytes (a disk fault, a copy cut short).
    damaged = max((p for p in (cut / "checkpoints" / "15").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    whole = damaged.read_bytes()
    damaged.write_bytes(whole[:-7])
    capsys.readouterr()
    resumed = train.train_and_evaluate(TrainConfig(out=str(cut), resume=True, progress=False), ds)
    said = capsys.readouterr().out
    aside = cut / "checkpoints-damaged" / "15"
    name = damaged.relative_to(cut)
    assert f"checkpoint 15 is damaged ({name} has changed since it was written): set aside in {aside}" in said
    assert "Resuming" in said and "at epoch 2, batch 0 (step 10)" in said
    assert resumed["status"] == "completed"
    # Nothing was deleted: the damaged checkpoint lies where the message says, as it was found.
    assert (aside / damaged.relative_to(cut / "checkpoints" / "15")).read_bytes() == whole[:-7]
    # Epoch 2 trained again from checkpoint 10 ends where the uninterrupted run does.
    full_state, _ = final_state(full_out, full_cfg)
    cut_state, _ = final_state(cut, full_cfg)
    assert int(cut_state.step) == 30 and leaves_equal(full_state.params, cut_state.params)
    assert read(full_out / "metrics.json")["steps"] == read(cut / "metrics.json")["steps"]
    assert (
        read(full_out / "metrics.json")["epochs"]["test_accuracy"]
        == read(cut / "metrics.json")["epochs"]["test_accuracy"]
    )


def test_a_run_stopped_by_sigterm_saves_exits_143_and_resumes(tmp_path, monkeypatch, capsys):
    # A scheduler's SIGTERM arrives while the 13th batch (epoch 2, batch 3) goes to the device.
    calls = {"n": 0}
    real_put = parallel.put_batch

    def put_and_terminate(arrays, mesh):
        calls["n"] += len(arrays) == 2  # training batches; eval batches carry weights
        if calls["n"] == 13 and len(arrays) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_put(arrays, mesh)

    monkeypatch.setattr(parallel, "put_batch", put_and_terminate)
    out = tmp_path / "cli"
    argv = "--data synthetic --n-train 640 --n-test 100 --width 4 --batch-size 64 --epochs 2 --lr-max 0.05"
    with pytest.raises(SystemExit) as exc:
        train.main([*argv.split(), "--no-progress", "--no-gradcam", "--out", str(out)])
    assert exc.value.code == 143
    err = capsys.readouterr().err
    assert f"Stopped at epoch 2, batch 3; checkpoint saved. Continue with: python -m jaxcifar.train --out {out}" in err
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["status"], summary["stopped_by"]) == ("interrupted", "SIGTERM")
    with Checkpoints(out, read_only=True) as ckpt:
        assert (ckpt.meta()["epoch"], ckpt.meta()["batch"]) == (1, 3) and ckpt.steps()[-1] == 13
    monkeypatch.undo()
    # Without --data the run resumes on its own data (synthetic), not on the default download.
    resumed = train.main(["--out", str(out), "--resume", "--no-progress"])
    assert resumed["status"] == "completed" and "stopped_by" not in resumed
    assert json.loads((out / "config.json").read_text())["config"]["data"] == "synthetic"


def test_checkpoint_every_0_keeps_only_the_last(tmp_path):
    summary = train.train_and_evaluate(tiny_config(tmp_path, checkpoint_every=0, tta=False))
    assert summary["status"] == "completed"
    with Checkpoints(tmp_path / "run", read_only=True) as ckpt:
        assert ckpt.steps() == [30] and ckpt.meta()["epoch"] == 3


# --- failures ----------------------------------------------------------------------


def test_nan_loss_stops_with_step_and_lr_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    cfg = tiny_config(tmp_path, lr_max=1e8, lr_min=1e7, tta=False)
    summary = train.train_and_evaluate(cfg)
    assert summary["status"] == "diverged"
    err = capsys.readouterr().err
    found = re.search(
        r"Training diverged: the loss became (nan|inf|-inf) at step (\d+) \(epoch 1, batch (\d+)\) "
        r"with learning rate ([0-9.e+]+)\. The last good checkpoint is kept",
        err,
    )
    assert found, err
    # The LR named is the one-cycle LR of the step named.
    step, batch, lr = int(found.group(2)), int(found.group(3)), float(found.group(4))
    assert step == batch
    np.testing.assert_allclose(lr, float(one_cycle(1e7, 1e8, 10, 3, 1.0)(step)), rtol=1e-3)
    assert "Lower --lr-max" in err
    state, meta = final_state(tmp_path / "run", cfg)
    # The checkpoint is the last good one: finite parameters from before the blow-up.
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state.params))
    assert meta["epoch"] == 0
    assert read(tmp_path / "run" / "summary.json")["status"] == "diverged"
    # No epoch was evaluated: Grad-CAM has no best checkpoint and says which one to use.
    with pytest.raises(SystemExit) as exc:
        gradcam.main(["--run", str(tmp_path / "run"), "--out", str(tmp_path / "cam")])
    assert exc.value.code == 2 and "use --checkpoint latest" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        train.main(
            [
                *(
                    "--data synthetic --n-train 640 --n-test 100 --width 4 --batch-size 64 --epochs 2 "
                    "--peak-epoch 1 --lr-max 1e8 --no-progress --no-gradcam --out"
                ).split(),
                str(tmp_path / "cli"),
            ]
        )
    assert exc.value.code == 1


def test_existing_output_is_never_overwritten(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(
        FileExistsError, match=r"already exists and is not empty; nothing is overwritten\. Pass --resume"
    ):
        train.train_and_evaluate(tiny_config(tmp_path))
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["notes.txt"]


def test_resume_needs_a_run_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--resume: .*config.json not found"):
        train.train_and_evaluate(TrainConfig(out=str(tmp_path / "nothing"), resume=True))


def test_data_unchanged_by_a_resume_of_a_finished_run(tiny_run, capsys):
    out = tiny_run[0]

    def files():  # the run's files; the lock records the last process that held it
        return {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != records.LOCK}

    before = files()
    summary = train.train_and_evaluate(TrainConfig(out=str(out), resume=True, progress=False))
    assert summary == read(out / "summary.json")
    assert "is complete (3 of 3 epochs); nothing to resume, nothing changed" in capsys.readouterr().out
    assert files() == before


def test_a_run_stopped_after_its_last_checkpoint_writes_its_summary_and_figures_on_resume(tiny_run, tmp_path, capsys):
    # The process ends (a session's end, SIGKILL) after the last epoch's checkpoint, before summary.json,
    # the figures and Grad-CAM: --resume trains nothing and writes them.
    import shutil

    out = tmp_path / "run"
    shutil.copytree(tiny_run[0], out)
    finishing = ["summary.json", "accuracy.png", "gradcam_misclassified.png", "gradcam_grid.png"]
    for name in finishing:
        (out / name).unlink()
    steps = read(out / "metrics.json")["steps"]
    summary = train.train_and_evaluate(TrainConfig(out=str(out), resume=True, progress=False))
    said = capsys.readouterr().out
    assert f"{out} trained its 3 epochs but stopped before writing its summary, figures and Grad-CAM" in said
    assert "Resuming" not in said and "epoch  1/3" not in said  # nothing trained again
    before = tiny_run[1]
    assert summary == read(out / "summary.json") and summary["status"] == "completed"
    for key in ("epochs_completed", "final_test_accuracy", "best_test_accuracy", "final_test_accuracy_tta", "seed"):
        assert summary[key] == before[key]
    assert read(out / "metrics.json")["steps"] == steps and all((out / name).exists() for name in finishing)


def test_data_is_the_configs_when_given_none(tmp_path):
    ds = data_lib.synthetic(n_train=640, n_test=200, seed=0)
    summary = train.train_and_evaluate(tiny_config(tmp_path, epochs=1, peak_epoch=0.5, tta=False), ds)
    assert summary["status"] == "completed" and summary["epochs_completed"] == 1


# --- what a user meets -------------------------------------------------------------


def test_resume_takes_this_machines_settings_and_keeps_the_runs_data_unless_given(tmp_path):
    # A run made elsewhere: 8 devices, 3 threads, its own cache, on synthetic data, no Grad-CAM.
    run = TrainConfig(data="synthetic", data_dir="/elsewhere", devices=8, workers=3, cache_dir="/c", gradcam=False,
                      progress=False, checkpoint_every=2, width=4)  # fmt: skip
    (tmp_path / "run").mkdir()
    records.write_json(tmp_path / "run" / "config.json", {"config": run.to_json()})
    here = TrainConfig(out=str(tmp_path / "run"), resume=True)  # `--out RUN --resume`, nothing else
    resumed = train.resumed_config(here, given=["out", "resume"])
    # the machine's settings are this command's defaults ...
    assert (resumed.devices, resumed.workers, resumed.cache_dir, resumed.progress) == (None, 0, None, True)
    # ... what the run computes on and writes stays the run's
    assert (resumed.data, resumed.data_dir, resumed.gradcam, resumed.checkpoint_every) == (
        "synthetic", "/elsewhere", False, 2,
    )  # fmt: skip
    assert resumed.width == 4 and resumed.resume
    moved = train.resumed_config(dataclasses.replace(here, data="/new/cifar"), given=["out", "resume", "data"])
    assert moved.data == "/new/cifar" and moved.data_dir == "/elsewhere"


def test_resume_refuses_a_changed_setting_and_takes_the_resumable_ones(tiny_run, capsys):
    out = str(tiny_run[0])
    with pytest.raises(SystemExit) as exc:
        train.main(["--out", out, "--resume", "--width", "8", "--lr-max", "0.05"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "these differ: --width 8 (the run has 4)" in err and "--lr-max" not in err  # 0.05 is the run's own
    summary = train.main(["--out", out, "--resume", "--no-progress", "--devices", "1", "--workers", "1"])
    assert summary["status"] == "completed"  # the run is complete: nothing to do, nothing changed


def test_a_corrupt_lr_range_json_is_named_before_the_run_folder_exists(tmp_path, capsys):
    sweep = tmp_path / "sweep.json"
    sweep.write_text('{"settings": {"start_lr": 1e-4, "end')  # a truncated copy
    argv = ["--data", "synthetic", "--lr-max", "auto", "--lr-range-json", str(sweep), "--out", str(tmp_path / "r")]
    with pytest.raises(SystemExit) as exc:
        train.main(argv)
    assert exc.value.code == 2
    assert f"--lr-range-json {sweep}: not readable JSON" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_an_unwritable_out_is_named_before_the_data_loads(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit) as exc:
        train.main(["--data", "/nowhere", "--out", str(tmp_path / "file" / "run")])
    assert exc.value.code == 2 and "is a file, not a folder" in capsys.readouterr().err  # before --data fails

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(records.tempfile, "TemporaryFile", read_only)
    with pytest.raises(SystemExit) as exc:
        train.main(["--data", "/nowhere", "--out", str(tmp_path / "ro" / "run")])
    assert exc.value.code == 2
    assert f"--out {tmp_path / 'ro' / 'run'}: cannot write in {tmp_path} (Permission denied)" in capsys.readouterr().err


class FakeSteps:
    """Steps that record when each is dispatched and how long it takes; state is the step count."""

    batch_size, mesh = 4, None

    def __init__(self, events, seconds=0.0):
        self.events, self.seconds = events, seconds

    def train(self, state, batch):
        self.events.append("dispatch")
        time.sleep(self.seconds)
        return state + 1, {"loss": jnp.float32(1.0), "accuracy": jnp.float32(0.5), "lr": jnp.float32(0.1)}


def batches(n):
    def gen():
        for _ in range(n):
            yield np.zeros((4, 32, 32, 3), np.float32), np.zeros(4, np.int32)

    return gen()


def test_at_most_two_steps_are_in_flight_on_a_cpu(monkeypatch):
    # Ctrl-C waits for the steps already dispatched: an unbounded queue made it 343 s at full width.
    events = []
    real_block = jax.block_until_ready

    def block(x):
        events.append("wait")
        return real_block(x)

    monkeypatch.setattr(train.jax, "block_until_ready", block)
    monkeypatch.setattr(parallel, "put_batch", lambda b, mesh: b)
    result = train.run_epoch(FakeSteps(events), 0, batches(12), StopRequest(), Progress(False, 12, "x"))
    assert result.state == 12 and len(result.metrics) == 12 and result.completed
    assert train.steps_in_flight() == 1
    dispatched = waited = 0
    for event in events:  # one step running and one queued at most, whenever a step is dispatched
        if event == "dispatch":
            dispatched += 1
            assert dispatched - waited <= 2
        else:
            waited += 1
    assert (dispatched, waited) == (12, 11)


def test_the_time_estimate_comes_from_finished_steps(monkeypatch, capsys):
    monkeypatch.setattr(parallel, "put_batch", lambda b, mesh: b)
    # 0.1 s a step, 24 x 97 steps left: about 233 s, under the 600 s threshold: no line.
    train.run_epoch(FakeSteps([], 0.1), 0, batches(6), StopRequest(), Progress(False, 6, "x"), 24 * 97)
    assert "One step takes" not in capsys.readouterr().err
    train.run_epoch(FakeSteps([], 0.1), 0, batches(6), StopRequest(), Progress(False, 6, "x"), 100_000)
    found = re.search(
        r"One step takes ([0-9.]+) s here: the 100000 remaining steps will take about ([0-9.]+) h",
        capsys.readouterr().err,
    )
    assert found and 0.09 < float(found.group(1)) < 0.2 and 2.5 < float(found.group(2)) < 5.6


def test_the_first_data_load_is_announced(tmp_path, capsys):
    train.train_and_evaluate(tiny_config(tmp_path, epochs=1, peak_epoch=0.5, tta=False))
    out = capsys.readouterr().out
    assert out.index("Loading CIFAR-10 (synthetic) ...") < out.index("640 train / 200 test images")


def hold_lock(folder):
    """A process that holds `folder`'s run lock until it is killed; returns it once the lock is held."""
    code = (
        "import sys, time; from jaxcifar import records\n"
        "with records.folder_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(600)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def cli_error(capsys, *argv):
    """(exit code, stderr) of `python -m jaxcifar.train ARGV` that must exit non-zero."""
    with pytest.raises(SystemExit) as exc:
        train.main(list(argv))
    return exc.value.code, capsys.readouterr().err


def test_a_folder_in_use_by_another_run_is_refused_and_left_as_it_is(tiny_run, tmp_path, capsys):
    out, finished = tmp_path / "busy", tmp_path / "finished"
    shutil.copytree(tiny_run[0], finished)
    holders = [hold_lock(out), hold_lock(finished)]
    try:
        # a new run, and a resume of a run in use: exit 2 at once, naming the folder and the process
        code, err = cli_error(capsys, "--data", "synthetic", "--epochs", "1", "--width", "4", "--out", str(out))
        assert code == 2 and f"error: {out} is in use by another run (process {holders[0].pid})" in err
        assert [p.name for p in out.iterdir()] == [records.LOCK]
        code, err = cli_error(capsys, "--out", str(finished), "--resume")
        assert code == 2 and f"{finished} is in use by another run (process {holders[1].pid})" in err
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()
    # the lock dies with its process: the folder takes a run again
    summary = train.train_and_evaluate(TrainConfig(**{**TINY_RUN, "n_train": 320, "n_test": 64}, out=str(out)))
    assert summary["status"] == "completed"


def test_a_run_without_a_finished_checkpoint_starts_again_and_refuses_other_data(tiny_run, tmp_path, capsys):
    original, summary, config, ds = tiny_run
    run = tmp_path / "run"
    shutil.copytree(original, run)
    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints" / "0.orbax-checkpoint-tmp-1764770000").mkdir(parents=True)  # a save cut short
    resume = TrainConfig(out=str(run), resume=True, progress=False)
    before = (run / "metrics.json").read_bytes()
    other = data_lib.synthetic(n_train=640, n_test=200, seed=1)
    refused = (
        r"--resume: .*run was trained on synthetic\(seed=0\) \(640 train / 200 test images, sha256 [0-9a-f]{12}\), "
        r"but the data now is synthetic\(seed=1\) .*: other images"
    )
    with pytest.raises(ValueError, match=refused):
        train.train_and_evaluate(resume, other)
    assert (run / "metrics.json").read_bytes() == before  # refused before anything was written
    again = train.train_and_evaluate(resume, ds)
    assert "has no intact finished checkpoint (a run stopped before its first was written" in capsys.readouterr().out
    # its first step comes from its seed: the run is the same run again
    assert again["final_test_accuracy"] == summary["final_test_accuracy"] and again["epochs_completed"] == 3
    for key in ("train_loss", "test_accuracy", "test_accuracy_tta", "lr"):
        assert read(run / "metrics.json")["epochs"][key] == read(original / "metrics.json")["epochs"][key], key


def test_a_resumed_run_whose_data_moved_says_to_pass_the_new_path(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run[0], run)
    saved = read(run / "config.json")
    saved["config"] = {**saved["config"], "data": str(tmp_path / "gone.tar.gz"), "epochs": 4}
    records.write_json(run / "config.json", saved)
    code, err = cli_error(capsys, "--out", str(run), "--resume")
    assert code == 2 and "--resume: the run's data is not there" in err and "pass --data NEW_PATH" in err


@pytest.mark.parametrize("every, drawn_after", [(0.0, [1, 2, 3]), (3600.0, [3])])
def test_the_figures_are_redrawn_while_a_run_trains_at_most_every_so_often(tmp_path, monkeypatch, every, drawn_after):
    from jaxcifar import plots

    calls = []
    real = plots.run_figures

    def record(out, history, lrs, steps_per_epoch, tag):
        calls.append(len(history["test_accuracy"]))
        assert (out / "metrics.csv").exists()  # the figures come from what is already on disk
        return real(out, history, lrs, steps_per_epoch, tag)

    monkeypatch.setattr(plots, "run_figures", record)
    monkeypatch.setattr(train, "FIGURES_EVERY_S", every)
    train.train_and_evaluate(tiny_config(tmp_path, epochs=3))
    assert calls == drawn_after  # after epochs 1 and 2 while training (every 0 s), and at the end
    assert (tmp_path / "run" / "accuracy.png").exists()


def test_config_repeats_a_run_with_the_flags_given_beside_it_winning(tmp_path, tiny_run, capsys):
    run = tiny_run[0]
    source = run / "config.json"
    saved = TrainConfig.from_json(read(source)["config"])
    argv = ["--config", str(source), "--epochs", "2", "--peak-epoch", "1", "--no-gradcam", "--out", str(tmp_path / "b")]
    again = flags.parse([*argv, "--no-progress"], "p", "d")
    differ = {f.name for f in dataclasses.fields(TrainConfig) if getattr(again, f.name) != getattr(saved, f.name)}
    assert differ == {"epochs", "gradcam", "out", "from_config", "changed"}  # (the tiny run's peak is at epoch 1 too)
    assert again.changed == ("epochs", "gradcam", "out", "peak_epoch", "progress")  # every flag given beside it
    assert again.from_config == str(source) and again.lr_max == saved.lr_max  # the LR pair it trained with
    summary = train.main([*argv, "--no-progress"])
    assert summary["status"] == "completed" and summary["epochs_completed"] == 2
    written = read(tmp_path / "b" / "config.json")
    assert written["config"]["from_config"] == str(source) and written["config"]["changed"] == list(again.changed)
    assert written["config"]["width"] == saved.width and written["data"]["sha256"] == read(source)["data"]["sha256"]
    capsys.readouterr()
    not_a_config = f"--config {run / 'summary.json'}: not the config.json of a jaxcifar run"
    for wrong, message in ((run, f"--config {run}: no such file (give RUN/config.json, the file)"),
                           (run / "summary.json", not_a_config)):  # fmt: skip
        with pytest.raises(SystemExit) as exc:
            train.main(["--config", str(wrong), "--out", str(tmp_path / "c")])
        assert exc.value.code == 2 and message in capsys.readouterr().err and not (tmp_path / "c").exists()
