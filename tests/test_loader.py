"""Tests for jaxcifar.loader: order, coverage, threads, process shares, a config's loader."""

import threading

import numpy as np
import pytest

from jaxcifar import augment as aug
from jaxcifar import loader as loader_lib
from jaxcifar.config import TrainConfig
from jaxcifar.data import synthetic
from jaxcifar.loader import BatchLoader


def labelled(n):
    """Images whose pixel (0, 0, 2) holds the image's index (mod 256) and labels = index."""
    images = np.zeros((n, 32, 32, 3), np.uint8)
    images[:, :, :, 2] = (np.arange(n) % 256)[:, None, None]
    return images, np.arange(n, dtype=np.int32)


def test_train_epoch_covers_every_image_once():
    images, labels = labelled(1000)
    loader = BatchLoader(images, labels, 100, train=True, seed=0)
    assert len(loader) == 10
    seen = np.concatenate([y for _, y in loader.epoch(0)])
    np.testing.assert_array_equal(np.sort(seen), np.arange(1000))
    # A new epoch, a new order; the same epoch, the same order.
    again = np.concatenate([y for _, y in loader.epoch(0)])
    other = np.concatenate([y for _, y in loader.epoch(1)])
    np.testing.assert_array_equal(seen, again)
    assert not np.array_equal(seen, other)


def test_train_drops_the_last_partial_batch_and_eval_keeps_it():
    images, labels = labelled(1030)
    train = BatchLoader(images, labels, 100, train=True)
    batches = list(train.epoch(0))
    assert len(batches) == len(train) == 10
    assert all(x.shape == (100, 32, 32, 3) and x.dtype == np.float32 and y.dtype == np.int32 for x, y in batches)
    assert len(np.unique(np.concatenate([y for _, y in batches]))) == 1000
    test = BatchLoader(images, labels, 100, train=False)
    batches = list(test.epoch(0))
    assert len(batches) == len(test) == 11 and batches[-1][0].shape[0] == 30
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), labels)  # in order
    # Test images are only normalised: no crop, flip or hole.
    np.testing.assert_allclose(batches[0][0], aug.normalize(images[:100]), rtol=1e-6)


def test_workers_and_resume_give_the_same_batches():
    images, labels = labelled(600)
    one = BatchLoader(images, labels, 50, train=True, seed=3, workers=1)
    many = BatchLoader(images, labels, 50, train=True, seed=3, workers=2, prefetch=4)
    a = list(one.epoch(2))
    b = list(many.epoch(2))
    tail = list(one.epoch(2, start=7))
    assert len(a) == 12 and len(tail) == 5
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    for (xa, ya), (xt, yt) in zip(a[7:], tail):
        np.testing.assert_array_equal(xa, xt)
        np.testing.assert_array_equal(ya, yt)


def test_worker_exception_reaches_the_caller_and_threads_stop(monkeypatch):
    images, labels = labelled(400)
    loader = BatchLoader(images, labels, 50, train=True)
    calls = {"n": 0}
    real = loader_lib.apply_numpy

    def failing(*args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("augmentation exploded")
        return real(*args)

    monkeypatch.setattr(loader_lib, "apply_numpy", failing)
    with pytest.raises(RuntimeError, match="augmentation exploded"):
        for _ in loader.epoch(0):
            pass
    assert not [t for t in threading.enumerate() if t.name.startswith("jaxcifar-batches")]


@pytest.mark.parametrize("name", aug.AUGMENTERS)
def test_process_shares_of_a_batch_make_the_whole_batch(name):
    # Two processes each make half of every global batch; together they make
    # exactly the batch one process makes.
    images, labels = labelled(256)
    whole = BatchLoader(images, labels, 64, train=True, seed=1, augment=name)
    halves = [
        BatchLoader(images, labels, 64, train=True, seed=1, augment=name, rows=slice(i * 32, (i + 1) * 32))
        for i in range(2)
    ]
    for batch, first, second in zip(whole.epoch(3), halves[0].epoch(3), halves[1].epoch(3)):
        assert len(batch) == (3 if name == "device" else 2) and first[0].shape == (32, 32, 32, 3)
        for x, x0, x1 in zip(batch, first, second):  # images, labels (and draws)
            np.testing.assert_array_equal(np.concatenate([x0, x1]), x)


def test_closing_an_epoch_early_stops_its_threads():
    images, labels = labelled(400)
    it = BatchLoader(images, labels, 50, train=True, prefetch=3).epoch(0)
    next(it)
    it.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("jaxcifar-batches")]


def test_loader_errors():
    images, labels = labelled(100)
    with pytest.raises(ValueError, match=r"batch_size 512 is larger than the 100 training images"):
        BatchLoader(images, labels, 512, train=True)
    with pytest.raises(ValueError, match=r"100 images but 99 labels"):
        BatchLoader(images, labels[:99], 10, train=True)


def test_a_configs_loader_applies_its_augmentation_settings():
    ds = synthetic(n_train=256, n_test=10)
    plain = TrainConfig(batch_size=64, flip_prob=0.0, cutout=0, seed=4)
    x, y = loader_lib.make_train_loader(plain, ds).batch(0, 0)
    assert x.shape == (64, 32, 32, 3) and not np.any(np.all(x == 0.0, axis=-1))  # cutout 0: no hole
    holed = loader_lib.make_train_loader(TrainConfig(batch_size=64, seed=4), ds).batch(0, 0)[0]
    assert np.all(np.all(holed == 0.0, axis=-1).sum(axis=(1, 2)) == 64)  # one 8x8 hole per image
    assert loader_lib.device_augment(plain) is None
    assert loader_lib.device_augment(TrainConfig(augment="device", flip_prob=0.3)).flip_prob == 0.3
    # Cutout on half the images, clipped (--cutout-prob 0.5 --cutout-placement clip): half the
    # images uncut, the others with the part of the hole inside the image (at most 64 pixels).
    original = TrainConfig(batch_size=64, seed=4, cutout_prob=0.5, cutout_placement="clip")
    cut = np.all(loader_lib.make_train_loader(original, ds).batch(0, 0)[0] == 0.0, axis=-1).sum(axis=(1, 2))
    assert 16 <= (cut > 0).sum() <= 48 and cut.max() == 64 and 16 <= cut[cut > 0].min()
    # rows: this process's share of each global batch
    half = loader_lib.make_train_loader(plain, ds, rows=slice(0, 32)).batch(0, 0)
    np.testing.assert_array_equal(half[1], y[:32])


def test_load_data_keeps_the_configs_subset():
    ds = loader_lib.load_data(TrainConfig(data="synthetic", n_train=200, n_test=50))
    assert ds.train_images.shape == (200, 32, 32, 3) and len(ds.test_labels) == 50
    assert np.bincount(ds.train_labels).tolist() == [20] * 10  # class-stratified
