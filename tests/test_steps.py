"""Tests for jaxcifar.steps: the optimizer, the train and eval steps, evaluation over padded batches."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxcifar import data as data_lib
from jaxcifar import kernels, parallel, steps
from jaxcifar.augment import normalize
from jaxcifar.config import TrainConfig
from jaxcifar.loader import BatchLoader
from jaxcifar.model import ResNet9


@pytest.fixture(scope="module")
def tiny_data():
    return data_lib.synthetic(n_train=640, n_test=200, seed=0)


def leaves_equal(a, b):
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("nesterov", [False, True])
def test_optimizer_is_pytorch_sgd_with_weight_decay(nesterov):
    # PyTorch SGD (dampening 0): d = g + wd * w; buf = m * buf + d (buf = d at
    # the first step); step = d + m * buf if nesterov else buf; w -= lr * step.
    lrs = [0.1, 0.2, 0.05]
    wd, m = 5e-3, 0.9
    tx = steps.make_optimizer(lambda step: jnp.asarray(lrs)[step], m, nesterov, wd)
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
    state = steps.create_train_state(model, steps.make_optimizer(schedule), jax.random.key(0))
    step = jax.jit(lambda s, b: steps.train_step(s, b, schedule))
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


def test_matvec_batch_norm_steps_are_flaxs_to_float_rounding(tiny_data):
    # Two training steps from the same weights: the same losses, parameters and statistics to
    # float rounding. Later, as any two float computations of the network, they part once a
    # ReLU or max-pool decision flips: at the fourth step on an Intel Xeon, at the third on an
    # AMD EPYC (by 0.3% of the loss); a third step only shows that both learn.
    schedule = optax.constant_schedule(0.02)
    batch = (normalize(tiny_data.train_images[:64]), tiny_data.train_labels[:64])
    runs = {}
    for kind in ("flax", "matvec"):
        state = start = steps.create_train_state(
            ResNet9(width=4, norm=kernels.NORMS[kind]), steps.make_optimizer(schedule), jax.random.key(0)
        )
        step = jax.jit(lambda s, b: steps.train_step(s, b, schedule))
        losses, states = [], []
        for _ in range(3):
            state, metrics = step(state, batch)
            losses.append(float(metrics["loss"]))
            states.append(jax.device_get(state))
        runs[kind] = (losses, states[1])
        assert losses[2] < 0.5 * losses[0], (kind, losses)
    (flax_losses, a), (losses, b) = runs["flax"], runs["matvec"]
    np.testing.assert_allclose(losses[:2], flax_losses[:2], rtol=1e-5)

    def distance(x, y):  # relative, over every parameter or statistic at once
        x, y = (np.concatenate([np.ravel(v) for v in jax.tree.leaves(t)]).astype(np.float64) for t in (x, y))
        return np.linalg.norm(x - y) / np.linalg.norm(y)

    # the first step's gradient is 2.2e-4 from float64's with either BatchNorm (float rounding and flips alike)
    assert distance(b.params, a.params) < 2e-3 and distance(b.params, a.params) < 0.02 * distance(
        a.params, start.params
    ), (distance(b.params, a.params), distance(a.params, start.params))
    assert distance(b.batch_stats, a.batch_stats) < 1e-4, distance(b.batch_stats, a.batch_stats)


def test_eval_step_ignores_padding(tiny_data):
    model = ResNet9(width=4)
    state = steps.create_train_state(model, steps.make_optimizer(0.1), jax.random.key(1))
    images, labels = normalize(tiny_data.test_images[:50]), tiny_data.test_labels[:50]
    padded = steps.pad_batch(images, labels, 64)
    assert padded[0].shape == (64, 32, 32, 3) and padded[2].sum() == 50
    ev = jax.jit(steps.eval_step)
    full = ev(state, padded)
    logits = model.apply({"params": state.params, "batch_stats": state.batch_stats}, images)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    np.testing.assert_allclose(float(full["loss_sum"]), float(loss.sum()), rtol=1e-5)
    assert float(full["correct"]) == float((jnp.argmax(logits, -1) == labels).sum())
    assert float(full["count"]) == 50


def test_flip_tta_averages_the_logits_of_image_and_mirror(tiny_data):
    model = ResNet9(width=4)
    state = steps.create_train_state(model, steps.make_optimizer(0.1), jax.random.key(2))
    images, labels = normalize(tiny_data.test_images[:50]), tiny_data.test_labels[:50]
    out = jax.jit(functools.partial(steps.eval_step, tta=True))(state, steps.pad_batch(images, labels, 64))
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    mean = (model.apply(variables, images) + model.apply(variables, np.flip(images, axis=2))) / 2  # NHWC: W = 2
    loss = optax.softmax_cross_entropy_with_integer_labels(mean, labels)
    np.testing.assert_allclose(float(out["tta_loss_sum"]), float(loss.sum()), rtol=1e-5)
    assert float(out["tta_correct"]) == float((jnp.argmax(mean, -1) == labels).sum())
    # Left-right symmetric images are their own mirror: TTA changes nothing (a
    # vertical flip would).
    symmetric = (images + np.flip(images, axis=2)) / 2
    assert not np.allclose(symmetric, np.flip(symmetric, axis=1))
    out = jax.jit(functools.partial(steps.eval_step, tta=True))(state, steps.pad_batch(symmetric, labels, 64))
    np.testing.assert_allclose(float(out["tta_loss_sum"]), float(out["loss_sum"]), rtol=1e-5)
    assert "tta_correct" not in jax.jit(steps.eval_step)(state, steps.pad_batch(images, labels, 64))


def test_label_smoothing_matches_its_definition():
    logits = jnp.array([[2.0, 0.0, -1.0]])
    eps = 0.3
    target = np.array([1 - eps + eps / 3, eps / 3, eps / 3])
    logp = np.asarray(jax.nn.log_softmax(logits))[0]
    np.testing.assert_allclose(
        float(steps.cross_entropy(logits, jnp.array([0]), eps)[0]), -(target * logp).sum(), rtol=1e-6
    )


def test_evaluate_over_padded_device_batches_equals_one_big_batch(tiny_data):
    # 200 test images in batches of 64: 3 full batches and one of 8 padded to 64.
    model = ResNet9(width=4)
    state = steps.create_train_state(model, steps.make_optimizer(lambda s: 0.1), jax.random.key(3))
    mesh = parallel.make_mesh(1)
    state = parallel.put_replicated(state, mesh)
    compiled = steps.compile_steps(state, mesh, 64, lambda s: 0.1, tta=True)
    loader = BatchLoader(tiny_data.test_images, tiny_data.test_labels, 64, train=False)
    batches = steps.device_eval_batches(loader.epoch(0), 64, mesh)
    assert len(batches) == 4 and float(batches[-1][2].sum()) == 200 - 3 * 64
    result = steps.evaluate(compiled, state, batches)
    images, labels = normalize(tiny_data.test_images), tiny_data.test_labels
    logits = model.apply({"params": state.params, "batch_stats": state.batch_stats}, images)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    np.testing.assert_allclose(result["loss"], float(loss.mean()), rtol=1e-5)
    assert result["accuracy"] * 200 == pytest.approx(int(np.sum(np.argmax(logits, -1) == labels)))
    assert set(result) == {"loss", "accuracy", "tta_loss", "tta_accuracy"}


def test_initial_state_follows_the_seed_and_the_optimizer_settings():
    config = TrainConfig(width=4, seed=7, momentum=0.0)
    a = steps.initial_state(config, lambda s: 0.1)
    b = steps.initial_state(config, lambda s: 0.1)
    c = steps.initial_state(TrainConfig(width=4, seed=8), lambda s: 0.1)
    assert leaves_equal(a.params, b.params) and not leaves_equal(a.params, c.params)
    # momentum 0: no momentum buffer in the optimizer state; 0.9: one per parameter
    assert len(jax.tree.leaves(c.opt_state)) - len(jax.tree.leaves(a.opt_state)) == len(jax.tree.leaves(a.params))


def layers(config):
    """The names of the layers make_model takes for a config: ("xla" | "winograd", "flax" | "matvec")."""
    model = steps.make_model(config)
    return kernels.name_of(model.conv), kernels.name_of(model.norm)


def test_compute_dtype_and_convolutions_follow_the_backend(monkeypatch):
    assert steps.compute_dtype(None) == jnp.float32  # these tests run on a CPU
    assert steps.compute_dtype("bfloat16") == jnp.bfloat16

    class Device:  # what JAX says of a device: its platform, and a CUDA GPU's compute capability
        def __init__(self, platform, capability=None):
            self.platform, self.compute_capability = platform, capability

    kinds = (("cpu",), ("tpu",), ("gpu", "7.5"), ("gpu", "7.0"), ("gpu", "8.0"), ("gpu", "9.0"), ("gpu", None))
    found = [steps.has_fast_bfloat16(Device(*d)) for d in kinds]
    assert found == [False, True, False, False, True, True, True]  # a T4 and a V100 train in float32
    monkeypatch.setattr(jax, "devices", lambda: [Device("gpu", "7.5")])
    assert steps.compute_dtype(None) == jnp.float32
    monkeypatch.setattr(jax, "devices", lambda: [Device("gpu", "9.0")])  # an H100
    assert steps.compute_dtype(None) == jnp.bfloat16
    monkeypatch.undo()
    model = steps.make_model(TrainConfig(width=4, logit_scale=0.125))
    assert (model.dtype, model.logit_scale, model.conv) == (jnp.float32, 0.125, kernels.Conv3x3)
    # Winograd's convolutions on CPU from width 32 on, unless asked for
    widths = (16, 31, 32, 64)
    assert [layers(TrainConfig(width=w))[0] for w in widths] == ["xla", "xla", "winograd", "winograd"]
    assert layers(TrainConfig(conv="xla"))[0] == "xla"
    assert steps.make_model(TrainConfig(width=4, conv="winograd")).conv is kernels.WinogradConv3x3
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert (kernels.conv_algorithm(None, 64), kernels.conv_algorithm("winograd", 64)) == ("xla", "winograd")
    # a run's record names its platform, whatever this process runs on
    assert [kernels.conv_algorithm(None, 64, p) for p in ("cpu", "gpu")] == ["winograd", "xla"]
    assert kernels.conv_algorithm(None, 16, "cpu") == "xla"


def test_batch_norm_sums_follow_the_backend_and_width(monkeypatch):
    # matrix-vector sums on CPU from width 32 on (as Winograd's convolutions), unless asked for
    widths = (16, 31, 32, 64)
    assert [layers(TrainConfig(width=w))[1] for w in widths] == ["flax", "flax", "matvec", "matvec"]
    assert layers(TrainConfig(batch_norm="flax"))[1] == "flax"
    assert steps.make_model(TrainConfig(width=4, batch_norm="matvec")).norm is kernels.MatvecBatchNorm
    assert [kernels.batch_norm_kind(None, 64, p) for p in ("cpu", "gpu", "tpu")] == ["matvec", "flax", "flax"]
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert (kernels.batch_norm_kind(None, 64), kernels.batch_norm_kind("matvec", 64)) == ("flax", "matvec")
    assert layers(TrainConfig(width=64)) == ("xla", "flax")


def test_the_batched_forward_pass_is_the_models_on_normalised_images_in_any_batch():
    model = ResNet9(width=4)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)
    images = np.random.default_rng(0).integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    whole = np.asarray(model.apply(variables, normalize(images), train=False))
    got = steps.logits(model, variables, images, batch=3)  # batches of 3, 3 and 1
    assert got.shape == (7, 10) and got.dtype == np.float32
    np.testing.assert_allclose(got, whole, rtol=1e-5, atol=1e-6)
    assert steps.logits(model, variables, images[:0]).shape == (0, 10)
