"""Tests for jaxcifar.train: the optimizer, the steps, the driver, resume, failures."""

import dataclasses
import functools
import json
import os
import re
import signal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from tiny import TINY_RUN

from jaxcifar import config as config_lib
from jaxcifar import data as data_lib
from jaxcifar import parallel, train
from jaxcifar.config import TrainConfig
from jaxcifar.model import ResNet9
from jaxcifar.schedule import one_cycle

# A tiny run: width 4, 640 synthetic images, batches of 64 (10 steps per epoch).
TINY = {**TINY_RUN, "epochs": 3}


@pytest.fixture(scope="module")
def tiny_data():
    return data_lib.synthetic(n_train=640, n_test=200, seed=0)


def tiny_config(tmp_path, name="run", **kw):
    return TrainConfig(**{**TINY, "out": str(tmp_path / name), **kw})


def leaves_equal(a, b):
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


# --- optimizer and steps -----------------------------------------------------------


@pytest.mark.parametrize("nesterov", [False, True])
def test_optimizer_is_pytorch_sgd_with_weight_decay(nesterov):
    # PyTorch SGD (dampening 0): d = g + wd * w; buf = m * buf + d (buf = d at
    # the first step); step = d + m * buf if nesterov else buf; w -= lr * step.
    lrs = [0.1, 0.2, 0.05]
    wd, m = 5e-3, 0.9
    tx = train.make_optimizer(lambda step: jnp.asarray(lrs)[step], m, nesterov, wd)
    w = jnp.array([1.0, -2.0, 0.5])
    grads = [jnp.array([0.3, 0.1, -0.2]), jnp.array([-0.1, 0.4, 0.0]), jnp.array([0.2, 0.2, 0.2])]
    state = tx.init(w)
    w_ref, buf = np.array(w, np.float64), None
    for lr, g in zip(lrs, grads):
        updates, state = tx.update(g, state, w)
        w = optax.apply_updates(w, updates)
        d = np.asarray(g, np.float64) + wd * w_ref
        buf = d if buf is None else m * buf + d
        w_ref = w_ref - lr * (d + m * buf if nesterov else buf)
    np.testing.assert_allclose(np.asarray(w), w_ref, rtol=1e-6)


def test_train_step_learns_and_reports_the_lr(tiny_data):
    model = ResNet9(width=4)
    schedule = optax.linear_schedule(0.05, 0.01, 30)
    state = train.create_train_state(model, train.make_optimizer(schedule), jax.random.key(0))
    step = jax.jit(lambda s, b: train.train_step(s, b, schedule))
    from jaxcifar.augment import normalize

    batch = (normalize(tiny_data.train_images[:64]), tiny_data.train_labels[:64])
    stats0 = state.batch_stats
    losses = []
    for i in range(30):
        state, metrics = step(state, batch)
        np.testing.assert_allclose(float(metrics["lr"]), float(schedule(i)), rtol=1e-6)
        losses.append(float(metrics["loss"]))
    assert int(state.step) == 30
    assert losses[-1] < 0.2 * losses[0]
    assert float(metrics["accuracy"]) > 0.9
    assert not leaves_equal(stats0, state.batch_stats)


def test_eval_step_ignores_padding(tiny_data):
    model = ResNet9(width=4)
    state = train.create_train_state(model, train.make_optimizer(0.1), jax.random.key(1))
    from jaxcifar.augment import normalize

    images, labels = normalize(tiny_data.test_images[:50]), tiny_data.test_labels[:50]
    padded = train.pad_batch(images, labels, 64)
    assert padded[0].shape == (64, 32, 32, 3) and padded[2].sum() == 50
    ev = jax.jit(train.eval_step)
    full = ev(state, padded)
    logits = model.apply({"params": state.params, "batch_stats": state.batch_stats}, images)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    np.testing.assert_allclose(float(full["loss_sum"]), float(loss.sum()), rtol=1e-5)
    assert float(full["correct"]) == float((jnp.argmax(logits, -1) == labels).sum())
    assert float(full["count"]) == 50


