"""Tests for jaxcifar.kernels: each layer and kernel against its definition or Flax's, and the policy."""

import functools
import importlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import optax
import pytest
from test_model import forward, random_images, tiny_variables

from jaxcifar import kernels
from jaxcifar import model as model_lib
from jaxcifar.model import ResNet9, init_variables

# float64 inside a block: jax.enable_x64 (jax >= 0.8), jax.experimental.enable_x64 before (gone in 0.10)
enable_x64 = jax.enable_x64 if hasattr(jax, "enable_x64") else importlib.import_module("jax.experimental").enable_x64


def test_max_pool_matches_flax_in_value_and_both_derivatives():
    x = random_images(4)
    x = jnp.concatenate([x, x[:, :, :, :1]], axis=-1)  # 4 channels
    x = x.at[0, 0, 0, 0].set(x[0, 0, 1, 0])  # an exact tie: the first maximum takes the gradient
    ref = lambda x: nn.max_pool(x, (2, 2), (2, 2))  # noqa: E731
    np.testing.assert_array_equal(np.asarray(kernels.max_pool2(x)), np.asarray(ref(x)))
    g = jax.random.normal(jax.random.key(5), (4, 16, 16, 4))
    ours = jax.vjp(kernels.max_pool2, x)[1](g)[0]
    theirs = jax.vjp(ref, x)[1](g)[0]
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))  # select_and_scatter, bit for bit
    t = jax.random.normal(jax.random.key(6), x.shape)
    np.testing.assert_array_equal(
        np.asarray(jax.jvp(kernels.max_pool2, (x,), (t,))[1]), np.asarray(jax.jvp(ref, (x,), (t,))[1])
    )


def test_winograd_matrices_are_lavins_from_the_points_0_1_minus1_2_minus2():
    # Toom-Cook: row j of B^T holds the coefficients (x^0 first) of prod_{l != j} (x - p_l),
    # the last row those of prod_l (x - p_l); G's row j is (1, p_j, p_j^2) / prod_{l != j} (p_j - p_l);
    # A^T's row i is p_j^i, with a 1 for the point at infinity in the last row.
    points = [0.0, 1.0, -1.0, 2.0, -2.0]
    polys = [np.poly([q for q in points if q != p])[::-1] for p in points] + [np.poly(points)[::-1]]
    bt = np.array([np.pad(c, (0, 6 - len(c))) for c in polys])
    g = [np.array([1, p, p * p]) / np.prod([p - q for q in points if q != p]) for p in points] + [[0, 0, 1]]
    at = [[p**i for p in points] + [float(i == 3)] for i in range(4)]
    np.testing.assert_allclose(kernels.WINOGRAD_BT, bt, atol=1e-12)
    np.testing.assert_allclose(kernels.WINOGRAD_G, g, atol=1e-12)
    np.testing.assert_allclose(kernels.WINOGRAD_AT, at, atol=1e-12)


def conv3x3_float64(x, k):
    """The 'same' 3x3 convolution by its definition, in float64 NumPy: [N, H, W, C] x [3, 3, C, K]."""
    x, k = np.asarray(x, np.float64), np.asarray(k, np.float64)
    n, h, w, _ = x.shape
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return sum(padded[:, i : i + h, j : j + w] @ k[i, j] for i in range(3) for j in range(3))


