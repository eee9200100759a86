"""Training: the state, the jitted steps, checkpoints, and the driver.

    python -m jaxcifar.train --lr-max auto            # the full recipe (24 epochs)
    python -m jaxcifar.train --quick --data synthetic # a first try: minutes on a CPU

`train_step` and `eval_step` are pure functions of (state, batch), compiled
once ahead of the loop with `jax.jit` over a data-parallel mesh (jaxcifar.parallel),
the state buffers donated. `train_and_evaluate(config)` is the driver: data,
model, LR (an LR range test when `lr_max="auto"`), training with evaluation on
the whole test set after every epoch, checkpoints, metrics, figures.

The optimizer is PyTorch's SGD as the original used it: the weight decay is
added to the gradient (g + wd * w, on every parameter, BatchNorm included), then
momentum (buf = m * buf + g; Nesterov: g + m * buf), then the learning rate of
the one-cycle schedule. optax.add_decayed_weights followed by optax.sgd is that
update, step for step.

Run folder (`--out`, default runs/<timestamp>):
  config.json     the settings (LR as used), with command, versions and hardware
  metrics.json    per epoch: train/test loss and accuracy, LR, seconds; per step: LR, loss, accuracy
  summary.json    final and best accuracies, times, images/s, status
  checkpoints/    latest.msgpack (resumable) and best.msgpack (highest test accuracy)
  accuracy.png, loss_accuracy.png, one_cycle.png (the LR actually used, per step)
  lr_range.json, lr_range.png   with --lr-max auto
"""

from __future__ import annotations

import dataclasses
import functools
import math
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from jaxcifar import augment_device, parallel, plots, records
from jaxcifar import config as config_lib
from jaxcifar.augment import AugmentConfig, BatchLoader
from jaxcifar.config import TrainConfig
from jaxcifar.data import CIFAR10, default_cache_dir, load_cifar10, subset
from jaxcifar.model import ResNet9, init_variables
from jaxcifar.schedule import Schedule, one_cycle

Batch = tuple[jax.Array, ...]  # (images, labels), or (uint8 images, labels, draws) with --augment device
Metrics = dict[str, jax.Array]


class TrainState(train_state.TrainState):
    """Flax's TrainState plus the BatchNorm running statistics."""

    batch_stats: Any


class Diverged(RuntimeError):
    """The loss became NaN or infinite."""


# --- model, optimizer, state -----------------------------------------------------


def compute_dtype(name: str) -> Any:
    """The compute type: "auto" is bfloat16 on GPU/TPU, float32 on CPU (bfloat16 gains nothing there)."""
    if name == "auto":
        return jnp.float32 if jax.default_backend() == "cpu" else jnp.bfloat16
    return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[name]


def make_model(config: TrainConfig) -> ResNet9:
    kernel_grad = config.kernel_grad
    if kernel_grad == "auto":  # the nine-matmul kernel gradient pays off on CPUs only
        kernel_grad = "taps" if jax.default_backend() == "cpu" else "xla"
    return ResNet9(
        width=config.width, dtype=compute_dtype(config.dtype), logit_scale=config.logit_scale, kernel_grad=kernel_grad
    )


def make_optimizer(
    learning_rate: float | Schedule, momentum: float = 0.9, nesterov: bool = False, weight_decay: float = 5e-3
) -> optax.GradientTransformation:
    """PyTorch-style SGD: weight decay added to the gradient, then momentum, then the LR."""
    return optax.chain(
        optax.add_decayed_weights(weight_decay),
        optax.sgd(learning_rate, momentum=momentum or None, nesterov=nesterov),
    )


def create_train_state(model: ResNet9, tx: optax.GradientTransformation, rng: jax.Array) -> TrainState:
    """A fresh state: parameters from `rng`, zero momentum, step 0."""
    variables = init_variables(model, rng)
    return TrainState.create(
        apply_fn=model.apply, params=variables["params"], tx=tx, batch_stats=variables["batch_stats"]
    )


# --- the steps -------------------------------------------------------------------