def test_flip_tta_averages_the_logits_of_image_and_mirror(tiny_data):
    model = ResNet9(width=4)
    state = train.create_train_state(model, train.make_optimizer(0.1), jax.random.key(2))
    from jaxcifar.augment import normalize

    images, labels = normalize(tiny_data.test_images[:50]), tiny_data.test_labels[:50]
    out = jax.jit(functools.partial(train.eval_step, tta=True))(state, train.pad_batch(images, labels, 64))
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    mean = (model.apply(variables, images) + model.apply(variables, np.flip(images, axis=2))) / 2  # NHWC: W = 2
    loss = optax.softmax_cross_entropy_with_integer_labels(mean, labels)
    np.testing.assert_allclose(float(out["tta_loss_sum"]), float(loss.sum()), rtol=1e-5)
    assert float(out["tta_correct"]) == float((jnp.argmax(mean, -1) == labels).sum())
    # Left-right symmetric images are their own mirror: TTA changes nothing (a
    # vertical flip would).
    symmetric = (images + np.flip(images, axis=2)) / 2
    assert not np.allclose(symmetric, np.flip(symmetric, axis=1))
    out = jax.jit(functools.partial(train.eval_step, tta=True))(state, train.pad_batch(symmetric, labels, 64))
    np.testing.assert_allclose(float(out["tta_loss_sum"]), float(out["loss_sum"]), rtol=1e-5)
    assert "tta_correct" not in jax.jit(train.eval_step)(state, train.pad_batch(images, labels, 64))


def test_label_smoothing_matches_its_definition():
    logits = jnp.array([[2.0, 0.0, -1.0]])
    eps = 0.3
    target = np.array([1 - eps + eps / 3, eps / 3, eps / 3])
    logp = np.asarray(jax.nn.log_softmax(logits))[0]
    np.testing.assert_allclose(
        float(train.cross_entropy(logits, jnp.array([0]), eps)[0]), -(target * logp).sum(), rtol=1e-6
    )


# --- the driver ------------------------------------------------------------------


def test_tiny_run_writes_every_output(tmp_path, tiny_data):
    summary = train.train_and_evaluate(tiny_config(tmp_path), tiny_data)
    out = tmp_path / "run"
    for name in (
        "config.json",
        "metrics.json",
        "summary.json",
        "accuracy.png",
        "loss_accuracy.png",
        "one_cycle.png",
        "checkpoints/latest.msgpack",
        "checkpoints/best.msgpack",
    ):
        assert (out / name).exists(), name
    assert not list(out.rglob(".*.tmp"))  # atomic writes leave no temporaries
    assert summary["status"] == "completed" and summary["epochs_completed"] == 3
    # Learnable data: high train accuracy after 3 tiny epochs, test far above
    # chance (the running BatchNorm statistics are still catching up after 30 steps).
    assert summary["final_train_accuracy"] > 0.9 and summary["best_test_accuracy"] > 0.6
    assert summary["best_test_accuracy"] >= summary["final_test_accuracy"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["epochs"]["test_accuracy"]) == 3 and metrics["steps_per_epoch"] == 10
    lrs = np.array(metrics["steps"]["lr"])
    assert len(lrs) == 30
    # The recorded LR is the one-cycle schedule: 0.005 -> 0.05 at step 10 -> 0.005 at step 29.
    np.testing.assert_allclose(lrs[[0, 10, 29]], [0.005, 0.05, 0.005], rtol=1e-5)
    assert metrics["epochs"]["train_loss"][2] < metrics["epochs"]["train_loss"][0]
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["lr_max"] == 0.05 and config["config"]["lr_min"] == 0.005
    assert config["versions"]["jax"] == jax.__version__ and config["platform"] == "cpu"
    assert summary["images_per_second"] > 0 and summary["compile_seconds"] > 0


def test_cifar10_fast_recipe_trains_from_lr_zero(tmp_path, tiny_data):
    fast = config_lib.parse(["--recipe", "cifar10-fast"], "x", "")
    cfg = dataclasses.replace(fast, **{**TINY, "epochs": 2, "lr_max": 0.4, "tta": True, "out": str(tmp_path / "fast")})
    summary = train.train_and_evaluate(cfg, tiny_data)
    assert summary["status"] == "completed" and summary["final_train_accuracy"] > 0.5
    # --tta adds the flip-TTA test metrics beside the plain ones.
    assert 0.1 < summary["final_test_accuracy_tta"] <= 1 and summary["best_test_accuracy_tta"] >= 0.1
    metrics = json.loads((tmp_path / "fast" / "metrics.json").read_text())
    assert len(metrics["epochs"]["test_accuracy_tta"]) == len(metrics["epochs"]["test_loss_tta"]) == 2
    assert metrics["epochs"]["test_accuracy_tta"][-1] == summary["final_test_accuracy_tta"]
    lrs = np.array(metrics["steps"]["lr"])  # 0 -> 0.4 at step 10 -> 0 at step 19
    np.testing.assert_allclose(lrs[[0, 5, 10, 19]], [0.0, 0.2, 0.4, 0.0], atol=1e-6)
    config = json.loads((tmp_path / "fast" / "config.json").read_text())["config"]
    assert (config["recipe"], config["nesterov"], config["logit_scale"], config["lr_min"]) == (
        "cifar10-fast",
        True,
        0.125,
        0.0,
    )


