"""Tests for jaxcifar.model: size, shapes, BatchNorm semantics, dtypes, learning."""

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import optax
import pytest

from jaxcifar import model as model_lib
from jaxcifar.model import GRADCAM_LAYERS, ResNet9

# The PyTorch original's summary ends with "Total params: 6,573,120".
RESNET9_PARAMS = 6_573_120
TINY = 4


def tiny_variables(width=TINY, seed=0, dtype=jnp.float32):
    model = ResNet9(width=width, dtype=dtype)
    return model, model_lib.init_variables(model, jax.random.key(seed))


def random_images(n, seed=0):
    return jax.random.normal(jax.random.key(seed), (n, 32, 32, 3), jnp.float32)


def forward(model, variables, x, train=False):
    """Jitted apply (eager Flax is slow on CPU): (logits, batch_stats after the call)."""
    fn = jax.jit(lambda v, x: model.apply(v, x, train=train, mutable=["batch_stats"]))
    logits, state = fn(variables, x)
    return logits, state["batch_stats"]


def test_parameter_count_at_default_width():
    model = ResNet9()
    shapes = jax.eval_shape(lambda: model_lib.init_variables(model, jax.random.key(0)))
    assert model_lib.count_params(shapes["params"]) == RESNET9_PARAMS
    # Every conv and the dense layer are bias-free: only BN has biases.
    flat = jax.tree_util.tree_flatten_with_path(shapes["params"])[0]
    bias_paths = [jax.tree_util.keystr(p) for p, _ in flat if "bias" in jax.tree_util.keystr(p)]
    assert bias_paths and all("'bn'" in p for p in bias_paths)
    # 8 BatchNorms (prep, layer1-3, two in each residual) with mean and var each.
    stats = shapes["batch_stats"]
    assert model_lib.count_params(stats) == 2 * (64 + 128 + 2 * 128 + 256 + 512 + 2 * 512)


def test_parameter_count_scales_with_width():
    # Convs scale with width^2, BN and dense with width: at w=8 the count is
    # hand-computed from the layer list.
    w = 8
    convs = 9 * (3 * w + w * 2 * w + 2 * (2 * w) ** 2 + 2 * w * 4 * w + 4 * w * 8 * w + 2 * (8 * w) ** 2)
    bns = 2 * (w + 2 * w + 2 * 2 * w + 4 * w + 8 * w + 2 * 8 * w)
    dense = 8 * w * 10
    model, variables = tiny_variables(width=w)
    assert model_lib.count_params(variables["params"]) == convs + bns + dense


def test_output_shape_and_dtype():
    model, variables = tiny_variables()
    logits, _ = forward(model, variables, random_images(5))
    assert logits.shape == (5, 10)
    assert logits.dtype == jnp.float32
    probs = jax.nn.softmax(logits, axis=-1)
    np.testing.assert_allclose(np.asarray(probs.sum(axis=-1)), np.ones(5), rtol=1e-6)


def test_wrong_input_shape_is_a_clear_error():
    model, variables = tiny_variables()
    with pytest.raises(ValueError, match=r"NHWC images \[N, H, W, 3\], got shape \(2, 3, 32, 32\)"):
        model.apply(variables, jnp.zeros((2, 3, 32, 32)), train=False)


def test_initialisation_matches_pytorch_defaults():
    model, variables = tiny_variables(width=16)
    params = variables["params"]
    for path in [("layer2", "conv", "kernel"), ("fc", "kernel")]:
        k = params
        for name in path:
            k = k[name]
        k = np.asarray(k)
        fan_in = int(np.prod(k.shape[:-1]))
        bound = 1.0 / np.sqrt(fan_in)
        assert np.abs(k).max() <= bound
        assert np.abs(k).max() > 0.95 * bound  # uniform: the edges are reached
        # U(-b, b) has standard deviation b / sqrt(3).
        np.testing.assert_allclose(k.std(), bound / np.sqrt(3), rtol=0.1)
    bn = params["prep"]["bn"]
    np.testing.assert_array_equal(np.asarray(bn["scale"]), 1.0)
    np.testing.assert_array_equal(np.asarray(bn["bias"]), 0.0)


def test_batchnorm_train_mode_updates_running_stats_like_pytorch():
    model, variables = tiny_variables()
    x = random_images(8)
    _, stats_after = forward(model, variables, x, train=True)
    # Hand-computed reference for the first BN: the prep conv's output statistics.
    kernel = variables["params"]["prep"]["conv"]["kernel"]
    conv = jax.lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
    mean = np.asarray(conv.mean(axis=(0, 1, 2)))
    var = np.asarray(conv.var(axis=(0, 1, 2)))
    stats = stats_after["prep"]["bn"]
    # PyTorch momentum 0.1: new = 0.9 * old + 0.1 * batch (old mean 0, var 1).
    np.testing.assert_allclose(np.asarray(stats["mean"]), 0.1 * mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(stats["var"]), 0.9 + 0.1 * var, rtol=1e-4)
    # Every BN layer moved.
    for before, after in zip(jax.tree.leaves(variables["batch_stats"]), jax.tree.leaves(stats_after)):
        assert not np.allclose(np.asarray(before), np.asarray(after))