def cross_entropy(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
    """float32[N] softmax cross-entropy of logits float32[N, K] and int labels[N]."""
    if label_smoothing == 0.0:
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
    return optax.softmax_cross_entropy(logits, targets)


def train_step(
    state: TrainState,
    batch: Batch,
    schedule: Schedule,
    label_smoothing: float = 0.0,
    augment: AugmentConfig | None = None,
) -> tuple[TrainState, Metrics]:
    """One SGD step on a batch (images float32[B, 32, 32, 3], labels int32[B]).

    With `augment` (--augment device) the batch is (images uint8[B, 32, 32, 3],
    labels, draws int32[B, 5]) and the step augments it first.
    Returns the new state and scalar metrics: mean loss, accuracy, and the LR
    this step used.
    """
    if augment is not None:
        images, labels, draws = batch
        images = augment_device.apply(images, draws, augment)
    else:
        images, labels = batch

    def loss_fn(params):
        logits, updates = state.apply_fn(
            {"params": params, "batch_stats": state.batch_stats}, images, train=True, mutable=["batch_stats"]
        )
        loss = cross_entropy(logits, labels, label_smoothing).mean()
        return loss, (logits, updates["batch_stats"])

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    metrics = {
        "loss": loss,
        "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels),
        "lr": jnp.asarray(schedule(state.step), jnp.float32),
    }
    return state.apply_gradients(grads=grads, batch_stats=batch_stats), metrics


def eval_step(state: TrainState, batch: tuple[jax.Array, jax.Array, jax.Array], tta: bool = False) -> Metrics:
    """Sums over a padded batch (images, labels, weights float32[B] of 1 = real, 0 = padding).

    Returns loss_sum, correct and count, so batches can be added up exactly.
    With `tta`, also tta_loss_sum and tta_correct of horizontal-flip test-time
    augmentation: the mean of the logits of each image and of its mirror image
    (as cifar10-fast's bag of tricks and airbench evaluate).
    """
    images, labels, weights = batch
    variables = {"params": state.params, "batch_stats": state.batch_stats}

    def sums(logits):
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        return jnp.sum(loss * weights), jnp.sum((jnp.argmax(logits, -1) == labels) * weights)

    logits = state.apply_fn(variables, images, train=False)
    metrics = dict(zip(("loss_sum", "correct"), sums(logits)), count=jnp.sum(weights))
    if tta:
        mirrored = state.apply_fn(variables, images[:, :, ::-1], train=False)
        metrics.update(zip(("tta_loss_sum", "tta_correct"), sums((logits + mirrored) / 2)))
    return metrics


@dataclasses.dataclass
class Steps:
    """The compiled steps of a run, for its mesh and batch size."""

    train: Callable[[TrainState, Batch], tuple[TrainState, Metrics]]
    eval: Callable[[TrainState, tuple], Metrics]
    mesh: Any
    batch_size: int
    compile_seconds: float


def compile_steps(
    state: TrainState,
    mesh,
    batch_size: int,
    schedule: Schedule,
    label_smoothing: float = 0.0,
    with_eval: bool = True,
    tta: bool = False,
    augment: AugmentConfig | None = None,
) -> Steps:
    """jit + ahead-of-time compile both steps (compile time is measured apart).

    `augment`: the training step augments uint8 batches on the device (see train_step).
    """
    parallel.check_batch_size(batch_size, mesh)
    state_sharding = jax.tree.map(lambda _: parallel.replicated(mesh), state)
    data = parallel.batch_sharding(mesh)
    scalar = parallel.replicated(mesh)
    images = jax.ShapeDtypeStruct((batch_size, 32, 32, 3), jnp.float32, sharding=data)
    labels = jax.ShapeDtypeStruct((batch_size,), jnp.int32, sharding=data)
    weights = jax.ShapeDtypeStruct((batch_size,), jnp.float32, sharding=data)
    start = time.perf_counter()
    train = jax.jit(
        functools.partial(train_step, schedule=schedule, label_smoothing=label_smoothing, augment=augment),
        in_shardings=(state_sharding, data),
        out_shardings=(state_sharding, scalar),
        donate_argnums=0,
    )
    if augment is None:
        train = train.lower(state, (images, labels)).compile()
    else:
        raw = jax.ShapeDtypeStruct((batch_size, 32, 32, 3), jnp.uint8, sharding=data)
        draws = jax.ShapeDtypeStruct((batch_size, 5), jnp.int32, sharding=data)
        train = train.lower(state, (raw, labels, draws)).compile()
    evaluate_ = None
    if with_eval:
        evaluate_ = jax.jit(
            functools.partial(eval_step, tta=tta), in_shardings=(state_sharding, data), out_shardings=scalar
        )
        evaluate_ = evaluate_.lower(state, (images, labels, weights)).compile()
    return Steps(train, evaluate_, mesh, batch_size, time.perf_counter() - start)


def pad_batch(images: np.ndarray, labels: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pads a final partial batch to `size` with zero images of weight 0."""
    n = len(labels)
    weights = np.ones(size, np.float32)
    if n == size:
        return images, labels, weights
    weights[n:] = 0.0
    images = np.concatenate([images, np.zeros((size - n, *images.shape[1:]), images.dtype)])
    labels = np.concatenate([labels, np.zeros(size - n, labels.dtype)])
    return images, labels, weights


def device_eval_batches(loader: BatchLoader, batch_size: int, mesh) -> list[tuple[jax.Array, ...]]:
    """The eval set normalised, padded to whole batches and put on the devices once.

    Evaluating after every epoch then moves no data (10,000 test images are
    123 MB as float32, copied once instead of 24 times).
    """
    rows = parallel.process_slice(batch_size)
    return [
        parallel.put_batch(tuple(x[rows] for x in pad_batch(images, labels, batch_size)), mesh)
        for images, labels in loader.epoch(0)
    ]


def evaluate(steps: Steps, state: TrainState, batches: Sequence[tuple[jax.Array, ...]]) -> dict[str, float]:
    """Mean loss and accuracy over batches from `device_eval_batches`.

    Returns {"loss", "accuracy"}, plus {"tta_loss", "tta_accuracy"} when the
    eval step was compiled with flip test-time augmentation.
    """
    sums = [steps.eval(state, batch) for batch in batches]
    total = parallel.to_host(jax.tree.map(lambda *x: sum(x), *sums))
    means = {"loss": total["loss_sum"], "accuracy": total["correct"]}
    if "tta_correct" in total:
        means.update(tta_loss=total["tta_loss_sum"], tta_accuracy=total["tta_correct"])
    return {k: float(v / total["count"]) for k, v in means.items()}


# --- checkpoints -----------------------------------------------------------------


def save_checkpoint(path: Path, state: TrainState, **extra: Any) -> None:
    """Writes the state (gathered to the host) and `extra` as msgpack, atomically.

    flax.serialization is enough here: one 26 MB state, gathered from
    replicated arrays, restorable on any number of devices; the atomic rename
    gives the crash safety orbax would.
    """
    payload = {"state": flax.serialization.to_state_dict(parallel.to_host(state)), **extra}
    with records.atomic_open(path, "wb") as f:
        f.write(flax.serialization.msgpack_serialize(payload))


def _read_checkpoint(path: Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; has the run finished an epoch?")
    try:
        return flax.serialization.msgpack_restore(path.read_bytes())
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path} is not a readable jaxcifar checkpoint ({e}); it may be truncated.") from e


def _restore(template: Any, saved: Any, path: Path) -> Any:
    """`saved` in the structure of `template`, with every shape checked."""
    try:
        restored = flax.serialization.from_state_dict(template, saved)
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"{path} does not fit this model ({e}); was it written by a run with another --width or "
            "another version? Use the matching settings or start a new run."
        ) from e
    for a, b in zip(jax.tree.leaves(template), jax.tree.leaves(restored)):
        if np.shape(a) != np.shape(b):
            raise ValueError(
                f"{path} holds arrays of shape {np.shape(b)} where this model has {np.shape(a)}: "
                "it comes from a run with another --width. Use the matching settings."
            )
    return restored


def load_checkpoint(path: Path, template: TrainState) -> tuple[TrainState, dict]:
    """(state, extra) from `save_checkpoint`; the template gives the structure."""
    payload = _read_checkpoint(path)
    return _restore(template, payload.pop("state", None), path), payload


def load_variables(path: Path, model: ResNet9) -> dict:
    """{'params', 'batch_stats'} of a checkpoint, checked against `model`'s shapes.

    Needs no optimizer: for evaluation and Grad-CAM of any run.
    """
    state = _read_checkpoint(path).get("state") or {}
    template = jax.eval_shape(lambda: init_variables(model, jax.random.key(0)))
    saved = {k: state.get(k) for k in ("params", "batch_stats")}
    return jax.tree.map(jnp.asarray, _restore(template, saved, path))


# --- the driver ------------------------------------------------------------------


def load_data(config: TrainConfig) -> CIFAR10:
    """The data a config names (source, folders, subsets, seed)."""
    return load_cifar10(
        config.data,
        data_dir=config.data_dir,
        cache_dir=config.cache_dir,
        n_train=config.n_train,
        n_test=config.n_test,
        seed=config.seed,
    )


def augment_config(config: TrainConfig) -> AugmentConfig:
    """The augmentation recipe of a run."""
    return AugmentConfig(flip_prob=config.flip_prob, cutout=config.cutout)


def device_augment(config: TrainConfig) -> AugmentConfig | None:
    """The recipe for the training step to apply, with --augment device; else None."""
    return augment_config(config) if config.augment == "device" else None


def make_train_loader(config: TrainConfig, ds: CIFAR10) -> BatchLoader:
    """Augmented training batches as the config says; this process's rows of each."""
    return BatchLoader(
        ds.train_images,
        ds.train_labels,
        config.batch_size,
        train=True,
        seed=config.seed,
        augment=config.augment,
        config=augment_config(config),
        workers=config.augment_threads,
        rows=parallel.process_slice(config.batch_size),
    )


class _StopRequest:
    """Turns the first Ctrl-C into a request to stop at the next step boundary.

    A second Ctrl-C interrupts at once. Only installed in the main thread.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: saving a checkpoint after this step (Ctrl-C again to quit at once).", file=sys.stderr)

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def default_out() -> Path:
    base = Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    out, i = base, 1
    while out.exists():
        out, i = base.with_name(f"{base.name}-{i}"), i + 1
    return out


def prepare_run(config: TrainConfig) -> tuple[TrainConfig, Path]:
    """The run folder and the config to use (the saved one when resuming)."""
    if config.resume:
        out = Path(config.out)
        saved = out / "config.json"
        if not saved.exists():
            raise FileNotFoundError(f"--resume: {saved} not found; is {out} a jaxcifar run folder?")
        if not (out / "checkpoints" / "latest.msgpack").exists():
            raise FileNotFoundError(f"--resume: {out} has no checkpoints/latest.msgpack to continue from")
        stored = records.read_json(saved)["config"]
        # The recipe comes from the run; where it runs (devices, processes) from now.
        here = ("progress", "devices", "distributed", "coordinator", "num_processes", "process_id", "workers")
        stored.update(resume=True, out=str(out), **{k: getattr(config, k) for k in here})
        return TrainConfig.from_json(stored), out
    out = Path(config.out) if config.out else default_out()
    # Only process 0 writes; the others must not trip over its first files.
    if jax.process_index() == 0 and out.exists() and any(out.iterdir()):
        raise FileExistsError(
            f"{out} already exists and is not empty; nothing is overwritten. Pass --resume to continue "
            "the run in it, or choose another --out."
        )
    return dataclasses.replace(config, out=str(out)), out


def resolve_lr(config: TrainConfig, ds: CIFAR10, out: Path, mesh) -> tuple[float, float, dict]:
    """(LR_MIN, LR_MAX, how they were found): given, from a saved sweep, or a new sweep."""
    if config.lr_max != "auto":
        lr_max = float(config.lr_max)
        info = {"source": "--lr-max"}
    else:
        from jaxcifar import lr_range  # lazy: lr_range imports this module

        if config.lr_range_json:
            result = lr_range.load(config.lr_range_json)
            source = Path(config.lr_range_json)
            if jax.process_index() == 0:
                for name in (source.name, source.with_suffix(".png").name):
                    src = source.parent / name
                    if src.exists() and src.resolve() != (out / name).resolve():
                        shutil.copyfile(src, out / name)
            info = {"source": f"LR range test {config.lr_range_json}"}
        else:
            result = lr_range.run(config, ds, out, mesh=mesh)
            info = {"source": f"LR range test in {out / 'lr_range.json'}"}
        lr_max = float(result["suggestions"][config.lr_range_rule])
        info["rule"] = config.lr_range_rule
        parallel.say(f"LR range test ({config.lr_range_rule} rule): LR_MAX = {lr_max:.4g}")
    lr_min = lr_max / config.lr_div if config.lr_min == "auto" else float(config.lr_min)
    if lr_min > lr_max:
        raise ValueError(f"LR_MIN {lr_min:g} exceeds LR_MAX {lr_max:g}; lower --lr-min")
    return lr_min, lr_max, info


def _epoch_line(epoch: int, epochs: int, row: dict) -> str:
    return (
        f"epoch {epoch + 1:>2}/{epochs}  train loss {row['train_loss']:.4f} acc {100 * row['train_accuracy']:6.2f}%"
        f"  test loss {row['test_loss']:.4f} acc {100 * row['test_accuracy']:6.2f}%"
        + (f" (flip TTA {100 * row['test_accuracy_tta']:6.2f}%)" if "test_accuracy_tta" in row else "")
        + f"  lr {row['lr']:.4g}  {row['seconds']:.1f} s  {row['images_per_second']:,.0f} img/s"
    )


def _check_finite(steps_metrics: dict[str, list], first_step: int, epoch: int) -> None:
    loss = np.asarray(steps_metrics["loss"], dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(loss))
    if len(bad):
        i = int(bad[0])
        raise Diverged(
            f"the loss became {loss[i]} at step {first_step + i} (epoch {epoch + 1}, batch {i}) "
            f"with learning rate {steps_metrics['lr'][i]:.4g}"
        )


def train_and_evaluate(config: TrainConfig, ds: CIFAR10 | None = None) -> dict:
    """Trains and evaluates as `config` says; returns the summary (also in summary.json).

    Args:
      config: the run's settings.
      ds: the data, if already loaded (else loaded as config.data says).

    Raises:
      Diverged: the loss became NaN/inf; the last good checkpoint is kept.
      FileExistsError: `config.out` holds another run and resume is off.
    """
    config, out = prepare_run(config)
    main_process = jax.process_index() == 0
    if ds is None:
        ds = load_data(config)
    elif config.n_train or config.n_test:
        ds = subset(ds, config.n_train, config.n_test, seed=config.seed)
    mesh = parallel.make_mesh(config.devices)
    parallel.check_batch_size(config.batch_size, mesh)
    if main_process:
        out.mkdir(parents=True, exist_ok=True)
    train_loader = make_train_loader(config, ds)
    test_loader = BatchLoader(ds.test_images, ds.test_labels, config.batch_size, train=False)
    steps_per_epoch = len(train_loader)
    total_steps = steps_per_epoch * config.epochs

    lr_min, lr_max, lr_info = resolve_lr(config, ds, out, mesh)
    if config.resume:  # the saved config holds the numbers; keep the record of where they came from
        lr_info = records.read_json(out / "config.json").get("lr", lr_info)
    config = dataclasses.replace(config, lr_min=lr_min, lr_max=lr_max)
    schedule = one_cycle(lr_min, lr_max, steps_per_epoch, config.epochs, config.peak_epoch)
    model = make_model(config)
    tx = make_optimizer(schedule, config.momentum, config.nesterov, config.weight_decay)
    rng = jax.random.key(config.seed)
    state = create_train_state(model, tx, jax.random.fold_in(rng, 0))
    env = records.provenance()
    if main_process and not config.resume:
        records.write_json(out / "config.json", {"config": config.to_json(), "lr": lr_info, **env})

    ckpt_dir = out / "checkpoints"
    history: dict[str, list] = {
        k: []
        for k in (
            "train_loss",
            "train_accuracy",
            "test_loss",
            "test_accuracy",
            "lr",
            "seconds",
            "eval_seconds",
            "images_per_second",
            *(("test_loss_tta", "test_accuracy_tta") if config.tta else ()),
        )
    }
    step_log: dict[str, list] = {"lr": [], "loss": [], "accuracy": []}
    start_epoch, start_batch, best_acc, partial = 0, 0, -1.0, None
    if config.resume:
        state, extra = load_checkpoint(ckpt_dir / "latest.msgpack", state)
        start_epoch, start_batch = int(extra["epoch"]), int(extra["batch"])
        history = {k: list(v) for k, v in extra["history"].items()}
        step_log = {k: list(v) for k, v in extra["steps"].items()}
        best_acc = float(extra["best_test_accuracy"])
        partial = {k: list(v) for k, v in extra["partial"].items()} if start_batch else None
        parallel.say(f"Resuming {out} at epoch {start_epoch + 1}, batch {start_batch} (step {int(state.step)}).")

    def checkpoint(name: str, epoch: int, batch: int, partial_log: dict | None = None) -> None:
        if main_process:
            save_checkpoint(
                ckpt_dir / f"{name}.msgpack",
                state,
                epoch=epoch,
                batch=batch,
                history=history,
                steps=step_log,
                best_test_accuracy=best_acc,
                partial=partial_log or {"lr": [], "loss": [], "accuracy": []},
            )

    def write_metrics() -> None:
        if main_process:
            records.write_json(
                out / "metrics.json", {"epochs": history, "steps": step_log, "steps_per_epoch": steps_per_epoch}
            )

    if not config.resume:
        checkpoint("latest", 0, 0)  # a last good checkpoint exists from the start
    state = parallel.put_replicated(state, mesh)
    steps = compile_steps(
        state, mesh, config.batch_size, schedule, config.label_smoothing, tta=config.tta, augment=device_augment(config)
    )
    test_batches = device_eval_batches(test_loader, config.batch_size, mesh)
    parallel.say(
        f"{ds.source}: {len(ds.train_labels):,} train / {len(ds.test_labels):,} test images; "
        f"ResNet-9 width {config.width}, {jnp.dtype(model.dtype).name}; "
        f"{env['device_kind']} x{len(mesh.devices.flat)}; "
        f"LR {lr_min:.4g} -> {lr_max:.4g} -> {lr_min:.4g}; {config.epochs} epochs of {steps_per_epoch} steps; "
        f"compiled in {steps.compile_seconds:.1f} s; writing to {out}"
    )

    status, message = "completed", ""
    run_start = time.perf_counter()
    with _StopRequest() as stop:
        try:
            for epoch in range(start_epoch, config.epochs):
                first = start_batch if epoch == start_epoch else 0
                epoch_log = partial if (epoch == start_epoch and partial) else {"lr": [], "loss": [], "accuracy": []}
                bar = progress_bar(config, steps_per_epoch, f"epoch {epoch + 1}/{config.epochs}", first)
                estimate = None
                if epoch == start_epoch and jax.default_backend() == "cpu":
                    estimate = total_steps - (epoch * steps_per_epoch + first)
                state, fetched, seconds, completed = _run_epoch(
                    steps, state, train_loader.epoch(epoch, start=first), stop, bar, estimate
                )
                for m in fetched:
                    for k in epoch_log:
                        epoch_log[k].append(float(m[k]))
                _check_finite(epoch_log, epoch * steps_per_epoch, epoch)
                if not completed:  # a stop was requested
                    partial_done = len(epoch_log["loss"])
                    checkpoint("latest", epoch, partial_done, epoch_log)
                    status = "interrupted"
                    message = (
                        f"Stopped at epoch {epoch + 1}, batch {partial_done}; checkpoint saved. Continue with: "
                        f"python -m jaxcifar.train --out {out} --resume"
                    )
                    break
                t1 = time.perf_counter()
                test = evaluate(steps, state, test_batches)
                test_acc = test["accuracy"]
                eval_seconds = time.perf_counter() - t1
                for k in step_log:
                    step_log[k] += epoch_log[k]
                trained = len(fetched) * config.batch_size  # this session's share of the epoch
                row = {
                    "train_loss": float(np.mean(epoch_log["loss"])),
                    "train_accuracy": float(np.mean(epoch_log["accuracy"])),
                    "test_loss": test["loss"],
                    "test_accuracy": test_acc,
                    **(
                        {"test_loss_tta": test["tta_loss"], "test_accuracy_tta": test["tta_accuracy"]}
                        if config.tta
                        else {}
                    ),
                    "lr": epoch_log["lr"][-1],
                    "seconds": seconds,
                    "eval_seconds": eval_seconds,
                    "images_per_second": trained / seconds,
                }
                for k, v in row.items():
                    history[k].append(v)
                parallel.say(_epoch_line(epoch, config.epochs, row), flush=True)
                if test_acc > best_acc:
                    best_acc = test_acc
                    checkpoint("best", epoch + 1, 0)
                checkpoint("latest", epoch + 1, 0)
                write_metrics()
        except Diverged as e:
            status = "diverged"
            message = (
                f"Training diverged: {e}. The last good checkpoint is kept in {ckpt_dir / 'latest.msgpack'}. "
                "Lower --lr-max (or run the LR range test with --lr-max auto)."
            )
            write_metrics()
        except KeyboardInterrupt:
            status = "interrupted"
            message = f"Interrupted; the last checkpoint is in {ckpt_dir / 'latest.msgpack'} (resume with --resume)."

    summary = _summarize(config, history, status, message, steps, time.perf_counter() - run_start, lr_info, env)
    if main_process:
        records.write_json(out / "summary.json", summary)
        if history["train_loss"]:
            tag = run_tag(config.width, len(ds.train_labels), config.batch_size, env["device_kind"], config.epochs)
            _draw(out, history, step_log, steps_per_epoch, config, tag)
        if status == "completed" and config.gradcam:
            from jaxcifar import gradcam  # lazy: only finished runs draw Grad-CAM

            # A seeded random 25 rather than the first 25: image-folder test sets
            # are sorted by class, and the first 25 mistakes would all be airplanes.
            gradcam.run_on(out, ds, seed=config.seed)
    if status == "completed":
        parallel.say(
            f"Done: final test accuracy {100 * summary['final_test_accuracy']:.2f}%, best "
            f"{100 * summary['best_test_accuracy']:.2f}% (epoch {summary['best_epoch']}); results in {out}"
        )
    else:
        parallel.say(message, file=sys.stderr)
    return summary


def _run_epoch(
    steps: Steps, state: TrainState, batches, stop: _StopRequest, bar, estimate_steps: int | None
) -> tuple[TrainState, list[dict], float, bool]:
    """Trains on the batches of (part of) an epoch.

    Returns the state, the host metrics of every step, the seconds taken, and
    whether the epoch ran to its end (False: a stop was requested, or a loss
    went non-finite; the caller tells which from the metrics).
    """
    metrics_dev: list[Metrics] = []
    t0 = time.perf_counter()
    completed = True
    try:
        for batch in batches:
            if stop.requested:
                completed = False
                break
            state, metrics = steps.train(state, parallel.put_batch(batch, steps.mesh))
            metrics_dev.append(metrics)
            done = len(metrics_dev)
            if bar is not None:
                bar.update(1)
            if done % 10 == 0 and done > 2:  # read a step that has surely finished: no stall
                seen = parallel.to_host(metrics_dev[done - 3])
                if not math.isfinite(float(seen["loss"])):
                    completed = False
                    break
                if bar is not None:
                    rate = done * steps.batch_size / (time.perf_counter() - t0)
                    bar.set_postfix(
                        loss=f"{float(seen['loss']):.3f}",
                        acc=f"{100 * float(seen['accuracy']):.1f}%",
                        img_s=f"{rate:,.0f}",
                    )
            if estimate_steps is not None and done == 5:
                _estimate(t0, done, estimate_steps)
    finally:
        batches.close()
        if bar is not None:
            bar.close()
    fetched = parallel.to_host(metrics_dev)
    return state, fetched, time.perf_counter() - t0, completed


def progress_bar(config: TrainConfig, total: int, desc: str, initial: int = 0):
    """A tqdm bar of steps on process 0; None with --no-progress and on the other processes."""
    if not config.progress or jax.process_index() != 0:
        return None
    from tqdm.auto import tqdm

    # disable=None: no bar when stderr is not a terminal (logs get the epoch lines).
    return tqdm(total=total, initial=initial, desc=desc, unit="step", leave=False, disable=None, dynamic_ncols=True)


def _estimate(t0: float, done: int, remaining_steps: int) -> None:
    per_step = (time.perf_counter() - t0) / done
    total = per_step * remaining_steps
    if total > 600:
        parallel.say(
            f"On this CPU one step takes {per_step:.2f} s: the {remaining_steps} remaining steps will take about "
            f"{total / 3600:.1f} h. For a first try, use --quick (minutes), or run on a GPU.",
            file=sys.stderr,
        )


def _summarize(config, history, status, message, steps, wall, lr_info, env) -> dict:
    acc = history["test_accuracy"]
    best = int(np.argmax(acc)) if acc else None
    train_seconds = float(np.sum(history["seconds"]))
    images = sum(r * s for r, s in zip(history["images_per_second"], history["seconds"]))
    return {
        "status": status,
        "message": message,
        "epochs_completed": len(acc),
        "final_test_accuracy": acc[-1] if acc else None,
        "best_test_accuracy": acc[best] if acc else None,
        "best_epoch": best + 1 if acc else None,
        "final_train_accuracy": history["train_accuracy"][-1] if acc else None,
        **(
            {
                "final_test_accuracy_tta": history["test_accuracy_tta"][-1],
                "best_test_accuracy_tta": max(history["test_accuracy_tta"]),
            }
            if acc and "test_accuracy_tta" in history
            else {}
        ),
        "best_train_accuracy": max(history["train_accuracy"]) if acc else None,
        "lr_min": config.lr_min,
        "lr_max": config.lr_max,
        "lr": lr_info,
        "compile_seconds": steps.compile_seconds,
        "train_seconds": train_seconds,
        "eval_seconds": float(np.sum(history["eval_seconds"])),
        "wall_seconds_this_session": wall,
        "images_per_second": images / train_seconds if train_seconds else None,
        **env,
    }


def run_tag(width: int, n_train: int, batch_size: int, device_kind: str, epochs: int | None = None) -> str:
    """What a figure was measured on, for its title: a CPU demo must not pass for the real run."""
    ran = f", {epochs} epochs" if epochs is not None else ""
    return f"ResNet-9 width {width}, {n_train:,} train images, batch {batch_size}{ran}, {device_kind}"


def _draw(out: Path, history: dict, step_log: dict, steps_per_epoch: int, config: TrainConfig, tag: str) -> None:
    plots.accuracy(history, out / "accuracy.png", title=f"Accuracy per epoch\n{tag}")
    plots.loss_accuracy(history, out / "loss_accuracy.png", title=tag)
    plots.one_cycle(
        step_log["lr"], steps_per_epoch, out / "one_cycle.png", title=f"Learning rate used, per step\n{tag}"
    )


def enable_compilation_cache(config: TrainConfig) -> None:
    """Keeps compiled programs in <cache folder>/xla, so a second run skips compilation.

    Leaves an already chosen cache folder alone.
    """
    if not jax.config.jax_compilation_cache_dir:
        base = Path(config.cache_dir).expanduser() if config.cache_dir else default_cache_dir()
        jax.config.update("jax_compilation_cache_dir", str(base / "xla"))


def main(argv: Sequence[str] | None = None) -> dict:
    """`python -m jaxcifar.train`: parse flags, train, exit non-zero unless completed."""
    config = config_lib.parse(argv, "python -m jaxcifar.train", __doc__.split("\n")[0])
    if config.distributed:
        parallel.initialize_distributed(config.coordinator, config.num_processes, config.process_id)
    enable_compilation_cache(config)
    try:
        summary = train_and_evaluate(config)
    except (FileExistsError, FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2 if isinstance(e, (FileExistsError, ValueError)) else 1) from e
    if summary["status"] == "diverged":
        raise SystemExit(1)
    if summary["status"] == "interrupted":
        raise SystemExit(130)
    return summary


if __name__ == "__main__":
    main()