@pytest.mark.parametrize("side", [4, 8, 16])
def test_winograd_convolution_and_its_gradients_match_the_definition(side):
    rng = np.random.default_rng(side)
    x = rng.normal(size=(3, side, side, 5)).astype(np.float32)
    k = (rng.normal(size=(3, 3, 5, 6)) / 6).astype(np.float32)
    g = rng.normal(size=(3, side, side, 6)).astype(np.float32)
    y, vjp = jax.vjp(jax.jit(kernels.conv3x3_winograd), x, k)
    dx, dk = jax.jit(vjp)(g)
    # the gradients by their definitions: dx is g convolved with the kernel turned round
    # and its channels swapped; dk[i, j] sums shifted inputs times g over images and pixels
    padded = np.pad(np.asarray(x, np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    want = {
        "y": conv3x3_float64(x, k),
        "dx": conv3x3_float64(g, np.flip(k, (0, 1)).transpose(0, 1, 3, 2)),
        "dk": np.stack([np.einsum("nhwc,nhwk->ck", padded[:, i : i + side, j : j + side], g) for i in range(3)
                        for j in range(3)]).reshape(3, 3, 5, 6),
    }  # fmt: skip
    for name, got in (("y", y), ("dx", dx), ("dk", dk)):
        assert got.shape == want[name].shape and got.dtype == jnp.float32
        error = np.abs(np.asarray(got, np.float64) - want[name]).max() / np.abs(want[name]).max()
        assert error < 1e-5, (name, error)  # F(4x4, 3x3)'s rounding in float32; a wrong transform is O(1)


def assert_computes_as_the_default(model, stats_atol):
    """A tiny network computed otherwise: the default's parameter shapes, and its logits and
    BatchNorm statistics to float rounding, in eval and train mode. Returns (variables, images)."""
    default, variables = tiny_variables(width=4)
    shapes = jax.eval_shape(init_variables, model, jax.random.key(0))  # no compilation (seconds)
    assert jax.tree.map(lambda a: a.shape, shapes) == jax.tree.map(jnp.shape, variables)
    x = random_images(8)
    for train in (False, True):
        (want, want_stats), (got, stats) = forward(default, variables, x, train), forward(model, variables, x, train)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-5)
        for a, b in zip(jax.tree.leaves(stats), jax.tree.leaves(want_stats)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=stats_atol)
    return variables, x


def test_winograd_model_has_the_same_parameters_and_close_outputs():
    variables, x = assert_computes_as_the_default(ResNet9(width=4, conv=kernels.WinogradConv3x3), stats_atol=1e-5)
    # bfloat16 models compute Winograd's convolutions in float32 and hand back bfloat16
    model_b = ResNet9(width=4, conv=kernels.WinogradConv3x3, dtype=jnp.bfloat16)
    intermediates = jax.jit(functools.partial(model_lib.intermediates, model_b))(variables, x)  # eager: seconds
    assert all(v.dtype == jnp.bfloat16 for v in intermediates.values())


def test_winograd_is_used_where_the_side_is_a_multiple_of_4_and_not_in_prep():
    layer = kernels.WinogradConv3x3(6)
    calls, seen = [], []
    original = kernels.conv3x3_winograd

    def spy(x, k):
        calls.append(x.shape)
        return original(x, k)

    with pytest.MonkeyPatch.context() as mp:  # jitted (eager Winograd takes seconds): the spy sees the trace
        mp.setattr(kernels, "conv3x3_winograd", spy)
        for side in (8, 6):  # 6: not a multiple of 4, XLA's convolution
            x = jnp.ones((1, side, side, 5))
            v = jax.jit(layer.init)(jax.random.key(0), x)
            calls.clear()
            got = jax.jit(layer.apply)(v, x)
            np.testing.assert_allclose(got, kernels.conv3x3(x, v["params"]["kernel"]), rtol=1e-5)
            seen += calls
        model = ResNet9(width=4, conv=kernels.WinogradConv3x3)
        v = init_variables(model, jax.random.key(0))
        calls.clear()
        jax.jit(model.apply)(v, jnp.ones((1, 32, 32, 3)))
        seen += calls
    # the 8x8 layer, then 7 of the network's 8 convolutions: not prep's (3 channels, 32x32)
    assert seen == [(1, 8, 8, 5), (1, 32, 32, 4), (1, 16, 16, 8), (1, 16, 16, 8), (1, 16, 16, 8), (1, 8, 8, 16),
                     (1, 4, 4, 32), (1, 4, 4, 32)]  # fmt: skip


@pytest.mark.parametrize("shape", [(16, 8, 8, 64), (3, 5, 7, 16), (512, 4, 4, 48)])
def test_column_sums_match_float64(shape):
    # 16x8x8 rows of 64: 256 rows side by side; 105 rows: one run (gcd 1); 8192 rows of 48: gcd(8192, 341) = 1
    x = np.random.default_rng(0).normal(3.0, 2.0, size=shape).astype(np.float32)
    got = kernels.column_sums(jnp.asarray(x))
    assert got.shape == (shape[-1],) and got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), x.astype(np.float64).sum(axis=(0, 1, 2)), rtol=1e-5)


