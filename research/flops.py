"""What ResNet-9's convolutions cost: their shapes in order and their FLOPs per image."""

from __future__ import annotations

from jaxcifar.model import DEFAULT_WIDTH, NUM_CLASSES


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
