"""Tests for research.flops: the network's convolutions and their FLOPs, by hand and by XLA."""

import jax
import jax.numpy as jnp

from jaxcifar.model import ResNet9, init_variables
from research import flops


def test_forward_flops_by_hand():
    # 2 FLOPs per multiply-add. At width 64, layer1 (32x32, 64 -> 128) costs as
    # much as res1's two 16x16 convolutions, layer2, layer3 and res2's two.
    stage = 2 * 32 * 32 * 9 * 64 * 128
    assert flops.forward_flops() == 2 * 32 * 32 * 9 * 3 * 64 + 5 * stage + 2 * 512 * 10 == 758_523_904
    # XLA's cost analysis skips the taps on zero padding (a larger share at 4x4)
    # and adds the elementwise work: a little below ours, never above.
    model = ResNet9(width=8)
    variables = init_variables(model, jax.random.key(0))
    fn = jax.jit(lambda v, x: model.apply(v, x, train=False))
    cost = fn.lower(variables, jnp.zeros((1, 32, 32, 3))).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    assert 0.85 < cost["flops"] / flops.forward_flops(8) < 0.95


def test_conv_shapes_are_the_networks_convolutions_in_order():
    model = ResNet9(width=4)
    variables = init_variables(model, jax.random.key(0))
    images = jnp.zeros((1, 32, 32, 3))
    _, state = model.apply(variables, images, capture_intermediates=True, mutable=["intermediates"])
    shapes = flops.conv_shapes(4)
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
    assert flops.conv_flops(32, 3, 4) == 2 * 32 * 32 * 9 * 3 * 4
