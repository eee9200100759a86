"""Runs inside subprocesses with several forced CPU devices, for test_parallel.py.

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/multidevice.py steps OUT
    XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/multidevice.py pipeline OUT
    XLA_FLAGS=--xla_force_host_platform_device_count=4 python tests/multidevice.py steps OUT 8 COORD N ID

`steps OUT` runs the steps on 8 devices and on 1, with flax's BatchNorm and with
the matrix-vector one, in one process (OUT/d8.npz, OUT/d1-matvec.npz, ...); with a
coordinator, each of N processes runs its part of the 8-device steps (OUT is a file).

XLA_FLAGS must be set before JAX starts, hence separate processes. Each mode
prints one line "RESULT <json>".
"""

import json
import os
import signal
import sys
from pathlib import Path

import numpy as np

from jaxcifar import startup

startup.set_cpu_flags()  # XLA as the commands run it (test_parallel sets XLA_FLAGS anew)
ARGS = sys.argv[1:]
if len(ARGS) >= 6:  # multi-process: join before anything else touches JAX
    from jaxcifar import parallel

    parallel.initialize_distributed(ARGS[3], int(ARGS[4]), int(ARGS[5]))

import jax  # noqa: E402
import optax  # noqa: E402
from tiny import TINY_RUN  # noqa: E402

from jaxcifar import data as data_lib  # noqa: E402
from jaxcifar import gradcam, kernels, parallel, train  # noqa: E402
from jaxcifar import steps as steps_lib  # noqa: E402
from jaxcifar.checkpoint import Checkpoints, abstract_state, load_variables  # noqa: E402
from jaxcifar.config import TrainConfig  # noqa: E402
from jaxcifar.model import ResNet9  # noqa: E402

# Three steps. Two runs that differ in float rounding alone (a different split of
# the batch over devices, another reduction order) agree to float rounding after
# the first step; from the second on, a ReLU or max-pool decision may flip and the
# runs part ways, as any two float computations of a network at a high learning
# rate do. With XLA's own CPU kernels (YNNPACK off) they part at step 2: 1.7e-6
# apart after step 1, 1.4e-3 after step 2. So 8 devices are compared with 1, and two
# processes with one, after the first step.
STEPS = 3
TINY = {**TINY_RUN, "n_train": 640, "n_test": 200}