def test_same_seed_same_metrics(tmp_path, tiny_data):
    a = train.train_and_evaluate(tiny_config(tmp_path, "a", epochs=2), tiny_data)
    b = train.train_and_evaluate(tiny_config(tmp_path, "b", epochs=2), tiny_data)
    ma = json.loads((tmp_path / "a" / "metrics.json").read_text())
    mb = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert ma["steps"]["loss"] == mb["steps"]["loss"]
    assert a["final_test_accuracy"] == b["final_test_accuracy"]
    c = train.train_and_evaluate(tiny_config(tmp_path, "c", epochs=2, seed=1), tiny_data)
    mc = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert mc["steps"]["loss"] != ma["steps"]["loss"]
    del c


def final_state(out, config):
    model = train.make_model(config)
    # The structure of a run's optimizer state: a schedule, not a constant LR.
    template = train.create_train_state(model, train.make_optimizer(lambda step: 0.1), jax.random.key(0))
    return train.load_checkpoint(out / "checkpoints" / "latest.msgpack", template)


@pytest.mark.parametrize(
    "kind, nth, stopped_at",
    [("eval", 2, (2, 0)), ("train", 15, (1, 5))],  # (epoch, batch) saved, 0-based: in epoch 2's eval; mid-epoch 2
)
def test_interrupted_and_resumed_run_ends_where_an_uninterrupted_one_does(
    tmp_path, tiny_data, monkeypatch, kind, nth, stopped_at
):
    full_cfg = tiny_config(tmp_path, "full")
    train.train_and_evaluate(full_cfg, tiny_data)

    # Ctrl-C (SIGINT) arrives while the nth train batch is put on the device, or
    # during the nth evaluation; the run finishes that step, saves, and stops.
    calls = {"train": 0, "eval": 0}
    real_put, real_evaluate = parallel.put_batch, train.evaluate

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
    monkeypatch.setattr(train, "evaluate", evaluate_and_interrupt)
    cut_cfg = tiny_config(tmp_path, "cut")
    first = train.train_and_evaluate(cut_cfg, tiny_data)
    monkeypatch.undo()
    assert first["status"] == "interrupted"
    state, extra = final_state(tmp_path / "cut", cut_cfg)
    assert (extra["epoch"], extra["batch"]) == stopped_at
    assert int(state.step) == 10 * stopped_at[0] + stopped_at[1]
    resumed = train.train_and_evaluate(TrainConfig(out=str(tmp_path / "cut"), resume=True, progress=False), tiny_data)
    assert resumed["status"] == "completed"

    full_state, _ = final_state(tmp_path / "full", full_cfg)
    cut_state, _ = final_state(tmp_path / "cut", cut_cfg)
    assert int(cut_state.step) == 30
    assert leaves_equal(full_state.params, cut_state.params)
    assert leaves_equal(full_state.batch_stats, cut_state.batch_stats)
    full_m = json.loads((tmp_path / "full" / "metrics.json").read_text())
    cut_m = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert full_m["steps"] == cut_m["steps"]
    assert full_m["epochs"]["test_accuracy"] == cut_m["epochs"]["test_accuracy"]


def test_nan_loss_stops_with_step_and_lr_and_keeps_the_last_good_checkpoint(tmp_path, tiny_data, capsys):
    cfg = tiny_config(tmp_path, lr_max=1e8, lr_min=1e7)
    summary = train.train_and_evaluate(cfg, tiny_data)
    assert summary["status"] == "diverged"
    err = capsys.readouterr().err
    found = re.search(
        r"Training diverged: the loss became (nan|inf|-inf) at step (\d+) \(epoch 1, batch \d+\) "
        r"with learning rate ([0-9.e+]+)\. The last good checkpoint is kept",
        err,
    )
    assert found, err
    # The LR named is the one-cycle LR of the step named.
    step, lr = int(found.group(2)), float(found.group(3))
    np.testing.assert_allclose(lr, float(one_cycle(1e7, 1e8, 10, 3, 1.0)(step)), rtol=1e-3)
    assert "Lower --lr-max" in err
    state, extra = final_state(tmp_path / "run", cfg)
    # The checkpoint is the last good one: finite parameters from before the blow-up.
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state.params))
    assert extra["epoch"] == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "diverged"
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


