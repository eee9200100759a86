"""The ResNet-9 of David Page's "How to train your ResNet", as a Flax linen module.

This module owns the network and nothing else: layers, initialisation, the
compute type, the convolution algorithm (XLA's, or Winograd's F(4x4, 3x3)), how
BatchNorm sums its batch (Flax's reductions, or matrix-vector products) and the
names under which Grad-CAM finds its activations.

        prep    conv3x3(w)                          -> BN -> ReLU          32x32
        layer1  conv3x3(2w) -> maxpool2 -> BN -> ReLU = X;  X + res1(X)     16x16
        layer2  conv3x3(4w) -> maxpool2 -> BN -> ReLU                       8x8
        layer3  conv3x3(8w) -> maxpool2 -> BN -> ReLU = X;  X + res2(X)     4x4
        head    maxpool4 -> flatten -> dense(10, no bias)                   logits

where res(X) = (conv3x3 -> BN -> ReLU -> conv3x3 -> BN -> ReLU)(X) and w is the
base width (64 by default). No convolution and no dense layer has a bias: at the
default width that is 6,573,120 trainable parameters, the figure of the PyTorch
original's summary.

Initialisation follows PyTorch's defaults, so a run here starts from the same
kind of weights as the PyTorch original: `nn.Conv2d` and `nn.Linear` draw their
weights from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with a=sqrt(5)),
where fan_in = kernel height * kernel width * input channels; BatchNorm starts at
scale 1 and bias 0. BatchNorm uses PyTorch's epsilon 1e-5 and momentum 0.1, which
is 0.9 in Flax's convention (new = 0.9 * old + 0.1 * batch), and computes the
batch variance in two passes, as PyTorch does. One difference
remains: PyTorch's running variance uses the unbiased batch variance (n / (n-1)),
Flax the biased one; with n >= 8192 values per channel at batch 512 the two
differ by less than 0.02%.

Run `python -m jaxcifar.model` for a layer-by-layer summary.
"""

from __future__ import annotations

import argparse
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

NUM_CLASSES = 10
DEFAULT_WIDTH = 64
# The activations Grad-CAM reads, in the order the seed's figures showed them,
# with the titles figures give them. (A sown name cannot repeat a submodule's.)
GRADCAM_LAYERS = ("layer1_out", "res1_out", "layer3_out", "res2_out")
LAYER_TITLES = {
    "layer1_out": "Layer1 (X + R1)",
    "res1_out": "R1",
    "layer3_out": "Layer3 (X + R2)",
    "res2_out": "R2",
}

