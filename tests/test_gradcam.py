"""Tests for jaxcifar.gradcam: hand-computed maps, finite differences, localisation, the CLI."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxcifar import gradcam as gc
from jaxcifar import model as model_lib
from jaxcifar import steps
from jaxcifar.checkpoint import load_variables
from jaxcifar.model import GRADCAM_LAYERS, ResNet9
from jaxcifar.steps import state_shapes


def random_variables(width=4, seed=0):
    """A model with random BN statistics too, so eval mode is not the identity."""
    model = ResNet9(width=width)
    variables = model_lib.init_variables(model, jax.random.key(seed))
    images = jax.random.normal(jax.random.key(seed + 1), (16, 32, 32, 3))
    _, state = jax.jit(lambda v: model.apply(v, images, train=True, mutable=["batch_stats"]))(variables)
    return model, {"params": variables["params"], "batch_stats": state["batch_stats"]}


def images(n, seed=2):
    return np.asarray(jax.random.normal(jax.random.key(seed), (n, 32, 32, 3)))


def upsample_and_scale(cam):
    up = np.asarray(jax.image.resize(jnp.asarray(cam), (cam.shape[0], 32, 32), "bilinear"))
    lo, hi = up.min(axis=(1, 2), keepdims=True), up.max(axis=(1, 2), keepdims=True)
    return np.where(hi - lo > 1e-12, (up - lo) / np.where(hi - lo > 1e-12, hi - lo, 1), 0)


@pytest.mark.parametrize("layer", ["layer3_out", "res2_out"])
def test_last_layers_match_the_hand_computed_map(layer):
    # After layer3_out come only a global max-pool (4x4) and the dense layer W, so
    # d y_c / d A[h, w, k] is W[k, c] at the maximum of channel k (split over ties)
    # and the spatial mean is W[k, c] / 16. res2_out enters layer3_out by addition:
    # the same weights. So cam = ReLU(sum_k W[k, c] / 16 * A_k).
    model, variables = random_variables()
    x = images(6)
    targets = np.array([0, 3, 9, 1, 1, 7])
    result = gc.gradcam(model, variables, x, targets)
    acts = model_lib.intermediates(model, variables, jnp.asarray(x))
    a = np.asarray(acts[layer], np.float64)
    w = np.asarray(variables["params"]["fc"]["kernel"], np.float64)[:, targets].T / 16  # [N, K]
    np.testing.assert_allclose(result.weights[layer], w, rtol=1e-5, atol=1e-7)
    cam = np.maximum(np.einsum("nhwk,nk->nhw", a, w), 0)
    np.testing.assert_allclose(result.raw[layer], cam, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.maps[layer], upsample_and_scale(cam), atol=1e-5)


@pytest.mark.parametrize("layer", ["layer1_out", "res1_out"])
def test_early_layer_weights_match_forward_mode_derivatives(layer):
    # w_k = (1/HW) x the derivative of y_c along "add eps to all of channel k".
    # Forward-mode jax.jvp computes that directional derivative independently of
    # the reverse-mode jax.grad inside gradcam.
    model, variables = random_variables(seed=3)
    x = jnp.asarray(images(2, seed=4))
    targets = np.array([5, 2])
    result = gc.gradcam(model, variables, x, targets)
    shapes = {k: v.shape for k, v in model_lib.intermediates(model, variables, x).items()}
    _, h, w_, k = shapes[layer]
    zeros = {n: jnp.zeros(s) for n, s in shapes.items()}

    def scores(pert):
        logits = model.apply({**variables, "perturbations": pert}, x)
        return logits[jnp.arange(2), targets]

    for channel in range(k):
        direction = {n: jnp.zeros(s) for n, s in shapes.items()}
        direction[layer] = direction[layer].at[..., channel].set(1.0)
        _, dscore = jax.jvp(scores, (zeros,), (direction,))
        np.testing.assert_allclose(
            result.weights[layer][:, channel], np.asarray(dscore) / (h * w_), rtol=1e-4, atol=1e-7
        )


def test_weights_match_finite_differences_of_the_class_score():
    # The same derivative by central differences of the score (float32, so a loose tolerance).
    model, variables = random_variables(seed=3)
    x = jnp.asarray(images(1, seed=4))
    result = gc.gradcam(model, variables, x, np.array([5]))
    shapes = {k: v.shape for k, v in model_lib.intermediates(model, variables, x).items()}
    layer = "res2_out"
    _, h, w_, k = shapes[layer]

    def score(channel, eps):
        pert = {n: jnp.zeros(s) for n, s in shapes.items()}
        pert[layer] = pert[layer].at[..., channel].set(eps)
        return float(model.apply({**variables, "perturbations": pert}, x)[0, 5])

    eps = 1e-3
    fd = np.array([(score(c, eps) - score(c, -eps)) / (2 * eps) / (h * w_) for c in range(k)])
    np.testing.assert_allclose(result.weights[layer][0], fd, rtol=0.05, atol=2e-4)


def test_maps_are_nonnegative_normalised_and_32x32():
    model, variables = random_variables()
    result = gc.gradcam(model, variables, images(8))
    assert list(result.maps) == list(GRADCAM_LAYERS)
    for maps in result.maps.values():
        assert maps.shape == (8, 32, 32) and maps.dtype == np.float32
        assert maps.min() >= 0.0 and maps.max() <= 1.0 + 1e-6
        for m in maps:  # each image: min 0 and max 1, or all zero
            assert (abs(m.min()) < 1e-6 and abs(m.max() - 1) < 1e-5) or not m.any()
    # Default targets are the predicted classes.
    np.testing.assert_array_equal(result.targets, result.logits.argmax(-1))


def test_an_all_zero_map_stays_zero():
    # A target whose weights are all negative on non-negative activations gives
    # ReLU(...) = 0 everywhere: the guard keeps it 0 instead of NaN.
    model, variables = random_variables()
    params = jax.tree.map(lambda x: x, variables["params"])
    params["fc"]["kernel"] = params["fc"]["kernel"].at[:, 2].set(-1.0)
    result = gc.gradcam(model, {**variables, "params": params}, images(3), np.array([2, 2, 2]))
    for layer in ("layer3_out", "res2_out"):  # non-negative activations, negative weights
        assert np.all(result.maps[layer] == 0.0)
        assert np.isfinite(result.maps[layer]).all()


def test_bad_inputs():
    model, variables = random_variables()
    with pytest.raises(ValueError, match=r"expects images float32\[N, H, W, 3\], got shape \(2, 3, 32, 32\)"):
        gc.gradcam(model, variables, np.zeros((2, 3, 32, 32), np.float32))
    with pytest.raises(ValueError, match=r"targets must have shape \(2,\), got \(3,\)"):
        gc.gradcam(model, variables, np.zeros((2, 32, 32, 3), np.float32), np.array([1, 2, 3]))


def quadrant_data(n, seed):
    """Noise images; class 1 iff a bright square sits somewhere in the top-left
    quadrant. Noisy dim squares anywhere in both classes make the network look
    for brightness, not for any change from the background."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.3, size=(n, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 2, n).astype(np.int32)
    for i in range(n):
        oy, ox = rng.integers(0, 26, size=2)
        x[i, oy : oy + 6, ox : ox + 6] += 0.8  # a dim square anywhere: not evidence
        if y[i]:
            oy, ox = rng.integers(1, 10, size=2)
            x[i, oy : oy + 6, ox : ox + 6] += 2.5
    return x, y


