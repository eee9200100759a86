"""Tests for jaxcifar.augment_device: the same pixels as the NumPy path, in the step."""

import dataclasses

import jax
import numpy as np
import pytest
from tiny import TINY_RUN

from jaxcifar import augment as aug
from jaxcifar import augment_device, parallel, steps, train
from jaxcifar import data as data_lib
from jaxcifar.augment import AugmentConfig
from jaxcifar.config import TrainConfig
from jaxcifar.loader import BatchLoader
from jaxcifar.model import ResNet9
from jaxcifar.schedule import one_cycle


def random_images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "config",
    [AugmentConfig(), AugmentConfig(cutout=0), AugmentConfig(cutout_prob=0.5, cutout_placement="clip")],
    ids=["inside", "no-cutout", "clip"],
)
def test_device_pixels_equal_the_numpy_path(config):
    images = random_images(64)
    draws = aug.draw(64, np.random.default_rng(3), config)
    # The corner cases: no offset, the largest offset, both flips, holes at both ends
    # (partly outside the image with "clip"; -8: no hole).
    draws.dy[:4], draws.dx[:4], draws.flip[:4] = [0, 8, 0, 8], [0, 8, 8, 0], [False, True, False, True]
    clip = config.cutout_placement == "clip"
    draws.hole_y[:3], draws.hole_x[:3] = ([-4, 28, -8], [8, -4, -8]) if clip else ([0, 24, 0], [24, 0, 0])
    expected = aug.apply_numpy(images, draws, config)
    got = np.asarray(jax.jit(augment_device.apply, static_argnums=2)(images, draws.packed(), config))
    assert got.dtype == np.float32 and got.shape == (64, 32, 32, 3)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert np.array_equal(got == 0.0, expected == 0.0)  # the holes exactly
    cut = np.all(got == 0.0, axis=-1).sum(axis=(1, 2))
    if config == AugmentConfig():
        assert np.all(cut == 64)  # one 8x8 hole each
    elif clip:
        assert list(cut[:3]) == [4 * 8, 4 * 4, 0]  # 4 rows x 8 columns, 4 x 4 in the corner, none


def test_packed_draws_hold_each_choice_in_its_column():
    draws = aug.draw(5, np.random.default_rng(0))
    packed = draws.packed()
    assert packed.dtype == np.int32 and packed.shape == (5, 5)
    np.testing.assert_array_equal(packed[:, 2], draws.flip.astype(np.int32))
    np.testing.assert_array_equal(
        packed[:, [0, 1, 3, 4]], np.stack([draws.dy, draws.dx, draws.hole_y, draws.hole_x], 1)
    )


def test_device_loader_sends_uint8_and_the_numpy_paths_draws():
    images, labels = random_images(256, 1), np.arange(256, dtype=np.int32) % 10
    host = BatchLoader(images, labels, 64, train=True, seed=5, augment="numpy")
    device = BatchLoader(images, labels, 64, train=True, seed=5, augment="device")
    for (x, y), (raw, y_dev, draws) in zip(host.epoch(2), device.epoch(2)):
        assert raw.dtype == np.uint8 and draws.shape == (64, 5)  # 4x fewer image bytes than float32
        np.testing.assert_array_equal(y_dev, y)
        np.testing.assert_allclose(np.asarray(augment_device.apply(raw, draws)), x, atol=1e-6)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"expected uint8 images \[N, H, W, 3\] and draws \[N, 5\], got float32"):
        augment_device.apply(np.zeros((2, 32, 32, 3), np.float32), np.zeros((2, 5), np.int32))
    with pytest.raises(ValueError, match=r"and \[2, 4\]"):
        augment_device.apply(np.zeros((2, 32, 32, 3), np.uint8), np.zeros((2, 4), np.int32))


def test_a_step_on_device_augmented_batches_equals_the_host_step():
    images, labels = random_images(64, 2), np.arange(64, dtype=np.int32) % 10
    mesh = parallel.make_mesh(1)
    schedule = one_cycle(0.01, 0.1, 10)
    state = steps.create_train_state(ResNet9(width=4), steps.make_optimizer(schedule), jax.random.key(0))
    host_steps = steps.compile_steps(state, mesh, 64, schedule, with_eval=False)
    device_steps = steps.compile_steps(state, mesh, 64, schedule, with_eval=False, augment=AugmentConfig())
    x, y = BatchLoader(images, labels, 64, train=True, augment="numpy").batch(0, 0)
    raw_batch = BatchLoader(images, labels, 64, train=True, augment="device").batch(0, 0)
    copy = jax.tree.map(np.array, state)  # the steps donate their input state
    other = BatchLoader(images, labels, 64, train=True, augment="device", seed=1).batch(0, 0)  # other draws
    copy2 = jax.tree.map(np.array, state)
    a, ma = host_steps.train(state, parallel.put_batch((x, y), mesh))
    b, mb = device_steps.train(copy, parallel.put_batch(raw_batch, mesh))
    c, _ = device_steps.train(copy2, parallel.put_batch(other, mesh))
    np.testing.assert_allclose(float(mb["loss"]), float(ma["loss"]), rtol=1e-5)

    def apart(s, t):  # ||s - t|| / ||t|| over all parameters
        s, t = (np.concatenate([np.ravel(p) for p in jax.tree.leaves(u.params)]) for u in (s, t))
        return np.linalg.norm(s - t) / np.linalg.norm(t)

    # The same step to float rounding (the images differ by 1e-6, the normalisation's
    # rounding): measured 2.0e-5 apart with XLA's own CPU kernels (1.6e-8 with
    # YNNPACK's). Other random choices put it 1.0e-2 apart, 500x as far.
    assert apart(b, a) < 1e-4 and apart(c, a) > 100 * apart(b, a)


def test_a_run_with_device_augmentation_sweeps_and_trains(tmp_path):
    ds = data_lib.synthetic(n_train=640, n_test=200, seed=0)
    config = TrainConfig(**{**TINY_RUN, "augment": "device", "lr_max": None, "lr_range_iters": 20})
    summary = train.train_and_evaluate(dataclasses.replace(config, out=str(tmp_path / "run")), ds)
    assert summary["status"] == "completed" and summary["final_train_accuracy"] > 0.5
    assert summary["lr"]["rule"] == "plateau" and (tmp_path / "run" / "lr_range.json").exists()