# U(-1/sqrt(fan_in), +1/sqrt(fan_in)): variance_scaling draws from
# U(-sqrt(3 * scale / fan_in), +sqrt(3 * scale / fan_in)), so scale = 1/3.
torch_default_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def _windows(x: jax.Array) -> jax.Array:
    """[N, H, W, C] -> [N, H/2, W/2, C, 4]: each 2x2 window in row-major order."""
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4).reshape(n, h // 2, w // 2, c, 4)


@jax.custom_jvp
def max_pool2(x: jax.Array) -> jax.Array:
    """2x2 max-pool, stride 2, NHWC (H and W even): nn.max_pool(x, (2, 2), (2, 2)).

    Its derivative follows the first maximum of each window, as XLA's own
    (select_and_scatter) does, bit for bit, but is computed from an argmax
    and a one-hot: the gradient took 24 instead of 173 ms for [128, 32, 32, 128]
    on the 2-core development CPU, where select_and_scatter was the slowest op
    of the training step. A custom JVP, so forward and reverse mode both work.
    """
    return _windows(x).max(axis=-1)


@max_pool2.defjvp
def _max_pool2_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    window = _windows(x)
    first_max = jax.nn.one_hot(jnp.argmax(window, axis=-1), 4, dtype=t.dtype)
    return window.max(axis=-1), jnp.sum(first_max * _windows(t), axis=-1)


def conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """3x3 'same' convolution, stride 1: x float[N, H, W, C], kernel float[3, 3, C, K] -> float[N, H, W, K]."""
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"))


def kernel_grad_taps(x: jax.Array, g: jax.Array) -> jax.Array:
    """d(loss)/d(kernel) of a 3x3 'same' conv as nine matmuls, one per kernel tap.

    kernel_grad[i, j] = shifted(x, i, j)^T @ g over every (image, row, column),
    accumulated in float32. The same numbers as XLA's kernel gradient (to float
    rounding), faster on CPU for large images; see Conv3x3.
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


# Winograd's minimal filtering F(4x4, 3x3) (Lavin and Gray, "Fast Algorithms for
# Convolutional Neural Networks", CVPR 2016): each 6x6 input tile d, taken every 4
# pixels, gives a 4x4 output tile Y = A^T [(G g G^T) * (B^T d B)] A, so a 3x3
# convolution becomes 36 matmuls over the channels with 2.25 multiply-adds per
# output instead of 9. Points 0, +-1, +-2 and infinity; the float32 result is within
# about 1e-5 of the largest output (XLA's direct convolution: 3e-7).
WINOGRAD_BT = (
    (4, 0, -5, 0, 1, 0),
    (0, -4, -4, 1, 1, 0),
    (0, 4, -4, -1, 1, 0),
    (0, -2, -1, 2, 1, 0),
    (0, 2, -1, -2, 1, 0),
    (0, 4, 0, -5, 0, 1),
)
WINOGRAD_G = (
    (1 / 4, 0, 0),
    (-1 / 6, -1 / 6, -1 / 6),
    (-1 / 6, 1 / 6, -1 / 6),
    (1 / 24, 1 / 12, 1 / 6),
    (1 / 24, -1 / 12, 1 / 6),
    (0, 0, 1),
)
WINOGRAD_AT = (
    (1, 1, 1, 1, 1, 0),
    (0, 1, -1, 2, -2, 0),
    (0, 1, 1, 4, 4, 0),
    (0, 1, -1, 8, -8, 1),
)
WINOGRAD_TILE = 4  # output pixels per tile side
WINOGRAD_INPUT_TILE = WINOGRAD_TILE + 2  # input pixels per tile side: 6


def _combine(matrix: Sequence[Sequence[float]], parts: Sequence[jax.Array]) -> list[jax.Array]:
    """[sum_j matrix[i][j] * parts[j] for each row i], skipping zero coefficients.

    Written out term by term, not as a dot with a 6x6 matrix, so that XLA fuses a
    whole transform into one elementwise loop.
    """
    out = []
    for row in matrix:
        terms = [p if c == 1 else -p if c == -1 else c * p for c, p in zip(row, parts) if c != 0]
        out.append(functools.reduce(jnp.add, terms))
    return out


def _tile_transform(
    matrix: Sequence[Sequence[float]], rows: Sequence[jax.Array], columns: Callable[[jax.Array], Sequence[jax.Array]]
) -> jax.Array:
    """M t M^T for every tile t at once: `matrix` along the tiles' rows, then along their columns.

    rows: the tiles' rows, one array each; columns(r): the columns of r, the
    transformed rows stacked on a new leading axis. Returns out[i, j, ...], entry
    (i, j) of the transformed tiles.

    The column pass runs once over all the transformed rows, not once per row: the
    same sums for every element, in a sixth of the operations (inside the compiled
    step XLA rounds them a little differently: the training gradient at batch 512
    came 7.5e-4 from float64's, against 1.4e-3 before). On the 2-core
    development CPU that cut the training step's compile time at width 64 from 20 s
    to 7 s (timed ad hoc) and its steps at batch 512 1.25x as fast (112 images/s against 90, the
    `winograd-per-entry` row of results/cpu-step-variants.json): XLA had made each of
    the 36 entries its own loop (the input transform compiled to 37 fusions, now 3).
    """
    return jnp.stack(_combine(matrix, columns(jnp.stack(_combine(matrix, rows)))), axis=1)


def _winograd_input(x: jax.Array) -> jax.Array:
    """x float[N, H, W, C] -> B^T d B of every 6x6 tile: float[36, N * H/4 * W/4, C]."""
    n, h, w, c = x.shape
    m, a = WINOGRAD_TILE, WINOGRAD_INPUT_TILE
    th, tw = h // m, w // m
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    tiles = _tile_transform(
        WINOGRAD_BT,
        [padded[:, r : r + m * (th - 1) + 1 : m] for r in range(a)],
        lambda rows: [rows[:, :, :, s : s + m * (tw - 1) + 1 : m] for s in range(a)],
    )
    return tiles.reshape(a * a, n * th * tw, c)


def _winograd_kernel(kernel: jax.Array) -> jax.Array:
    """kernel float[3, 3, C, K] -> G g G^T: float[36, C, K]."""
    g = jnp.asarray(WINOGRAD_G, kernel.dtype)
    return jnp.einsum("ai,ijck,bj->abck", g, kernel, g).reshape(WINOGRAD_INPUT_TILE**2, *kernel.shape[2:])


def _winograd_output(products: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """A^T M A of every tile: products float[36, N * H/4 * W/4, K] -> float[N, H, W, K] for shape (N, H, W, K)."""
    n, h, w, k = shape
    m, a = WINOGRAD_TILE, WINOGRAD_INPUT_TILE
    products = products.reshape(a, a, n, h // m, w // m, k)
    out = _tile_transform(WINOGRAD_AT, list(products), lambda rows: [rows[:, j] for j in range(a)])
    return out.transpose(2, 3, 0, 4, 1, 5).reshape(n, h, w, k)  # out[i, j, n, th, tw, k]


def _winograd_output_transpose(g: jax.Array) -> jax.Array:
    """The transpose of `_winograd_output`: g float[N, H, W, K] -> float[36, N * H/4 * W/4, K]."""
    n, h, w, k = g.shape
    m, a = WINOGRAD_TILE, WINOGRAD_INPUT_TILE
    tiles = g.reshape(n, h // m, m, w // m, m, k)
    a_matrix = tuple(zip(*WINOGRAD_AT))  # A: 6x4
    out = _tile_transform(
        a_matrix, [tiles[:, :, i] for i in range(m)], lambda rows: [rows[:, :, :, :, j] for j in range(m)]
    )
    return out.reshape(a * a, n * (h // m) * (w // m), k)


def _batched_matmul(a: jax.Array, b: jax.Array, contract: int) -> jax.Array:
    """[36, ...] x [36, ...] -> [36, ...]: one matmul per tile position, a's axis `contract` with b's axis 1."""
    return jax.lax.dot_general(a, b, (((contract,), (1,)), ((0,), (0,))))


@jax.custom_vjp
def conv3x3_winograd(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """conv3x3 by Winograd's F(4x4, 3x3): x float[N, H, W, C] (H, W multiples of 4), kernel float[3, 3, C, K].

    The same result as `conv3x3` to about 1e-5 of the largest output in float32.
    Its gradients are Winograd convolutions too: the input gradient is the output
    gradient convolved with the kernel turned round (channels swapped), the kernel
    gradient 36 matmuls of the input tiles with the output gradient's tiles.
    """
    return _winograd_fwd(x, kernel)[0]


def _winograd_fwd(x, kernel):
    tiles = _winograd_input(x)
    y = _winograd_output(_batched_matmul(tiles, _winograd_kernel(kernel), 2), (*x.shape[:3], kernel.shape[-1]))
    return y, (tiles, kernel)  # the tiles (2.25x the input) serve the kernel gradient


def _winograd_bwd(residuals, g):
    tiles, kernel = residuals
    dx = conv3x3_winograd(g, jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2))
    d_products = _batched_matmul(tiles, _winograd_output_transpose(g), 1)  # [36, C, K]
    gm, a = jnp.asarray(WINOGRAD_G, kernel.dtype), WINOGRAD_INPUT_TILE
    return dx, jnp.einsum("ai,abck,bj->ijck", gm, d_products.reshape(a, a, *d_products.shape[1:]), gm)


conv3x3_winograd.defvjp(_winograd_fwd, _winograd_bwd)


# Values per partial sum in column_sums: a row of about 64 KB of float32.
COLUMN_RUN = 16384


def column_sums(x: jax.Array) -> jax.Array:
    """Sums over every axis but the last: float32[..., C] -> float32[C], as one matrix-vector product.

    The [M, C] rows are viewed r at a time as [M / r, r * C] (r C ~ COLUMN_RUN values; a
    reshape, no copy), a vector of M / r ones times that matrix gives r partial sums of each
    column, and a short sum adds them. On the 2-core development CPU this took BatchNorm's
    mean and variance of [512, 32, 32, 64] in 48 instead of 90 ms, and of [512, 16, 16, 128]
    in 20 instead of 44 ms, against XLA's reductions (timed ad hoc), with errors against
    float64 of 2e-7 instead of 2e-6 (runs of M / r terms where XLA sums windows of 32^3).
    """
    c = x.shape[-1]
    rows = x.reshape(-1, c)
    r = math.gcd(rows.shape[0], max(1, COLUMN_RUN // c))
    ones = jnp.ones((rows.shape[0] // r,), rows.dtype)
    # HIGHEST: full float32 where a GPU would take TF32 by default; on CPUs, bit for bit the default.
    sums = jnp.matmul(ones, rows.reshape(-1, r * c), precision=jax.lax.Precision.HIGHEST)
    return sums.reshape(r, c).sum(axis=0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def batch_norm_train(
    x: jax.Array, scale: jax.Array, bias: jax.Array, epsilon: float
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """BatchNorm with the batch's statistics, its sums by `column_sums` and its gradient by hand.

    Args:
        x: float32[..., C]; statistics over every axis but the last (M values per channel).
        scale, bias: float32[C].
        epsilon: added to the variance.

    Returns:
        (y float32[..., C], mean float32[C], variance float32[C]): y = (x - mean) *
        (rsqrt(variance + epsilon) * scale) + bias, the variance the biased one in two
        passes, as Flax's nn.BatchNorm(use_fast_variance=False) computes them.

    The gradient, with xhat = (x - mean) * rsqrt(variance + epsilon):
    dx = scale * rsqrt(variance + epsilon) * (dy - sum(dy) / M - xhat * sum(dy * xhat) / M),
    dscale = sum(dy * xhat), dbias = sum(dy); the mean's and variance's own cotangents
    (zero in training, where they feed only the running statistics) add dmean / M and
    dvariance * 2 (x - mean) / M. Four column sums in all, where XLA's autodiff of
    Flax's layer reduces with its own (slower) windowed reductions.
    """
    return _batch_norm_fwd(x, scale, bias, epsilon)[0]


def _batch_norm_fwd(x, scale, bias, epsilon):
    m = x.size // x.shape[-1]
    mean = column_sums(x) / m
    var = column_sums(jnp.square(x - mean)) / m
    inv = jax.lax.rsqrt(var + epsilon)
    y = (x - mean) * (inv * scale) + bias
    return (y, mean, var), (x, mean, inv, scale)


def _batch_norm_bwd(epsilon, residuals, cotangents):
    x, mean, inv, scale = residuals
    dy, dmean, dvar = cotangents
    m = x.size // x.shape[-1]
    centred = x - mean
    sum_dy, sum_dy_centred = column_sums(dy), column_sums(dy * centred)
    dx = (scale * inv) * (dy - sum_dy / m - centred * (inv * inv * sum_dy_centred / m))
    dx = dx + dmean / m + centred * (2 * dvar / m)
    return dx, sum_dy_centred * inv, sum_dy


batch_norm_train.defvjp(_batch_norm_fwd, _batch_norm_bwd)


class MatvecBatchNorm(nn.Module):
    """nn.BatchNorm's layer (the same parameters, statistics and numbers to float rounding)
    with its batch sums as matrix-vector products (`batch_norm_train`).

    XLA:CPU reduces BatchNorm's statistics and their gradients in windows, slowly: on the
    2-core development CPU the step without them ran 1.2x as fast, and this layer made the
    training step at batch 512 1.14x as fast (results/cpu-step-variants.json; 1.19x in
    results/benchmark-cpu.json). Statistics and outputs in float32, the outputs cast to `dtype`.
    """

    use_running_average: bool = False
    momentum: float = 0.9
    epsilon: float = 1e-5
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
        scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
        x = x.astype(jnp.float32)
        if self.use_running_average:
            y = (x - ra_mean.value) * (jax.lax.rsqrt(ra_var.value + self.epsilon) * scale) + bias
        else:
            y, mean, var = batch_norm_train(x, scale, bias, self.epsilon)
            if not self.is_initializing():
                ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
                ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
        return y.astype(self.dtype)


class Conv3x3(nn.Module):
    """3x3 convolution, stride 1, padding 1, no bias (the parameters of nn.Conv).

    conv="winograd" computes it by Winograd's F(4x4, 3x3) (`conv3x3_winograd`) in
    float32 whatever the compute type, where the image side is a multiple of 4 (XLA's
    convolution otherwise). On the 2-core development CPU it made the training step
    at batch 512 1.7x as fast as XLA's Eigen convolutions (results/cpu-step-variants.json);
    on GPUs cuDNN picks its own algorithms, so "xla" is their default
    (`steps.conv_algorithm`, which also keeps XLA's at small widths).

    kernel_grad="taps" computes the kernel gradient as nine matmuls, one per kernel
    tap, instead of XLA's convolution. It paid off on XLA:CPU with YNNPACK's
    convolutions (the training step at batch 512: 0.33x -> 0.52x of jaxcifar's); with
    XLA's Eigen convolutions, XLA's own gradient is faster (0.72x against taps' 0.63x;
    results/cpu-step-variants.json), so "xla" is the default everywhere and "taps"
    stays for comparison.
    """

    features: int
    dtype: Any = jnp.float32
    kernel_grad: str = "xla"  # xla | taps
    conv: str = "xla"  # xla | winograd

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", torch_default_init, (3, 3, x.shape[-1], self.features), jnp.float32)
        if self.conv == "winograd" and x.shape[1] % WINOGRAD_TILE == 0 and x.shape[2] % WINOGRAD_TILE == 0:
            return conv3x3_winograd(x.astype(jnp.float32), kernel).astype(self.dtype)
        x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
        if self.kernel_grad == "taps":
            return conv3x3_taps(x, kernel)
        return conv3x3(x, kernel)


class ConvBN(nn.Module):
    """conv3x3 (no bias) -> optional max-pool 2x2 -> BatchNorm -> ReLU.

    batch_norm="flax" is Flax's nn.BatchNorm, "matvec" `MatvecBatchNorm`: the same
    parameters and statistics, the same numbers to float rounding.
    """

    features: int
    pool: bool = False
    dtype: Any = jnp.float32
    kernel_grad: str = "xla"
    conv: str = "xla"
    batch_norm: str = "flax"  # flax | matvec

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = Conv3x3(self.features, dtype=self.dtype, kernel_grad=self.kernel_grad, conv=self.conv, name="conv")(x)
        if self.pool:
            x = max_pool2(x)
        # Variance as the mean of squared deviations, as PyTorch computes it, not
        # E[x^2] - E[x]^2 (Flax's default): over a batch of 512 the float32 sums
        # cancel, and the step's gradient was 1.9e-3 away from float64's (9e-5 with
        # this), for 4% of the CPU step's time. MatvecBatchNorm computes it so too.
        norm = (
            MatvecBatchNorm if self.batch_norm == "matvec" else functools.partial(nn.BatchNorm, use_fast_variance=False)
        )
        x = norm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=self.dtype, name="bn")(x)
        return nn.relu(x)


class Residual(nn.Module):
    """The residual branch: two ConvBN blocks at constant width (added by the caller)."""

    features: int
    dtype: Any = jnp.float32
    kernel_grad: str = "xla"
    conv: str = "xla"
    batch_norm: str = "flax"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        conv_bn = functools.partial(
            ConvBN,
            self.features,
            dtype=self.dtype,
            kernel_grad=self.kernel_grad,
            conv=self.conv,
            batch_norm=self.batch_norm,
        )
        return conv_bn(name="conv_bn2")(conv_bn(name="conv_bn1")(x, train), train)


class ResNet9(nn.Module):
    """ResNet-9 for 32x32 RGB images.

    Attributes:
        width: base width w; the stages have w, 2w, 4w, 8w channels (64 -> 64, 128,
            256, 512). Tests use tiny widths; the structure never changes.
        num_classes: size of the logit vector.
        dtype: compute type of convolutions and BatchNorm outputs (bfloat16 on
            accelerators). Parameters, BatchNorm statistics and logits stay float32.
        logit_scale: multiplies the logits; 1.0 is the PyTorch original,
            cifar10-fast used 0.125.
        kernel_grad: "xla", or "taps" for the kernel gradient as nine matmuls
            (see Conv3x3): the same parameters and numbers.
        conv: "xla", or "winograd" for Winograd's F(4x4, 3x3) in every
            convolution but prep's (see Conv3x3): the same parameters, the same
            numbers to about 1e-5. prep keeps XLA's: with 3 input channels its
            tiles cost more to transform than its matmuls save (3.8x XLA's
            forward pass; results/conv-layers-cpu.json).
        batch_norm: "flax" (nn.BatchNorm), or "matvec" for BatchNorm's sums as
            matrix-vector products (see MatvecBatchNorm): the same parameters and
            statistics, the same numbers to float rounding.
    """

    width: int = DEFAULT_WIDTH
    num_classes: int = NUM_CLASSES
    dtype: Any = jnp.float32
    logit_scale: float = 1.0
    kernel_grad: str = "xla"
    conv: str = "xla"
    batch_norm: str = "flax"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Logits of a batch.

        Args:
            x: float[N, 32, 32, 3] normalised images (any float dtype).
            train: use batch statistics and update `batch_stats` (pass
                `mutable=['batch_stats']`); otherwise use the running statistics.

        Returns:
            float32[N, num_classes] logits (softmax belongs to the loss and `predict`).

        The activations after layer1's add, res1, layer3's add and res2 are sown
        into the `intermediates` collection (when it is mutable) and exposed to
        `perturbations` (when it is passed), under the names in GRADCAM_LAYERS.
        Neither changes the computation when the collection is absent.
        """
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"ResNet9 expects NHWC images [N, H, W, 3], got shape {x.shape}")
        w, dtype = self.width, self.dtype
        kinds = {"kernel_grad": self.kernel_grad, "batch_norm": self.batch_norm}
        conv_bn = functools.partial(ConvBN, dtype=dtype, conv=self.conv, **kinds)
        residual = functools.partial(Residual, dtype=dtype, conv=self.conv, **kinds)
        x = x.astype(dtype)
        x = ConvBN(w, dtype=dtype, name="prep", **kinds)(x, train)

        x = conv_bn(2 * w, pool=True, name="layer1")(x, train)
        r = self._expose("res1_out", residual(2 * w, name="res1")(x, train))
        x = self._expose("layer1_out", x + r)

        x = conv_bn(4 * w, pool=True, name="layer2")(x, train)

        x = conv_bn(8 * w, pool=True, name="layer3")(x, train)
        r = self._expose("res2_out", residual(8 * w, name="res2")(x, train))
        x = self._expose("layer3_out", x + r)

        # Global max-pool over what is left (4x4 for 32x32 inputs).
        x = jnp.max(x, axis=(1, 2))
        x = nn.Dense(
            self.num_classes,
            use_bias=False,
            kernel_init=torch_default_init,
            dtype=jnp.float32,
            name="fc",
        )(x.astype(jnp.float32))
        return x * self.logit_scale

    def _expose(self, name: str, x: jax.Array) -> jax.Array:
        # sow: readable with mutable=['intermediates']; perturb: differentiable
        # through a zero 'perturbations' entry. Both are no-ops when not asked for.
        self.sow("intermediates", name, x, reduce_fn=lambda _, y: y, init_fn=lambda: None)
        return self.perturb(name, x)


def predict(model: ResNet9, variables: dict, images: jax.Array) -> jax.Array:
    """Class probabilities float32[N, num_classes] in eval mode."""
    return jax.nn.softmax(model.apply(variables, images, train=False), axis=-1)


@functools.partial(jax.jit, static_argnums=(0, 2))
def init_variables(model: ResNet9, rng: jax.Array, image_size: int = 32) -> dict:
    """`{'params', 'batch_stats'}` for a model, from a key.

    Jitted with the (hashable) model static: compiled once per model configuration.
    """
    variables = model.init(rng, jnp.zeros((1, image_size, image_size, 3), jnp.float32), train=False)
    return {"params": variables["params"], "batch_stats": variables["batch_stats"]}


def count_params(tree: Any) -> int:
    """Number of scalars in a pytree of arrays."""
    return sum(int(x.size) for x in jax.tree.leaves(tree))


def conv_shapes(width: int = DEFAULT_WIDTH, image_size: int = 32) -> list[tuple[str, int, int, int]]:
    """The network's 3x3 convolutions in order: (name, image side, input channels, output channels).

    The side is the convolution's own (before the max-pool that may follow it).
    """
    w, s = width, image_size
    return [
        ("prep", s, 3, w),
        ("layer1", s, w, 2 * w),
        ("res1.conv_bn1", s // 2, 2 * w, 2 * w),
        ("res1.conv_bn2", s // 2, 2 * w, 2 * w),
        ("layer2", s // 2, 2 * w, 4 * w),
        ("layer3", s // 4, 4 * w, 8 * w),
        ("res2.conv_bn1", s // 8, 8 * w, 8 * w),
        ("res2.conv_bn2", s // 8, 8 * w, 8 * w),
    ]


def conv_flops(side: int, c_in: int, c_out: int) -> int:
    """FLOPs of one image through one 3x3 'same' convolution: 2 per multiply-add, padding counted."""
    return 2 * side * side * 9 * c_in * c_out


def forward_flops(width: int = DEFAULT_WIDTH, image_size: int = 32) -> int:
    """FLOPs of one image's forward pass through the convolutions and the dense layer.

    2 per multiply-add, counting the zero padding as the usual quoted figures do
    (0.76 GFLOP at width 64; XLA's cost analysis, which skips the padded taps,
    counts 12% fewer at width 8). BatchNorm, ReLU and pooling add under 1%. A
    training step costs about 3x this: forward, input gradient, kernel gradient.
    """
    convs = conv_shapes(width, image_size)
    return sum(conv_flops(side, c_in, c_out) for _, side, c_in, c_out in convs) + 2 * 8 * width * NUM_CLASSES


def intermediates(model: ResNet9, variables: dict, images: jax.Array) -> dict[str, jax.Array]:
    """The Grad-CAM activations {name: [N, H, W, C]} of a batch, in eval mode."""
    _, state = model.apply(variables, images, train=False, mutable=["intermediates"])
    return dict(state["intermediates"])


def summary(model: ResNet9) -> str:
    """A layer-by-layer table in execution order: layer, kind, output shape, parameters.

    Shapes are NHWC for a batch of one. The table ends with the totals: trainable
    parameters and BatchNorm running statistics.
    """
    dummy = jnp.zeros((1, 32, 32, 3), jnp.float32)
    # Eager on purpose: the captured dict keeps call order (a jit or eval_shape
    # round trip would sort its keys).
    variables = model.init(jax.random.key(0), dummy, train=False)
    _, state = model.apply(variables, dummy, train=False, capture_intermediates=True, mutable=["intermediates"])
    params = variables["params"]
    rows: list[tuple[str, str, tuple[int, ...], int]] = []

    def walk(tree: dict, path: tuple[str, ...]) -> None:
        for key, value in tree.items():
            if key == "__call__":
                continue
            here = (*path, key)
            if not isinstance(value, dict):  # a sown activation (GRADCAM_LAYERS)
                kind = "Residual" if key.startswith("res") else "Add"
                rows.append((key, kind, value.shape, 0))
            elif set(value) != {"__call__"}:  # a container module: recurse
                walk(value, here)
            else:
                shape = value["__call__"][0].shape
                if key == "bn" and rows and rows[-1][1] == "Conv" and rows[-1][2][1] != shape[1]:
                    rows.append(("/".join(path) + "/pool", "MaxPool", shape, 0))
                if key == "fc":
                    rows.append(("global_pool", "MaxPool", (1, 1, 1, rows[-1][2][-1]), 0))
                kind = {"conv": "Conv", "bn": "BatchNorm", "fc": "Dense"}[key]
                sub = params
                for name in here:
                    sub = sub[name]
                rows.append(("/".join(here), kind, shape, count_params(sub)))

    walk(dict(state["intermediates"]), ())
    total = count_params(params)
    stats = count_params(variables["batch_stats"])
    name_w = max(len(r[0]) for r in rows)
    header = f"{'Layer':<{name_w}}  {'Kind':<9}  {'Output shape':<18}  {'Params':>10}"
    lines = [header, "-" * len(header)]
    lines += [f"{n:<{name_w}}  {k:<9}  {str(s):<18}  {p:>10,}" for n, k, s, p in rows]
    lines += [
        "-" * len(header),
        f"Total params: {total:,}",
        f"Trainable params: {total:,}",
        f"BatchNorm running statistics (not trained): {stats:,}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m jaxcifar.model [--width W]`: print the layer summary."""
    parser = argparse.ArgumentParser(
        prog="python -m jaxcifar.model", description="Print ResNet-9's layers and parameter count."
    )
    parser.add_argument(
        "--width", type=int, default=DEFAULT_WIDTH, help="base width (default: 64, the original network)"
    )
    args = parser.parse_args(argv)
    if args.width < 1:
        parser.error(f"--width must be a positive integer, got {args.width}")
    print(summary(ResNet9(width=args.width)))


if __name__ == "__main__":
    main()