def test_batch_norm_train_is_flaxs_layer_and_its_gradient_is_the_derivative():
    x = np.random.default_rng(1).normal(1.0, 2.0, size=(8, 4, 4, 6)).astype(np.float32)
    layer = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5, use_fast_variance=False)
    v = layer.init(jax.random.key(0), x)
    v = {"params": {"scale": jnp.linspace(0.5, 2.0, 6), "bias": jnp.linspace(-1.0, 1.0, 6)}, **v}
    want, state = layer.apply(v, x, mutable=["batch_stats"])
    y, mean, var = kernels.batch_norm_train(jnp.asarray(x), v["params"]["scale"], v["params"]["bias"], 1e-5)
    np.testing.assert_allclose(np.asarray(y), np.asarray(want), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(mean), x.mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(var), x.astype(np.float64).var(axis=(0, 1, 2)), rtol=1e-5)  # biased
    np.testing.assert_allclose(0.9 + 0.1 * np.asarray(var), np.asarray(state["batch_stats"]["var"]), rtol=1e-6)
    # The hand-written VJP against finite differences (float64), for random cotangents of y, mean and variance.
    with enable_x64(True):
        args = (jnp.asarray(x, jnp.float64), v["params"]["scale"].astype(jnp.float64),
                v["params"]["bias"].astype(jnp.float64))  # fmt: skip
        jax.test_util.check_grads(lambda *a: kernels.batch_norm_train(*a, 1e-5), args, order=1, modes=["rev"])


def test_batch_norm_train_gradient_at_batch_512_is_closer_to_float64_than_flaxs():
    # One layer, so no max-pool or ReLU decision can flip (in the whole network a flipped one
    # moves the gradient by its own size: over input seeds 1-3, 1.7e-4 to 4.0e-4 from float64's
    # with Flax's BatchNorm and 7e-7 to 6.0e-4 with these sums, one decision or another).
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(512, 16, 16, 16)) * 2 + 5).astype(np.float32)  # layer1's activations at width 8
    dy = (rng.normal(size=x.shape) * 0.01 + 0.003).astype(np.float32)
    scale, bias = rng.uniform(0.5, 2.0, 16).astype(np.float32), rng.normal(size=16).astype(np.float32)

    two_pass = kernels.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5)

    def flax_layer(x, scale, bias, layer=two_pass):
        stats = {"mean": jnp.zeros_like(scale), "var": jnp.ones_like(scale)}
        variables = {"params": {"scale": scale, "bias": bias}, "batch_stats": stats}
        return layer.apply(variables, x, mutable=["batch_stats"])[0]

    fast = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5)  # E[x^2] - E[x]^2

    def errors(fn, reference=None):
        with enable_x64(reference is None):
            dtype = jnp.float64 if reference is None else jnp.float32
            _, vjp = jax.vjp(jax.jit(fn), *(jnp.asarray(a, dtype) for a in (x, scale, bias)))
            got = [np.asarray(g, np.float64) for g in vjp(jnp.asarray(dy, dtype))]
        if reference is None:
            return got
        return [np.linalg.norm(g - r) / np.linalg.norm(r) for g, r in zip(got, reference)]

    reference = errors(flax_layer)
    ours = errors(lambda *a: kernels.batch_norm_train(*a, 1e-5)[0], reference)
    flaxs = errors(flax_layer, reference)
    fasts = errors(functools.partial(flax_layer, layer=fast), reference)
    # measured: dx, dscale, dbias 1.0e-7, 1.7e-5 to 2.3e-5, 1.0e-7 (Flax's two passes: 1.2e-7 to 3.9e-7,
    # 3.7e-5 to 7.7e-5, 1.2e-7 to 3.4e-7); Flax's E[x^2] - E[x]^2 cancels: dx 9.4e-7 (on AMD EPYC)
    assert max(ours) < 3e-5 and ours[1] < flaxs[1], (ours, flaxs)
    assert max(flaxs) < 1e-4 and fasts[0] > 4 * flaxs[0], (flaxs, fasts)


