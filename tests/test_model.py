"""Tests for jaxcifar.model: size, shapes, BatchNorm semantics, dtypes, learning."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import optax
import pytest

from jaxcifar import model as model_lib
from jaxcifar.model import GRADCAM_LAYERS, ResNet9, forward_flops, init_variables

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
    probs = jax.jit(lambda v, x: model_lib.predict(model, v, x))(variables, random_images(5))
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


def test_summary_prints_the_originals_total(capsys):
    model_lib.main([])
    out = capsys.readouterr().out
    assert "Total params: 6,573,120" in out
    assert "res2/conv_bn2/conv  Conv       (1, 4, 4, 512)       2,359,296" in out
    assert "fc                  Dense      (1, 10)                  5,120" in out


def test_summary_rejects_bad_width():
    with pytest.raises(SystemExit):
        model_lib.main(["--width", "0"])


def test_max_pool_matches_flax_in_value_and_both_derivatives():
    import flax.linen as nn

    x = random_images(4)
    x = jnp.concatenate([x, x[:, :, :, :1]], axis=-1)  # 4 channels
    x = x.at[0, 0, 0, 0].set(x[0, 0, 1, 0])  # an exact tie: the first maximum takes the gradient
    ref = lambda x: nn.max_pool(x, (2, 2), (2, 2))  # noqa: E731
    np.testing.assert_array_equal(np.asarray(model_lib.max_pool2(x)), np.asarray(ref(x)))
    g = jax.random.normal(jax.random.key(5), (4, 16, 16, 4))
    ours = jax.vjp(model_lib.max_pool2, x)[1](g)[0]
    theirs = jax.vjp(ref, x)[1](g)[0]
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))  # select_and_scatter, bit for bit
    t = jax.random.normal(jax.random.key(6), x.shape)
    np.testing.assert_array_equal(
        np.asarray(jax.jvp(model_lib.max_pool2, (x,), (t,))[1]), np.asarray(jax.jvp(ref, (x,), (t,))[1])
    )


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_taps_kernel_gradient_matches_xla(dtype):
    x = jax.random.normal(jax.random.key(0), (8, 32, 32, 6)).astype(dtype)
    k = (0.1 * jax.random.normal(jax.random.key(1), (3, 3, 6, 5))).astype(dtype)
    g = jax.random.normal(jax.random.key(2), (8, 32, 32, 5)).astype(dtype)
    ours = jax.vjp(model_lib.conv3x3_taps, x, k)[1](g)
    theirs = jax.vjp(model_lib.conv3x3, x, k)[1](g)
    tol = 1e-5 if dtype == jnp.float32 else 2e-2
    for a, b in zip(ours, theirs):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), rtol=tol, atol=tol * 10)


def test_taps_model_has_the_same_parameters_and_gradients():
    model_x, variables = tiny_variables(width=4)
    model_t = ResNet9(width=4, kernel_grad="taps")
    x = random_images(8)
    labels = jnp.arange(8) % 10

    def grads(model):
        def loss(p):
            logits, _ = model.apply({**variables, "params": p}, x, train=True, mutable=["batch_stats"])
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        return jax.jit(jax.grad(loss))(variables["params"])

    gx, gt = grads(model_x), grads(model_t)
    for a, b in zip(jax.tree.leaves(gx), jax.tree.leaves(gt)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_winograd_matrices_are_lavins_from_the_points_0_1_minus1_2_minus2():
    # Toom-Cook: row j of B^T holds the coefficients (x^0 first) of prod_{l != j} (x - p_l),
    # the last row those of prod_l (x - p_l); G's row j is (1, p_j, p_j^2) / prod_{l != j} (p_j - p_l);
    # A^T's row i is p_j^i, with a 1 for the point at infinity in the last row.
    points = [0.0, 1.0, -1.0, 2.0, -2.0]
    polys = [np.poly([q for q in points if q != p])[::-1] for p in points] + [np.poly(points)[::-1]]
    bt = np.array([np.pad(c, (0, 6 - len(c))) for c in polys])
    g = [np.array([1, p, p * p]) / np.prod([p - q for q in points if q != p]) for p in points] + [[0, 0, 1]]
    at = [[p**i for p in points] + [float(i == 3)] for i in range(4)]
    np.testing.assert_allclose(model_lib.WINOGRAD_BT, bt, atol=1e-12)
    np.testing.assert_allclose(model_lib.WINOGRAD_G, g, atol=1e-12)
    np.testing.assert_allclose(model_lib.WINOGRAD_AT, at, atol=1e-12)


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
    y, vjp = jax.vjp(jax.jit(model_lib.conv3x3_winograd), x, k)
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
    assert jax.tree.map(jnp.shape, init_variables(model, jax.random.key(0))) == jax.tree.map(jnp.shape, variables)
    x = random_images(8)
    for train in (False, True):
        (want, want_stats), (got, stats) = forward(default, variables, x, train), forward(model, variables, x, train)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-5)
        for a, b in zip(jax.tree.leaves(stats), jax.tree.leaves(want_stats)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=stats_atol)
    return variables, x


def test_winograd_model_has_the_same_parameters_and_close_outputs():
    variables, x = assert_computes_as_the_default(ResNet9(width=4, conv="winograd"), stats_atol=1e-5)
    # bfloat16 models compute Winograd's convolutions in float32 and hand back bfloat16
    model_b = ResNet9(width=4, conv="winograd", dtype=jnp.bfloat16)
    intermediates = model_lib.intermediates(model_b, variables, x)
    assert all(v.dtype == jnp.bfloat16 for v in intermediates.values())


def test_winograd_is_used_where_the_side_is_a_multiple_of_4_and_not_in_prep():
    layer = model_lib.Conv3x3(6, conv="winograd")
    calls, seen = [], []
    original = model_lib.conv3x3_winograd

    def spy(x, k):
        calls.append(x.shape)
        return original(x, k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(model_lib, "conv3x3_winograd", spy)
        for side in (8, 6):  # 6: not a multiple of 4, XLA's convolution
            x = jnp.ones((1, side, side, 5))
            v = layer.init(jax.random.key(0), x)
            calls.clear()
            np.testing.assert_allclose(layer.apply(v, x), model_lib.conv3x3(x, v["params"]["kernel"]), rtol=1e-5)
            seen += calls
        model = ResNet9(width=4, conv="winograd")
        v = init_variables(model, jax.random.key(0))
        calls.clear()
        model.apply(v, jnp.ones((1, 32, 32, 3)))
        seen += calls
    # the 8x8 layer, then 7 of the network's 8 convolutions: not prep's (3 channels, 32x32)
    assert seen == [(1, 8, 8, 5), (1, 32, 32, 4), (1, 16, 16, 8), (1, 16, 16, 8), (1, 16, 16, 8), (1, 8, 8, 16),
                     (1, 4, 4, 32), (1, 4, 4, 32)]  # fmt: skip


@pytest.mark.parametrize("shape", [(16, 8, 8, 64), (3, 5, 7, 16), (512, 4, 4, 48)])
def test_column_sums_match_float64(shape):
    # 16x8x8 rows of 64: 256 rows side by side; 105 rows: one run (gcd 1); 8192 rows of 48: gcd(8192, 341) = 1
    x = np.random.default_rng(0).normal(3.0, 2.0, size=shape).astype(np.float32)
    got = model_lib.column_sums(jnp.asarray(x))
    assert got.shape == (shape[-1],) and got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), x.astype(np.float64).sum(axis=(0, 1, 2)), rtol=1e-5)


def test_batch_norm_train_is_flaxs_layer_and_its_gradient_is_the_derivative():
    x = np.random.default_rng(1).normal(1.0, 2.0, size=(8, 4, 4, 6)).astype(np.float32)
    layer = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5, use_fast_variance=False)
    v = layer.init(jax.random.key(0), x)
    v = {"params": {"scale": jnp.linspace(0.5, 2.0, 6), "bias": jnp.linspace(-1.0, 1.0, 6)}, **v}
    want, state = layer.apply(v, x, mutable=["batch_stats"])
    y, mean, var = model_lib.batch_norm_train(jnp.asarray(x), v["params"]["scale"], v["params"]["bias"], 1e-5)
    np.testing.assert_allclose(np.asarray(y), np.asarray(want), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(mean), x.mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(var), x.astype(np.float64).var(axis=(0, 1, 2)), rtol=1e-5)  # biased
    np.testing.assert_allclose(0.9 + 0.1 * np.asarray(var), np.asarray(state["batch_stats"]["var"]), rtol=1e-6)
    # The hand-written VJP against finite differences (float64), for random cotangents of y, mean and variance.
    with jax.enable_x64(True):
        args = (jnp.asarray(x, jnp.float64), v["params"]["scale"].astype(jnp.float64),
                v["params"]["bias"].astype(jnp.float64))  # fmt: skip
        jax.test_util.check_grads(lambda *a: model_lib.batch_norm_train(*a, 1e-5), args, order=1, modes=["rev"])


def test_batch_norm_train_gradient_at_batch_512_is_closer_to_float64_than_flaxs():
    # One layer, so no max-pool or ReLU decision can flip (in the whole network a flipped one
    # moves the gradient by its own size: over input seeds 1-3, 1.7e-4 to 4.0e-4 from float64's
    # with Flax's BatchNorm and 7e-7 to 6.0e-4 with these sums, one decision or another).
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(512, 16, 16, 16)) * 2 + 5).astype(np.float32)  # layer1's activations at width 8
    dy = (rng.normal(size=x.shape) * 0.01 + 0.003).astype(np.float32)
    scale, bias = rng.uniform(0.5, 2.0, 16).astype(np.float32), rng.normal(size=16).astype(np.float32)
    layer = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5, use_fast_variance=False)

    def flax_layer(x, scale, bias):
        stats = {"mean": jnp.zeros_like(scale), "var": jnp.ones_like(scale)}
        variables = {"params": {"scale": scale, "bias": bias}, "batch_stats": stats}
        return layer.apply(variables, x, mutable=["batch_stats"])[0]

    def errors(fn, reference=None):
        with jax.enable_x64(reference is None):
            dtype = jnp.float64 if reference is None else jnp.float32
            _, vjp = jax.vjp(jax.jit(fn), *(jnp.asarray(a, dtype) for a in (x, scale, bias)))
            got = [np.asarray(g, np.float64) for g in vjp(jnp.asarray(dy, dtype))]
        if reference is None:
            return got
        return [np.linalg.norm(g - r) / np.linalg.norm(r) for g, r in zip(got, reference)]

    reference = errors(flax_layer)
    ours = errors(lambda *a: model_lib.batch_norm_train(*a, 1e-5)[0], reference)
    flaxs = errors(flax_layer, reference)
    # measured: dx, dscale, dbias 1.0e-7, 1.7e-5, 1.0e-7 (Flax's 3.9e-7, 7.7e-5, 3.4e-7)
    assert max(ours) < 3e-5 and ours[1] < flaxs[1], (ours, flaxs)


def test_matvec_batch_norm_model_is_flaxs_to_float_rounding():
    model_f, model_m = ResNet9(width=4), ResNet9(width=4, batch_norm="matvec")
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
    model_b = ResNet9(width=4, batch_norm="matvec", dtype=jnp.bfloat16)
    assert all(v.dtype == jnp.bfloat16 for v in model_lib.intermediates(model_b, variables, x).values())


def test_forward_flops_by_hand():
    # 2 FLOPs per multiply-add. At width 64, layer1 (32x32, 64 -> 128) costs as
    # much as res1's two 16x16 convolutions, layer2, layer3 and res2's two.
    stage = 2 * 32 * 32 * 9 * 64 * 128
    assert forward_flops() == 2 * 32 * 32 * 9 * 3 * 64 + 5 * stage + 2 * 512 * 10 == 758_523_904
    # XLA's cost analysis skips the taps on zero padding (a larger share at 4x4)
    # and adds the elementwise work: a little below ours, never above.
    model = ResNet9(width=8)
    variables = init_variables(model, jax.random.key(0))
    fn = jax.jit(lambda v, x: model.apply(v, x, train=False))
    cost = fn.lower(variables, jnp.zeros((1, 32, 32, 3))).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    assert 0.85 < cost["flops"] / forward_flops(8) < 0.95


def test_conv_shapes_are_the_networks_convolutions_in_order():
    model = ResNet9(width=4)
    variables = init_variables(model, jax.random.key(0))
    images = jnp.zeros((1, 32, 32, 3))
    _, state = model.apply(variables, images, capture_intermediates=True, mutable=["intermediates"])
    shapes = model_lib.conv_shapes(4)
    assert [s[1:] for s in shapes] == [
        (32, 3, 4), (32, 4, 8), (16, 8, 8), (16, 8, 8), (16, 8, 16), (8, 16, 32), (4, 32, 32), (4, 32, 32)
    ]  # fmt: skip
    convs = [p for p in jax.tree_util.tree_flatten_with_path(variables["params"])[0] if p[1].ndim == 4]
    assert len(convs) == len(shapes)
    for name, side, c_in, c_out in shapes:
        node_params, node_out = variables["params"], state["intermediates"]
        for part in name.split("."):
            node_params, node_out = node_params[part], node_out[part]
        assert node_params["conv"]["kernel"].shape == (3, 3, c_in, c_out)
        assert node_out["conv"]["__call__"][0].shape == (1, side, side, c_out)  # before any max-pool
    assert model_lib.conv_flops(32, 3, 4) == 2 * 32 * 32 * 9 * 3 * 4


def _training_gradient_at_batch_512(dtype, conv="xla", batch_norm="flax") -> list[np.ndarray]:
    """The gradient of the mean loss of a width-8 network on 512 random images, as float64 arrays."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(512, 32, 32, 3)), rng.integers(0, 10, 512)
    model = ResNet9(width=8, dtype=dtype, conv=conv, batch_norm=batch_norm)
    v = jax.tree.map(lambda a: a.astype(dtype), init_variables(model, jax.random.key(0)))

    def loss(p):
        logits, _ = model.apply({"params": p, "batch_stats": v["batch_stats"]}, x.astype(dtype), train=True,
                                mutable=["batch_stats"])  # fmt: skip
        return optax.softmax_cross_entropy_with_integer_labels(logits.astype(dtype), y).mean()

    return [np.asarray(g, np.float64) for g in jax.tree.leaves(jax.jit(jax.grad(loss))(v["params"]))]


@pytest.fixture(scope="module")
def float64_gradient_at_batch_512():
    """The float64 reference, computed once for every convolution compared with it."""
    with jax.enable_x64(True):
        return _training_gradient_at_batch_512(jnp.float64)


@pytest.mark.parametrize("conv, batch_norm, bound", [("xla", "flax", 3e-4), ("winograd", "flax", 3e-3)])
def test_the_training_gradient_at_batch_512_is_close_to_float64(conv, batch_norm, bound, float64_gradient_at_batch_512):
    # BatchNorm's variance as E[x^2] - E[x]^2 (Flax's default) cancels in float32 over a
    # batch of 512: the gradient was 1.9e-3 from float64's at this width; two passes give 9e-5.
    # Winograd's convolutions give 7.5e-4 (bfloat16 with XLA's: 0.14).
    reference = float64_gradient_at_batch_512
    ours = _training_gradient_at_batch_512(jnp.float32, conv, batch_norm)
    error = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(ours, reference)) / sum(np.sum(b**2) for b in reference))
    assert error < bound, error