def steps(out: Path, devices: int | None = None, norm: str = "flax") -> dict:
    """STEPS train steps and an evaluation on random float data (no ties in max-pools,
    so float rounding stays at float rounding). Every process feeds its rows."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(STEPS, 64, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, size=(STEPS, 64)).astype(np.int32)
    mesh = parallel.make_mesh(devices)
    schedule = optax.constant_schedule(0.05)
    model = ResNet9(width=4, norm=kernels.NORMS[norm])
    state = steps_lib.create_train_state(model, steps_lib.make_optimizer(schedule), jax.random.key(0))
    state = parallel.put_replicated(state, mesh)
    compiled = steps_lib.compile_steps(state, mesh, 64, schedule)
    rows = parallel.process_slice(64)
    first_loss = None
    for i in range(STEPS):
        state, metrics = compiled.train(state, parallel.put_batch((x[i][rows], y[i][rows]), mesh))
        if i == 0:
            save_state(state, Path(out).with_name(Path(out).stem + "-step1.npz"))
            first_loss = float(metrics_loss(metrics))
    weights = np.ones(64, np.float32)
    ev = parallel.to_host(compiled.eval(state, parallel.put_batch((x[0][rows], y[0][rows], weights[rows]), mesh)))
    save_state(state, out)
    return {
        "devices": int(mesh.devices.size),
        "processes": jax.process_count(),
        "first_loss": first_loss,
        "loss": float(metrics_loss(metrics)),
        "eval_loss_sum": float(ev["loss_sum"]),
    }


def save_state(state, out) -> None:
    """Parameters and BatchNorm statistics into an .npz, one array per leaf (process 0)."""
    host = parallel.to_host({"params": state.params, "batch_stats": state.batch_stats})
    if jax.process_index() == 0:
        flat = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_flatten_with_path(host)[0]}
        np.savez(out, **flat)


def metrics_loss(metrics) -> float:
    return parallel.to_host(metrics)["loss"]


def params_of(run: Path) -> dict:
    return load_variables(run, steps_lib.state_shapes(TrainConfig(**TINY)), "latest")


def pipeline(out: Path) -> dict:
    """The real driver on 8 devices: evaluation, Grad-CAM on sharded state, a
    checkpoint from 8 devices resumed on 1, an indivisible batch."""
    ds = data_lib.load_cifar10("synthetic", n_train=640, n_test=200, seed=0)
    result = {"device_count": jax.device_count()}
    train.train_and_evaluate(TrainConfig(**TINY, devices=8, out=str(out / "d8")), ds)
    v8 = params_of(out / "d8")

    # Evaluation of one state on 8 devices and on 1: the same sums.
    from jaxcifar.loader import BatchLoader

    loader = BatchLoader(ds.test_images, ds.test_labels, 64, train=False)
    evals = []
    for n in (1, 8):
        mesh = parallel.make_mesh(n)
        template = steps_lib.create_train_state(
            ResNet9(width=4), steps_lib.make_optimizer(lambda s: 0.1), jax.random.key(0)
        )
        state = parallel.put_replicated(template.replace(**v8), mesh)
        batches = steps_lib.device_eval_batches(loader.epoch(0), 64, mesh)
        evals.append(steps_lib.evaluate(steps_lib.compile_steps(state, mesh, 64, lambda s: 0.1), state, batches))
    result["eval_1_8"] = evals

    # --augment device on 8 devices: each device augments its shard of the uint8
    # batch inside the step; the loss equals that of the host-augmented batch.
    from jaxcifar.augment import AugmentConfig

    mesh, constant = parallel.make_mesh(8), optax.constant_schedule(0.05)
    losses = []
    for mode in ("numpy", "device"):
        fresh = steps_lib.create_train_state(ResNet9(width=4), steps_lib.make_optimizer(constant), jax.random.key(0))
        fresh = parallel.put_replicated(fresh, mesh)
        augment = AugmentConfig() if mode == "device" else None
        compiled = steps_lib.compile_steps(fresh, mesh, 64, constant, with_eval=False, augment=augment)
        batch = BatchLoader(ds.train_images, ds.train_labels, 64, train=True, augment=mode).batch(0, 0)
        _, metrics = compiled.train(fresh, parallel.put_batch(batch, mesh))
        losses.append(metrics_loss(metrics))
    result["augment_numpy_device_loss"] = [float(x) for x in losses]

    # Grad-CAM on state replicated over the 8-device mesh equals Grad-CAM on host arrays.
    sharded = parallel.put_replicated(v8, parallel.make_mesh(8))
    result["state_devices"] = len(jax.tree.leaves(sharded)[0].sharding.device_set)
    images = np.random.default_rng(0).normal(size=(5, 32, 32, 3)).astype(np.float32)
    a = gradcam.gradcam(ResNet9(width=4), sharded, images)
    b = gradcam.gradcam(ResNet9(width=4), jax.device_get(v8), images)
    result["gradcam_max_diff"] = max(float(np.abs(a.maps[k] - b.maps[k]).max()) for k in a.maps)

    # Ctrl-C in an 8-device run; the checkpoint resumes on 1 device.
    calls = {"n": 0}
    real = parallel.put_batch

    def put_and_interrupt(arrays, mesh):
        if len(arrays) == 2:  # a training batch (eval batches carry weights)
            calls["n"] += 1
            if calls["n"] == 7:
                os.kill(os.getpid(), signal.SIGINT)
        return real(arrays, mesh)

    parallel.put_batch = put_and_interrupt
    cut = train.train_and_evaluate(TrainConfig(**TINY, devices=8, out=str(out / "cut")), ds)
    parallel.put_batch = real
    saved = params_of(out / "cut")
    template = steps_lib.initial_state(TrainConfig(**TINY), lambda s: 0.1)
    with Checkpoints(out / "cut", read_only=True) as ckpt:
        state, extra = ckpt.restore(abstract_state(template, parallel.make_mesh(1)))
    result["cut"] = [cut["status"], int(extra["epoch"]), int(extra["batch"]), int(state.step)]
    resumed = train.train_and_evaluate(TrainConfig(out=str(out / "cut"), resume=True, devices=1, progress=False), ds)
    result["resumed"] = [resumed["status"], resumed["final_test_accuracy"], resumed["epochs_completed"]]
    result["resumed_state_moved"] = bool(
        max(
            float(np.abs(np.asarray(p) - np.asarray(q)).max())
            for p, q in zip(jax.tree.leaves(params_of(out / "cut")), jax.tree.leaves(saved))
        )
        > 0
    )
    try:
        train.train_and_evaluate(TrainConfig(**{**TINY, "batch_size": 60}, devices=8, out=str(out / "bad")), ds)
    except ValueError as e:
        result["indivisible_error"] = str(e)
    return result


if __name__ == "__main__":
    mode, out = ARGS[0], Path(ARGS[1])
    if mode == "steps" and len(ARGS) >= 6:
        result = steps(out)
    elif mode == "steps":  # one process start (seconds) for the four
        result = {
            f"d{devices}{suffix}": steps(out / f"d{devices}{suffix}.npz", devices, norm)
            for norm, suffix in (("flax", ""), ("matvec", "-matvec"))
            for devices in (8, 1)
        }
    else:
        result = pipeline(out)
    print("RESULT " + json.dumps(result), flush=True)