def test_matvec_batch_norm_model_is_flaxs_to_float_rounding():
    model_f, model_m = ResNet9(width=4), ResNet9(width=4, norm=kernels.MatvecBatchNorm)
    variables, x = assert_computes_as_the_default(model_m, stats_atol=1e-6)
    labels = jnp.arange(8) % 10

    def grads(model):
        def loss(p):
            logits, _ = model.apply({**variables, "params": p}, x, train=True, mutable=["batch_stats"])
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        return jax.tree.leaves(jax.jit(jax.grad(loss))(variables["params"]))

    for a, b in zip(grads(model_m), grads(model_f)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-5)
    # bfloat16 models get bfloat16 outputs from float32 statistics
    model_b = ResNet9(width=4, norm=kernels.MatvecBatchNorm, dtype=jnp.bfloat16)
    assert all(v.dtype == jnp.bfloat16 for v in model_lib.intermediates(model_b, variables, x).values())


def _training_gradient_at_batch_512(dtype, conv="xla", batch_norm="flax") -> list[np.ndarray]:
    """The gradient of the mean loss of a width-8 network on 512 random images, as float64 arrays."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(512, 32, 32, 3)), rng.integers(0, 10, 512)
    model = ResNet9(width=8, dtype=dtype, conv=kernels.CONVS[conv], norm=kernels.NORMS[batch_norm])
    v = jax.tree.map(lambda a: a.astype(dtype), init_variables(model, jax.random.key(0)))

    def loss(p):
        logits, _ = model.apply({"params": p, "batch_stats": v["batch_stats"]}, x.astype(dtype), train=True,
                                mutable=["batch_stats"])  # fmt: skip
        return optax.softmax_cross_entropy_with_integer_labels(logits.astype(dtype), y).mean()

    return [np.asarray(g, np.float64) for g in jax.tree.leaves(jax.jit(jax.grad(loss))(v["params"]))]


@pytest.fixture(scope="module")
def float64_gradient_at_batch_512():
    """The float64 reference, computed once for every convolution compared with it."""
    with enable_x64(True):
        return _training_gradient_at_batch_512(jnp.float64)


@pytest.mark.parametrize("conv, batch_norm, bound", [("xla", "flax", 3e-3), ("winograd", "matvec", 3e-3)])
def test_the_training_gradient_at_batch_512_is_close_to_float64(conv, batch_norm, bound, float64_gradient_at_batch_512):
    # The whole network in float32 against float64: a wrong kernel is O(1) away, bfloat16 with
    # XLA's convolutions 0.14. Its floor is set by max-pool and ReLU decisions that float32's
    # rounding flips, which differ from CPU to CPU: 9e-5 (Intel Xeon, Eigen convolutions), 2.1e-4
    # (AMD EPYC, YNNPACK's), 1.3e-3 (AMD EPYC, Eigen); Winograd's 7.5e-4 on the Xeon. BatchNorm's
    # own rounding, where no decision flips, is bounded one layer at a time above.
    reference = float64_gradient_at_batch_512
    ours = _training_gradient_at_batch_512(jnp.float32, conv, batch_norm)
    error = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(ours, reference)) / sum(np.sum(b**2) for b in reference))
    assert error < bound, error
