"""Where arrays live: one data-parallel mesh for one device or many.

Training runs under `jax.jit` on a 1-D `Mesh` of every device, with the axis
"data". A batch is split along its first axis over that axis; parameters,
optimizer state and BatchNorm statistics are replicated. The program is the
same for one device and for many (no `pmap`): XLA inserts the cross-device
reductions, so BatchNorm statistics are those of the global batch, exactly as
on one device.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_mesh(count: int | None = None) -> Mesh:
    """A 1-D mesh over the first `count` devices (default: every device of every process)."""
    devices = jax.devices()
    if count is not None:
        if not 1 <= count <= len(devices):
            raise ValueError(f"--devices {count}: this run sees {len(devices)} device(s); use 1..{len(devices)}")
        if jax.process_count() > 1 and count != len(devices):
            raise ValueError("--devices must be every device in a multi-process run")
        devices = devices[:count]
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading axis split over the devices."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """A global batch must split evenly over devices (and so over processes)."""
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


def initialize_distributed(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> None:
    """Joins a multi-process run (before any other JAX call).

    Arguments left None come from the environment as jax.distributed.initialize
    reads it (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID, or the
    cluster's own: Cloud TPU, SLURM, Open MPI). On CPUs the processes exchange
    data through gloo.
    """
    if jax.config.jax_platforms in (None, "", "cpu") or str(jax.config.jax_platforms).startswith("cpu"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator, num_processes, process_id)


def to_host(tree: Any) -> Any:
    """NumPy copies of a pytree of device arrays, fetched together.

    Every copy is started before the first is waited for, so a tree of a few
    hundred scalars (an epoch's metrics) costs one round trip, not one each.
    Replicated arrays that span several processes are read from this process's
    own copy, so every process can read metrics and the state.
    """

    def local(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return x.addressable_data(0)
        return x

    tree = jax.tree.map(local, tree)
    for x in jax.tree.leaves(tree):
        if isinstance(x, jax.Array):
            x.copy_to_host_async()
    return jax.tree.map(np.asarray, tree)


def process_slice(batch_size: int) -> slice:
    """The rows of every global batch that this process feeds."""
    per = batch_size // jax.process_count()
    start = jax.process_index() * per
    return slice(start, start + per)


def enable_compilation_cache(folder: str | os.PathLike) -> None:
    """Keeps compiled programs in `folder` (a run's: `data.compile_cache_folder`), so a second run skips compilation.

    Leaves an already chosen cache folder alone.
    """
    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", os.fspath(Path(folder).expanduser()))
