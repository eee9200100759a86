"""The ResNet-9 of David Page's "How to train your ResNet", as a Flax linen module.

This module owns the network and nothing else: its structure, initialisation,
compute type and the names under which Grad-CAM finds its activations. The
convolution and BatchNorm layers it is built from (XLA's, or jaxcifar's CPU
kernels) are given as layer classes from `kernels`, as flax's examples/imagenet
gives its blocks `conv` and `norm`.

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

`python -m jaxcifar.show model` prints `summary`, a layer-by-layer table.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcifar import kernels
from jaxcifar.kernels import ModuleDef

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


class ConvBN(nn.Module):
    """conv3x3 (no bias) -> optional max-pool 2x2 -> BatchNorm -> ReLU, from the given layer classes."""

    features: int
    pool: bool = False
    dtype: Any = jnp.float32
    conv: ModuleDef = kernels.Conv3x3
    norm: ModuleDef = kernels.BatchNorm

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        x = self.conv(self.features, dtype=self.dtype, kernel_init=torch_default_init, name="conv")(x)
        if self.pool:
            x = kernels.max_pool2(x)
        x = self.norm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=self.dtype, name="bn")(x)
        return nn.relu(x)


class Residual(nn.Module):
    """The residual branch: two ConvBN blocks at constant width (added by the caller)."""

    features: int
    dtype: Any = jnp.float32
    conv: ModuleDef = kernels.Conv3x3
    norm: ModuleDef = kernels.BatchNorm

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        conv_bn = functools.partial(ConvBN, self.features, dtype=self.dtype, conv=self.conv, norm=self.norm)
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
        conv: the 3x3 convolution's layer class, kernels.Conv3x3 (XLA's) or
            kernels.WinogradConv3x3, in every convolution but prep's: the same
            parameters, the same numbers to about 1e-5. prep keeps XLA's: with 3
            input channels its tiles cost more to transform than its matmuls save
            (3.8x XLA's forward pass; results/conv-layers-cpu.json).
        norm: BatchNorm's layer class, kernels.BatchNorm (Flax's) or
            kernels.MatvecBatchNorm: the same parameters and statistics, the same
            numbers to float rounding.
    """

    width: int = DEFAULT_WIDTH
    num_classes: int = NUM_CLASSES
    dtype: Any = jnp.float32
    logit_scale: float = 1.0
    conv: ModuleDef = kernels.Conv3x3
    norm: ModuleDef = kernels.BatchNorm

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
        conv_bn = functools.partial(ConvBN, dtype=dtype, conv=self.conv, norm=self.norm)
        residual = functools.partial(Residual, dtype=dtype, conv=self.conv, norm=self.norm)
        x = x.astype(dtype)
        x = ConvBN(w, dtype=dtype, norm=self.norm, name="prep")(x, train)

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
