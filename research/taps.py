"""The kernel gradient of a 3x3 convolution as nine matmuls, one per kernel tap: a benchmark variant.

It paid off on XLA:CPU with YNNPACK's convolutions (the training step at batch 512:
0.33x -> 0.52x of jaxcifar's); with XLA's Eigen convolutions XLA's own gradient is
faster (0.72x against 0.63x; results/cpu-step-variants.json), so it left the product
(it was `--kernel-grad taps` up to 0.2.0) and stays here, where `research.benchmark`,
`research.cpu_variants` and `research.conv_layers` time it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxcifar import kernels
from jaxcifar.kernels import conv3x3


def kernel_grad_taps(x: jax.Array, g: jax.Array) -> jax.Array:
    """d(loss)/d(kernel) of a 3x3 'same' conv as nine matmuls, one per kernel tap.

    kernel_grad[i, j] = shifted(x, i, j)^T @ g over every (image, row, column),
    accumulated in float32. The same numbers as XLA's kernel gradient (to float
    rounding).
    """
    n, h, w, c = x.shape
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    g = g.reshape(-1, g.shape[-1])
    taps = [
        jax.lax.dot_general(
            padded[:, i : i + h, j : j + w, :].reshape(-1, c),
            g,
            (((0,), (0,)), ((), ())),
            preferred_element_type=jnp.float32,
        )
        for i in range(3)
        for j in range(3)
    ]
    return jnp.stack(taps).reshape(3, 3, c, g.shape[-1])


@jax.custom_vjp
def conv3x3_taps(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """conv3x3 whose kernel gradient is computed by `kernel_grad_taps`."""
    return conv3x3(x, kernel)


def _taps_fwd(x, kernel):
    return conv3x3(x, kernel), (x, kernel)


def _taps_bwd(residuals, g):
    x, kernel = residuals
    dx = jax.vjp(lambda x_: conv3x3(x_, kernel), x)[1](g)[0]  # XLA's input gradient
    return dx, kernel_grad_taps(x, g).astype(kernel.dtype)


conv3x3_taps.defvjp(_taps_fwd, _taps_bwd)


class TapsConv3x3(kernels.Conv3x3):
    """`kernels.Conv3x3` whose kernel gradient is `kernel_grad_taps`: a layer class for
    `model.ResNet9(conv=...)`, which takes it in every convolution but prep's (up to 0.2.0
    `--kernel-grad taps` took prep's too)."""

    def convolve(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
        return conv3x3_taps(x.astype(self.dtype), kernel.astype(self.dtype))