def test_map_points_at_the_region_that_decides_the_class():
    x, y = quadrant_data(512, seed=0)
    model = ResNet9(width=8, num_classes=2)
    schedule = optax.constant_schedule(0.05)
    state = steps.create_train_state(model, steps.make_optimizer(schedule, weight_decay=5e-4), jax.random.key(0))
    step = jax.jit(lambda s, b: steps.train_step(s, b, schedule))
    for i in range(120):
        sl = slice((i % 8) * 64, (i % 8 + 1) * 64)
        state, metrics = step(state, (x[sl], y[sl]))
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    tx, ty = quadrant_data(200, seed=1)
    result = gc.gradcam(model, variables, tx, np.ones(200, np.int32))
    assert (result.logits.argmax(-1) == ty).mean() > 0.9  # it learnt the rule
    positives = ty == 1
    # A uniform map puts 25% of its mass in the quadrant. Measured: layer1_out
    # 72%, res1_out 80%, layer3_out 57% (4x4 cells: the coarsest map).
    for layer, least in (("layer1_out", 0.5), ("res1_out", 0.5), ("layer3_out", 0.4)):
        maps = result.maps[layer][positives]
        share = maps[:, :16, :16].sum(axis=(1, 2)) / np.maximum(maps.sum(axis=(1, 2)), 1e-12)
        assert np.median(share) > least, (layer, np.median(share))


def test_cli_writes_both_figures(tiny_run, tmp_path):
    run, _, config, ds = tiny_run
    result = gc.main(["--run", str(run), "--out", str(tmp_path), "--count", "6"])
    from PIL import Image

    assert len(result["indices"]) == 6
    assert all(p != a for p, a in zip(result["predicted"], result["labels"]))  # misclassified, all of them
    with Image.open(tmp_path / "gradcam_misclassified.png") as im:
        assert im.size[1] > im.size[0]  # 6 rows of 5 panels: taller than wide
    assert (tmp_path / "misclassified.png").stat().st_size > 10_000
    # The first misclassified images, in test-set order.
    model = ResNet9(width=4)
    variables = load_variables(run, state_shapes(config), "best")
    predicted = gc.predict_classes(model, variables, ds.test_images)
    np.testing.assert_array_equal(result["indices"], np.flatnonzero(predicted != ds.test_labels)[:6])
    # The figures now exist: a second call keeps them unless --force.
    with pytest.raises(SystemExit) as exc:
        gc.main(["--run", str(run), "--out", str(tmp_path), "--count", "3"])
    assert exc.value.code == 2
    assert len(gc.main(["--run", str(run), "--out", str(tmp_path), "--count", "3", "--force"])["indices"]) == 3


def test_random_choice_is_seeded(tiny_run, tmp_path):
    run = tiny_run[0]
    a = gc.main(["--run", str(run), "--out", str(tmp_path / "a"), "--count", "4", "--random", "--seed", "1"])
    b = gc.main(["--run", str(run), "--out", str(tmp_path / "b"), "--count", "4", "--random", "--seed", "1"])
    assert a["indices"] == b["indices"]


def test_missing_and_incompatible_checkpoints(tiny_run, tmp_path, capsys):
    run, _, config, _ = tiny_run
    with pytest.raises(SystemExit):
        gc.main(["--run", str(tmp_path / "nowhere")])
    assert "config.json not found: --run must be a folder written by jaxcifar.train" in capsys.readouterr().err
    with pytest.raises(ValueError, match="another --width"):
        load_variables(run, state_shapes(dataclasses.replace(config, width=8)), "best")
