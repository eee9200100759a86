"""Where arrays live: one data-parallel mesh for one device or many.

Training runs under `jax.jit` on a 1-D `Mesh` of every device, with the axis
"data". A batch is split along its first axis over that axis; parameters,
optimizer state and BatchNorm statistics are replicated. The program is the
same for one device and for many (no `pmap`): XLA inserts the cross-device
reductions, so BatchNorm statistics are those of the global batch, exactly as
on one device.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_mesh(devices: list | None = None) -> Mesh:
    """A 1-D mesh over `devices` (default: every device of every process)."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading axis split over the devices."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """A global batch must split evenly over devices (and processes)."""
    n = mesh.devices.size
    if batch_size % n:
        raise ValueError(
            f"the batch of {batch_size} images does not divide over {n} devices; "
            f"use a --batch-size that is a multiple of {n} (for example {max(n, batch_size - batch_size % n)})"
        )


def put_replicated(tree: Any, mesh: Mesh) -> Any:
    """Copies a pytree of host or device arrays to every device of the mesh."""
    return jax.device_put(tree, replicated(mesh))


def put_batch(arrays: Any, mesh: Mesh) -> Any:
    """Host arrays of this process's share of a batch -> global arrays split over the mesh.

    With one process the share is the whole batch; with several, each process
    passes its own consecutive slice and the global array is their concatenation.
    """
    sharding = batch_sharding(mesh)
    if jax.process_count() == 1:
        return jax.device_put(arrays, sharding)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sharding, x, (x.shape[0] * jax.process_count(), *x.shape[1:])),
        arrays,
    )


def process_slice(batch_size: int) -> slice:
    """The rows of every global batch that this process feeds."""
    per = batch_size // jax.process_count()
    start = jax.process_index() * per
    return slice(start, start + per)