def test_existing_output_is_never_overwritten(tmp_path, tiny_data):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(
        FileExistsError, match=r"already exists and is not empty; nothing is overwritten\. Pass --resume"
    ):
        train.train_and_evaluate(tiny_config(tmp_path), tiny_data)
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


def test_resume_needs_a_run_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--resume: .*config.json not found"):
        train.train_and_evaluate(TrainConfig(out=str(tmp_path / "nothing"), resume=True))


def test_incompatible_checkpoint_is_a_clear_error(tmp_path, tiny_data):
    cfg = tiny_config(tmp_path, epochs=2)
    train.train_and_evaluate(cfg, tiny_data)
    wider = train.create_train_state(ResNet9(width=8), train.make_optimizer(0.1), jax.random.key(0))
    with pytest.raises(ValueError, match=r"another --width"):
        train.load_checkpoint(tmp_path / "run" / "checkpoints" / "best.msgpack", wider)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--lr-max", "fast"], "expected 'auto' or a number, got 'fast'"),
        (["--epochs", "10", "--peak-epoch", "12"], "peak-epoch must lie strictly between 0 and epochs=10"),
        (["--dtype", "float16"], "invalid choice: 'float16'"),
        (["--lr-max", "0.01", "--lr-min", "0.1"], "lr-min (0.1) must not exceed lr-max (0.01)"),
        (["--resume"], "--resume continues the run in --out"),
        (["--augment", "torchvision"], "invalid choice: 'torchvision'"),
        (["--recipe", "page"], "invalid choice: 'page'"),
        (["--batch-size", "0"], "batch-size must be positive, got 0"),
        (["--width", "-1"], "width must be positive, got -1"),
    ],
)
def test_bad_flags_are_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        train.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit):
        train.main(["--help"])
    text = capsys.readouterr().out
    for flag in (
        "--data",
        "--data-dir",
        "--epochs",
        "--batch-size",
        "--lr-max",
        "--lr-min",
        "--peak-epoch",
        "--momentum",
        "--nesterov",
        "--weight-decay",
        "--augment",
        "--dtype",
        "--seed",
        "--out",
        "--resume",
        "--n-train",
        "--n-test",
        "--width",
        "--quick",
    ):
        assert flag in text, flag


def test_quick_sets_small_defaults_that_flags_override():
    cfg = config_lib.parse(["--quick"], "x", "")
    assert (cfg.width, cfg.epochs, cfg.n_train, cfg.n_test, cfg.batch_size) == (16, 8, 5000, 1000, 128)
    cfg = config_lib.parse(["--quick", "--epochs", "3"], "x", "")
    assert cfg.epochs == 3 and cfg.width == 16


def test_recipes_set_their_values_that_flags_override():
    default = config_lib.parse([], "x", "")
    assert default.recipe == "original"
    assert (default.nesterov, default.weight_decay, default.logit_scale, default.lr_max) == (False, 5e-3, 1.0, "auto")
    fast = config_lib.parse(["--recipe", "cifar10-fast"], "x", "")
    assert (fast.nesterov, fast.weight_decay, fast.logit_scale, fast.lr_max, fast.lr_min) == (True, 5e-4, 0.125, 0.4, 0)
    assert (fast.epochs, fast.batch_size, fast.peak_epoch, fast.cutout) == (24, 512, 5.0, 8)  # shared with original
    mixed = config_lib.parse(["--recipe", "cifar10-fast", "--lr-max", "0.2", "--quick"], "x", "")
    assert (mixed.lr_max, mixed.lr_min, mixed.weight_decay, mixed.width) == (0.2, 0.0, 5e-4, 16)
    with pytest.raises(ValueError, match=r"recipe must be one of \('original', 'cifar10-fast'\), got 'page'"):
        config_lib.TrainConfig(recipe="page")
    with pytest.raises(ValueError, match="lr-min must be >= 0, got -0.1"):
        config_lib.TrainConfig(lr_min=-0.1)
