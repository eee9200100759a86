"""The input pipeline: which images go into which batch, on which threads, ahead of time.

`BatchLoader` owns the order (a fresh permutation of the training set every
epoch, the test set in order), the rows of each global batch that this process
feeds (multi-host training), and a pool of threads that make the next batches
while the device works on the current one. The pixel work itself is
`jaxcifar.augment`'s. `load_data` and `make_train_loader` turn a run's config into
its data and its training batches, so the driver, the LR range test and the
benchmarks build them the same way.

Randomness is explicit: batch b of epoch e draws from
`np.random.default_rng([seed, epoch, b])`, and the epoch's shuffle from
`np.random.default_rng([seed, epoch])`. So a run is reproducible, batches can be
made on several threads in any order, and a resumed run sees the same data.

This module imports no JAX.
"""

from __future__ import annotations

import concurrent.futures
from collections import deque
from collections.abc import Iterator

import numpy as np

from jaxcifar.augment import (
    AUGMENTERS,
    AugmentConfig,
    Augmenter,
    _check_images,
    apply_numpy,
    augment_albumentations,
    draw,
    normalize,
)
from jaxcifar.config import TrainConfig
from jaxcifar.data import CIFAR10, load_cifar10, resolve_source


class BatchLoader:
    """Batches of `(images float32[B, 32, 32, 3], labels int32[B])` for one split.

    With augment="device", training batches are instead `(images uint8[B, 32,
    32, 3], labels, draws int32[B, 5])`, for `augment_device.apply` in the step.
    Train loaders shuffle every epoch, augment, and drop the last partial batch;
    eval loaders keep the order, only normalise, and keep every image. The next
    `prefetch` batches are made on `workers` background threads while the caller
    works on the current one (by default 2 per worker); an exception in a worker
    is raised in the caller.

    With `rows`, each batch holds only those rows of the global batch (a
    process's share in multi-host training), exactly as the global batch has them.

    Example:
      loader = BatchLoader(ds.train_images, ds.train_labels, 512, train=True, seed=0)
      for images, labels in loader.epoch(0):
          state, metrics = train_step(state, (images, labels))
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        *,
        train: bool,
        seed: int = 0,
        augment: Augmenter = "numpy",
        config: AugmentConfig | None = None,
        workers: int = 1,
        prefetch: int | None = None,
        rows: slice | None = None,
    ):
        _check_images(images)
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if train and batch_size > len(images):
            raise ValueError(
                f"batch_size {batch_size} is larger than the {len(images)} training images: "
                "every batch would be dropped. Use a smaller --batch-size or more --n-train."
            )
        prefetch = 2 * workers if prefetch is None else prefetch  # keep every worker busy
        if workers < 1 or prefetch < 1:
            raise ValueError(f"workers and prefetch must be >= 1, got {workers}, {prefetch}")
        self.images, self.labels = images, np.asarray(labels, np.int32)
        self.batch_size, self.train, self.seed = batch_size, train, seed
        self.config, self.workers, self.prefetch = config or AugmentConfig(), workers, prefetch
        if augment not in AUGMENTERS:
            raise ValueError(f"augment must be one of {AUGMENTERS}, got {augment!r}")
        self.augment = augment if train else None
        self.rows = rows if rows is not None else slice(None)

    def __len__(self) -> int:
        """Batches per epoch."""
        n, b = len(self.images), self.batch_size
        return n // b if self.train else -(-n // b)

    def order(self, epoch: int) -> np.ndarray:
        """The image order of an epoch: a fresh permutation in training."""
        if not self.train:
            return np.arange(len(self.images))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.images))

    def batch(self, epoch: int, index: int, order: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """Batch `index` of `epoch`; a pure function of (seed, epoch, index)."""
        order = self.order(epoch) if order is None else order
        idx = order[index * self.batch_size : (index + 1) * self.batch_size]
        mine = idx[self.rows]
        if self.augment is None:
            return normalize(self.images[mine], self.config), self.labels[mine]
        rng = np.random.default_rng([self.seed, epoch, index])
        if self.augment in ("numpy", "device"):  # draw for the whole batch, apply to this process's rows
            draws = draw(len(idx), rng, self.config, self.images.shape[1])[self.rows]
            if self.augment == "device":
                return self.images[mine], self.labels[mine], draws.packed()
            return apply_numpy(self.images[mine], draws, self.config), self.labels[mine]
        # albumentations draws per batch: augment the whole batch, keep the rows.
        return augment_albumentations(self.images[idx], rng, self.config)[self.rows], self.labels[mine]

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[np.ndarray, ...]]:
        """The batches of an epoch from batch `start` on, made ahead in the background."""
        order = self.order(epoch)
        indices = iter(range(start, len(self)))
        pool = concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix="jaxcifar-batches")
        pending: deque[concurrent.futures.Future] = deque()
        try:
            for i in indices:
                pending.append(pool.submit(self.batch, epoch, i, order))
                if len(pending) >= self.prefetch:
                    break
            while pending:
                result = pending.popleft().result()  # re-raises a worker's exception here
                nxt = next(indices, None)
                if nxt is not None:
                    pending.append(pool.submit(self.batch, epoch, nxt, order))
                yield result
        finally:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)


def load_data(config: TrainConfig) -> CIFAR10:
    """The data a config names (source, folders, subsets, seed)."""
    return load_cifar10(
        resolve_source(config.data),
        data_dir=config.data_dir,
        cache_dir=config.cache_dir,
        n_train=config.n_train,
        n_test=config.n_test,
        seed=config.seed,
    )


def device_augment(config: TrainConfig) -> AugmentConfig | None:
    """The recipe for the training step to apply, with --augment device; else None."""
    return config.augmentation if config.augment == "device" else None


def make_train_loader(config: TrainConfig, ds: CIFAR10, rows: slice | None = None) -> BatchLoader:
    """Augmented training batches as the config says; `rows` of each (this process's share)."""
    return BatchLoader(
        ds.train_images,
        ds.train_labels,
        config.batch_size,
        train=True,
        seed=config.seed,
        augment=config.augment,
        config=config.augmentation,
        workers=config.augment_threads,
        rows=rows,
    )
