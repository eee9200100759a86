"""Tests for research.taps: the nine-matmul kernel gradient is XLA's, to float rounding."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxcifar import kernels
from jaxcifar.model import ResNet9, init_variables
from research import taps


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_taps_kernel_gradient_matches_xla(dtype):
    x = jax.random.normal(jax.random.key(0), (8, 32, 32, 6)).astype(dtype)
    k = (0.1 * jax.random.normal(jax.random.key(1), (3, 3, 6, 5))).astype(dtype)
    g = jax.random.normal(jax.random.key(2), (8, 32, 32, 5)).astype(dtype)
    ours = jax.vjp(taps.conv3x3_taps, x, k)[1](g)
    theirs = jax.vjp(kernels.conv3x3, x, k)[1](g)
    tol = 1e-5 if dtype == jnp.float32 else 2e-2
    for a, b in zip(ours, theirs):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), rtol=tol, atol=tol * 10)


def test_taps_model_has_the_same_parameters_and_gradients():
    model_x = ResNet9(width=4)
    variables = init_variables(model_x, jax.random.key(0))
    model_t = ResNet9(width=4, conv=taps.TapsConv3x3)
    x = jax.random.normal(jax.random.key(0), (8, 32, 32, 3))
    labels = jnp.arange(8) % 10

    def grads(model):
        def loss(p):
            logits, _ = model.apply({**variables, "params": p}, x, train=True, mutable=["batch_stats"])
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        return jax.jit(jax.grad(loss))(variables["params"])

    gx, gt = grads(model_x), grads(model_t)
    for a, b in zip(jax.tree.leaves(gx), jax.tree.leaves(gt)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
