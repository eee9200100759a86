"""Tests for jaxcifar.checkpoint: exact round trips, what is kept, old formats, Grad-CAM's weights."""

import functools
import gc
import sys

import jax
import numpy as np
import pytest

from jaxcifar import parallel, steps
from jaxcifar.checkpoint import Checkpoints, abstract_state, load_variables
from jaxcifar.config import TrainConfig
from jaxcifar.model import ResNet9
from jaxcifar.runlog import Position
from jaxcifar.steps import state_shapes

CONFIG = TrainConfig(width=4, batch_size=16)


def schedule(step):
    return 0.05


def fresh_state(config=CONFIG):
    return parallel.put_replicated(steps.initial_state(config, schedule), parallel.make_mesh(1))


def leaves_equal(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


@functools.cache
def donating_step():
    rng = np.random.default_rng(0)
    batch = (rng.normal(size=(16, 32, 32, 3)).astype(np.float32), rng.integers(0, 10, 16).astype(np.int32))
    step = jax.jit(functools.partial(steps.train_step, schedule=schedule), donate_argnums=0)
    return lambda state: step(state, batch)[0]


def test_a_restored_state_equals_the_saved_one_bit_for_bit(tmp_path):
    state = donating_step()(fresh_state())
    kept = jax.device_get(state)
    with Checkpoints(tmp_path) as ckpt:
        assert ckpt.save(state, Position(epoch=0, batch=1, step=1), note="x")
        # The next steps donate the saved buffers while the save may still be writing.
        for _ in range(3):
            state = donating_step()(state)
    with Checkpoints(tmp_path) as ckpt:
        restored, meta = ckpt.restore(abstract_state(fresh_state(), parallel.make_mesh(1)))
    assert leaves_equal(restored, kept) and int(restored.step) == 1
    assert (meta["epoch"], meta["batch"], meta["step"], meta["note"], meta["format"]) == (0, 1, 1, "x", 2)
    assert not leaves_equal(restored.params, jax.device_get(state.params))  # the run went on


def test_the_latest_and_the_best_are_kept(tmp_path):
    state = fresh_state()
    accuracies = {10: 0.5, 20: 0.7, 30: 0.6, 40: 0.7}  # step 40 ties step 20: the earlier stays best
    with Checkpoints(tmp_path) as ckpt:
        ckpt.save(state, Position(0, 0, 0))
        for step, acc in accuracies.items():
            ckpt.save(state, Position(step // 10, 0, step), test_accuracy=acc)
            ckpt.wait()
        assert ckpt.steps() == [20, 40] and ckpt.best_step() == 20 and ckpt.latest_step() == 40
        ckpt.save(state, Position(4, 3, 43))  # a mid-epoch checkpoint (Ctrl-C): no accuracy
        ckpt.wait()
        assert ckpt.steps() == [20, 43] and ckpt.best_step() == 20
        assert not ckpt.save(state, Position(4, 3, 43))  # the same step twice: nothing to do
    with Checkpoints(tmp_path) as ckpt:  # reopened: the best is remembered
        ckpt.save(state, Position(5, 0, 50), test_accuracy=0.65)
        ckpt.wait()
        assert ckpt.steps() == [20, 50] and ckpt.best_step() == 20
        ckpt.save(state, Position(6, 0, 60), test_accuracy=0.9)
        ckpt.wait()
        assert ckpt.steps() == [60] and ckpt.best_step() == 60


def test_a_checkpoint_of_another_width_is_a_clear_error_and_leaves_nothing_behind(tmp_path, monkeypatch):
    with Checkpoints(tmp_path) as ckpt:
        ckpt.save(fresh_state(), Position(0, 0, 0))
    wider = fresh_state(TrainConfig(width=8))
    # width 4 -> 8: the first array by name, batch_stats/layer1/bn/mean, has 2 x 4 channels, not 2 x 8
    message = r"does not fit this model \(batch_stats/layer1/bn/mean has shape \(8,\) there, \(16,\) here\)"
    ignored = []  # what Python would print as "Exception ignored in: <coroutine ...>" at exit
    monkeypatch.setattr(sys, "unraisablehook", ignored.append)
    with Checkpoints(tmp_path) as ckpt, pytest.raises(ValueError, match=message + ".*another --width"):
        ckpt.restore(abstract_state(wider, parallel.make_mesh(1)))
    gc.collect()
    assert ignored == []
    fewer = fresh_state().replace(batch_stats={})  # a model without BatchNorm statistics
    with Checkpoints(tmp_path) as ckpt, pytest.raises(ValueError, match=r"batch_stats/layer1/bn/mean is only in the"):
        ckpt.restore(abstract_state(fewer, parallel.make_mesh(1)))


def test_load_variables_reads_the_best_or_the_latest(tmp_path):
    first = fresh_state()
    later = donating_step()(fresh_state())
    later_params = jax.device_get(later.params)
    with Checkpoints(tmp_path) as ckpt:
        ckpt.save(first, Position(0, 0, 0))
        with pytest.raises(FileNotFoundError):
            load_variables(tmp_path, state_shapes(CONFIG), "best")
        ckpt.save(first, Position(1, 0, 10), test_accuracy=0.8)
        ckpt.save(later, Position(2, 0, 20), test_accuracy=0.3)
    best = load_variables(tmp_path, state_shapes(CONFIG), "best")
    latest = load_variables(tmp_path, state_shapes(CONFIG), "latest")
    assert leaves_equal(best["params"], jax.device_get(first.params))
    assert leaves_equal(latest["params"], later_params)
    logits = ResNet9(width=4).apply(best, np.zeros((2, 32, 32, 3), np.float32))
    assert logits.shape == (2, 10)


def test_a_run_without_an_evaluated_epoch_points_to_the_latest(tmp_path):
    with Checkpoints(tmp_path) as ckpt:
        ckpt.save(fresh_state(), Position(0, 0, 0))
    with pytest.raises(FileNotFoundError, match=r"no best checkpoint .*diverged.*use --checkpoint latest"):
        load_variables(tmp_path, state_shapes(CONFIG), "best")
    with pytest.raises(FileNotFoundError, match=r"no checkpoints in .*jaxcifar run folder"):
        load_variables(tmp_path / "elsewhere", state_shapes(CONFIG))
