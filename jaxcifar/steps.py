"""The training state and the jitted steps: what one SGD step and one evaluation compute.

`train_step(state, batch)` and `eval_step(state, batch)` are pure functions,
compiled once ahead of the loop by `compile_steps` with `jax.jit` over a
data-parallel mesh (jaxcifar.parallel), the state's buffers donated. The training
driver, the LR range test and the benchmarks all use these steps, so the sweep
measures exactly the step that trains.

The optimizer is PyTorch's SGD as the original used it: the weight decay is
added to the gradient (g + wd * w, on every parameter, BatchNorm included), then
momentum (buf = m * buf + g; Nesterov: g + m * buf), then the learning rate of
the schedule. optax.add_decayed_weights followed by optax.sgd is that update,
step for step (tests/test_steps.py checks it against the formula).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from jaxcifar import augment_device, kernels, parallel
from jaxcifar.augment import AugmentConfig, normalize
from jaxcifar.config import TrainConfig
from jaxcifar.model import ResNet9, init_variables
from jaxcifar.schedule import Schedule

Batch = tuple[jax.Array, ...]  # (images, labels), or (uint8 images, labels, draws) with --augment device
Metrics = dict[str, jax.Array]


class TrainState(train_state.TrainState):
    """Flax's TrainState plus the BatchNorm running statistics."""

    batch_stats: Any


# --- model, optimizer, state -----------------------------------------------------


def has_fast_bfloat16(device: Any) -> bool:
    """Whether `device` computes bfloat16 natively: TPUs, NVIDIA GPUs from Ampere (compute capability 8.0)
    on, AMD GPUs; not CPUs, nor a T4 or V100 (7.5, 7.0: bfloat16 is emulated there, slower than float32)."""
    if device.platform == "tpu":
        return True
    if device.platform != "gpu":
        return False
    capability = getattr(device, "compute_capability", None)  # CUDA: "8.0"; ROCm has none
    return capability is None or int(str(capability).split(".")[0]) >= 8


def compute_dtype(name: str | None) -> Any:
    """The compute type: None is bfloat16 where the device has it natively (`has_fast_bfloat16`), else
    float32 (a CPU, a T4)."""
    if name is None:
        return jnp.bfloat16 if has_fast_bfloat16(jax.devices()[0]) else jnp.float32
    return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[name]


def make_model(config: TrainConfig) -> ResNet9:
    """The run's ResNet-9: width, compute type, logit scale, and the layers `kernels` picks for it."""
    return ResNet9(
        width=config.width,
        dtype=compute_dtype(config.dtype),
        logit_scale=config.logit_scale,
        conv=kernels.CONVS[kernels.conv_algorithm(config.conv, config.width)],
        norm=kernels.NORMS[kernels.batch_norm_kind(config.batch_norm, config.width)],
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


def initial_state(config: TrainConfig, schedule: Schedule, model: ResNet9 | None = None) -> TrainState:
    """The state a run with `config` starts from (seed -> key -> fold_in 0 -> parameters),
    of `model` where given (a variant's layers; default: `make_model(config)`)."""
    tx = make_optimizer(schedule, config.momentum, config.nesterov, config.weight_decay)
    model = model or make_model(config)
    return create_train_state(model, tx, jax.random.fold_in(jax.random.key(config.seed), 0))


def state_shapes(config: TrainConfig) -> TrainState:
    """The shapes and dtypes of `initial_state(config, ...)`, computed without allocating it: a checkpoint's
    restore template."""
    return jax.eval_shape(lambda: initial_state(config, lambda step: 0.0))


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
    eval: Callable[[TrainState, tuple], Metrics] | None
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


def compile_run_steps(
    config: TrainConfig, state: TrainState, mesh, schedule: Schedule, with_eval: bool = True
) -> Steps:
    """`compile_steps` with a run's settings (label smoothing, TTA, where augmentation runs)."""
    augment = config.augmentation if config.augment == "device" else None
    return compile_steps(
        state,
        mesh,
        config.batch_size,
        schedule,
        config.label_smoothing,
        with_eval=with_eval,
        tta=config.tta,
        augment=augment,
    )


# --- evaluation ------------------------------------------------------------------


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


def device_eval_batches(
    batches: Iterable[tuple[np.ndarray, np.ndarray]], batch_size: int, mesh
) -> list[tuple[jax.Array, ...]]:
    """Normalised eval batches (the test loader's epoch), padded to whole batches, put on the devices once.

    Evaluating after every epoch then moves no data (10,000 test images are
    123 MB as float32, copied once instead of 24 times).
    """
    rows = parallel.process_slice(batch_size)
    return [
        parallel.put_batch(tuple(x[rows] for x in pad_batch(images, labels, batch_size)), mesh)
        for images, labels in batches
    ]


def evaluate(steps: Steps, state: TrainState, batches: Sequence[tuple[jax.Array, ...]]) -> dict[str, float]:
    """Mean loss and accuracy over batches from `device_eval_batches`.

    Returns {"loss", "accuracy"}, plus {"tta_loss", "tta_accuracy"} when the
    eval step was compiled with flip test-time augmentation. The sums are added
    on the device and fetched in one transfer.
    """
    sums = [steps.eval(state, batch) for batch in batches]
    total = parallel.to_host(jax.tree.map(lambda *x: sum(x), *sums))
    means = {"loss": total["loss_sum"], "accuracy": total["correct"]}
    if "tta_correct" in total:
        means.update(tta_loss=total["tta_loss_sum"], tta_accuracy=total["tta_correct"])
    return {k: float(v / total["count"]) for k, v in means.items()}


@functools.partial(jax.jit, static_argnames="model")
def _eval_logits(model: ResNet9, variables: dict, images: jax.Array) -> jax.Array:
    return model.apply(variables, images, train=False)


def logits(model: ResNet9, variables: dict, images: np.ndarray, batch: int = 500) -> np.ndarray:
    """float32[N, classes]: the network's logits (eval mode, with its logit scale) of uint8[N, 32, 32, 3]
    images, normalised here, `batch` at a time. The one batched forward pass that predict and Grad-CAM use."""
    out = [np.asarray(_eval_logits(model, variables, normalize(images[i : i + batch])))
           for i in range(0, len(images), batch)]  # fmt: skip
    return np.concatenate(out) if out else np.zeros((0, model.num_classes), np.float32)