def test_eval_mode_uses_running_stats_and_is_deterministic():
    model, variables = tiny_variables()
    x = random_images(6)
    a, unchanged = forward(model, variables, x)
    for before, after in zip(jax.tree.leaves(variables["batch_stats"]), jax.tree.leaves(unchanged)):
        np.testing.assert_array_equal(np.asarray(before), np.asarray(after))
    b, _ = forward(model, variables, x)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # Running statistics make each image independent of the rest of the batch...
    np.testing.assert_allclose(np.asarray(a[:2]), np.asarray(forward(model, variables, x[:2])[0]), rtol=1e-5, atol=1e-6)
    # ...while batch statistics do not.
    t_all = forward(model, variables, x, train=True)[0]
    t_two = forward(model, variables, x[:2], train=True)[0]
    assert not np.allclose(np.asarray(t_all[:2]), np.asarray(t_two), atol=1e-4)


def test_bfloat16_compute_keeps_float32_params_stats_and_logits():
    model16, variables = tiny_variables(width=8, dtype=jnp.bfloat16)
    for leaf in jax.tree.leaves(variables):
        assert leaf.dtype == jnp.float32
    x = random_images(4)
    logits16, stats16 = forward(model16, variables, x, train=True)
    assert logits16.dtype == jnp.float32
    for leaf in jax.tree.leaves(stats16):
        assert leaf.dtype == jnp.float32
    logits32 = forward(ResNet9(width=8), variables, x, train=True)[0]
    # Same weights, lower precision: close, not equal (bfloat16 has 8 mantissa bits).
    np.testing.assert_allclose(np.asarray(logits16), np.asarray(logits32), atol=0.15 * float(jnp.abs(logits32).max()))
    assert not np.array_equal(np.asarray(logits16), np.asarray(logits32))


def test_named_intermediates_have_expected_shapes_and_do_not_change_output():
    model, variables = tiny_variables()
    x = random_images(3)
    acts = jax.jit(lambda v, x: model_lib.intermediates(model, v, x))(variables, x)
    expected = {
        "layer1_out": (3, 16, 16, 2 * TINY),
        "res1_out": (3, 16, 16, 2 * TINY),
        "layer3_out": (3, 4, 4, 8 * TINY),
        "res2_out": (3, 4, 4, 8 * TINY),
    }
    assert set(acts) == set(GRADCAM_LAYERS)
    assert {k: v.shape for k, v in acts.items()} == expected
    # The residual branch ends in ReLU; the add output is X + R >= R.
    assert float(acts["res2_out"].min()) >= 0.0
    assert bool(jnp.all(acts["layer3_out"] >= acts["res2_out"] - 1e-6))
    # The logits sit on top of layer3_out: global max-pool then dense.
    logits, _ = forward(model, variables, x)
    by_hand = acts["layer3_out"].max(axis=(1, 2)) @ variables["params"]["fc"]["kernel"]
    np.testing.assert_allclose(np.asarray(logits), np.asarray(by_hand), rtol=1e-5, atol=1e-6)


def test_logit_scale_multiplies_logits():
    model, variables = tiny_variables()
    x = random_images(2)
    base, _ = forward(ResNet9(width=TINY), variables, x)
    scaled, _ = forward(ResNet9(width=TINY, logit_scale=0.125), variables, x)
    np.testing.assert_allclose(np.asarray(scaled), 0.125 * np.asarray(base), rtol=1e-6)


def test_tiny_network_overfits_random_labels():
    # 64 images with random labels can only be fitted by memorising them, which
    # needs gradients through every block.
    model, variables = tiny_variables(width=TINY, seed=1)
    images = random_images(64, seed=2)
    labels = jax.random.randint(jax.random.key(3), (64,), 0, 10)
    tx = optax.adam(5e-3)
    opt_state = tx.init(variables["params"])

    @jax.jit
    def step(params, batch_stats, opt_state):
        def loss_fn(p):
            logits, upd = model.apply(
                {"params": p, "batch_stats": batch_stats}, images, train=True, mutable=["batch_stats"]
            )
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), upd

        (loss, upd), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), upd["batch_stats"], opt_state, loss, grads

    params, stats = variables["params"], variables["batch_stats"]
    params, stats, opt_state, first_loss, grads = step(params, stats, opt_state)
    # Every parameter tensor receives a non-zero gradient.
    for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
        assert float(jnp.abs(g).max()) > 0, jax.tree_util.keystr(path)
    for _ in range(200):
        params, stats, opt_state, loss, _ = step(params, stats, opt_state)
    assert float(loss) < 0.1 * float(first_loss)
