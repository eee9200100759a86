"""The layers ResNet-9 is built from, jaxcifar's own CPU kernels among them, and the policy that picks them.

The network (`model.ResNet9`) takes its convolution and its normalisation as
module classes; this module owns those classes and what they compute:

- `Conv3x3`: XLA's convolution (cuDNN's algorithms on GPUs); `WinogradConv3x3`:
  Winograd's F(4x4, 3x3) in float32, the same parameters, the same numbers to
  about 1e-5 of the largest output.
- `BatchNorm`: Flax's nn.BatchNorm with the variance in two passes, as PyTorch
  computes it; `MatvecBatchNorm`: the same parameters and statistics, its batch
  sums as matrix-vector products.
- `max_pool2`: the 2x2 max-pool whose gradient is an argmax and a one-hot.

XLA:CPU runs windowed reductions, select_and_scatter and small-channel Eigen
convolutions slowly; each kernel here replaces one of them on CPU, where
`conv_algorithm` and `batch_norm_kind` choose them (from width 32 on). The speed-ups
are measured in docs/performance.md (results/cpu-step-variants.json).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

ModuleDef = Any  # a flax module class, called as ModuleDef(features, ..., name=...)

# --- max-pool and XLA's convolution ------------------------------------------------


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


# --- the layers ----------------------------------------------------------------------


class Conv3x3(nn.Module):
    """3x3 convolution, stride 1, padding 1, no bias (the parameters of nn.Conv), by XLA.

    The kernel float32[3, 3, C, K] is cast to `dtype` with the input.
    """

    features: int
    dtype: Any = jnp.float32
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", self.kernel_init, (3, 3, x.shape[-1], self.features), jnp.float32)
        return self.convolve(x, kernel)

    def convolve(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
        return conv3x3(x.astype(self.dtype), kernel.astype(self.dtype))


class WinogradConv3x3(Conv3x3):
    """`Conv3x3` by Winograd's F(4x4, 3x3) (`conv3x3_winograd`), in float32 whatever the compute
    type, where the image side is a multiple of 4 (XLA's convolution otherwise).

    On the 2-core development CPU it made the training step at batch 512 1.7x as fast as
    XLA's Eigen convolutions; on GPUs cuDNN picks its own algorithms (`conv_algorithm`).
    """

    def convolve(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
        if x.shape[1] % WINOGRAD_TILE or x.shape[2] % WINOGRAD_TILE:
            return super().convolve(x, kernel)
        return conv3x3_winograd(x.astype(jnp.float32), kernel).astype(self.dtype)


class BatchNorm(nn.BatchNorm):
    """Flax's nn.BatchNorm with the variance as the mean of squared deviations, as PyTorch
    computes it, not E[x^2] - E[x]^2 (Flax's default): over a batch of 512 the float32
    sums cancel, and the step's gradient was 1.9e-3 away from float64's (9e-5 with this),
    for 4% of the CPU step's time."""

    use_fast_variance: bool = False


# --- the policy --------------------------------------------------------------------

# name -> layer class; the names are what config.json, the flags and results/ say.
CONVS: dict[str, ModuleDef] = {"xla": Conv3x3, "winograd": WinogradConv3x3}
NORMS: dict[str, ModuleDef] = {"flax": BatchNorm, "matvec": MatvecBatchNorm}
CONV_NAMES = {"xla": "XLA", "winograd": "Winograd"}  # as the README and the log name them
BATCH_NORM_NAMES = {"flax": "Flax's", "matvec": "matrix-vector"}

# On CPUs Winograd's convolutions pay where the channels are many: on the 2-core
# development CPU the training step at batch 512 ran 1.7x as fast as with XLA's at
# width 64 and 1.27x at width 32, but at --quick's width 16 anywhere from 1.0x to 1.3x,
# for 4 s more compile time; XLA's stay below width 32, as in the committed width-16
# runs (--quick, the JPEG study), and Flax's BatchNorm with them.
WINOGRAD_MIN_WIDTH = 32


def conv_algorithm(name: str | None, width: int, platform: str | None = None) -> str:
    """The convolutions: None is "winograd" on CPU from width 32 on, else "xla" (on GPU/TPU cuDNN picks its own).

    platform: "cpu", "gpu", "tpu" (a run's recorded platform); None: this process's.
    """
    if name is None:
        return "winograd" if _cpu_kernels(width, platform) else "xla"
    return name


def batch_norm_kind(name: str | None, width: int, platform: str | None = None) -> str:
    """BatchNorm's sums: None is "matvec" on CPU from width 32 on, else "flax".

    On the 2-core development CPU the matrix-vector sums made the training step at batch
    512 and width 64 1.14x as fast; on GPU/TPU XLA's own reductions fuse with their
    neighbours. platform: as for `conv_algorithm`.
    """
    if name is None:
        return "matvec" if _cpu_kernels(width, platform) else "flax"
    return name


def _cpu_kernels(width: int, platform: str | None) -> bool:
    """Whether the automatic choices take jaxcifar's own CPU kernels: on CPU, from WINOGRAD_MIN_WIDTH on."""
    return (platform or jax.default_backend()) == "cpu" and width >= WINOGRAD_MIN_WIDTH


def name_of(layer: ModuleDef) -> str:
    """The name of a layer class in CONVS or NORMS ("winograd", "matvec", ...)."""
    for table in (CONVS, NORMS):
        for name, cls in table.items():
            if cls is layer:
                return name
    raise ValueError(f"{layer!r} is none of kernels.CONVS {tuple(CONVS)} or NORMS {tuple(NORMS)}")
