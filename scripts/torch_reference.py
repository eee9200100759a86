"""The same ResNet-9 and training step in PyTorch: a speed baseline, never a dependency.

    python scripts/torch_reference.py [--batch-size 512] [--width 64] [--steps 20]

Prints images/s of one SGD step (forward, cross-entropy, backward, PyTorch SGD
with momentum 0.9 and weight decay 5e-3) in each variant the device supports:
eager; channels-last; torch.compile; and bfloat16 autocast (CUDA, or a CPU with
native bfloat16). scripts/benchmark.py imports `measure` to put these beside the
JAX figures of the same run. Needs torch; jaxcifar itself never imports it.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn


def conv_bn(c_in: int, c_out: int, pool: bool = False) -> nn.Sequential:
    layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    layers += [nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.block = nn.Sequential(conv_bn(c, c), conv_bn(c, c))

    def forward(self, x):
        return x + self.block(x)


def resnet9(width: int = 64, classes: int = 10) -> nn.Sequential:
    """The PyTorch original's network: 6,573,120 parameters at width 64."""
    w = width
    return nn.Sequential(
        conv_bn(3, w),
        conv_bn(w, 2 * w, pool=True),
        Residual(2 * w),
        conv_bn(2 * w, 4 * w, pool=True),
        conv_bn(4 * w, 8 * w, pool=True),
        Residual(8 * w),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(8 * w, classes, bias=False),
    )


def variants(device: torch.device) -> list[str]:
    names = ["eager", "channels_last", "compile"]
    if device.type == "cuda" or (
        device.type == "cpu"
        and torch.backends.mkldnn.is_available()
        and getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    ):
        names.append("compile_bf16")
    return names


def measure(
    variant: str, batch_size: int = 512, width: int = 64, steps: int = 20, warmup: int = 3, device: str | None = None
) -> dict:
    """Images/s of the training step in one variant (and its first-step seconds)."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(0)
    model = resnet9(width).to(dev)
    fmt = torch.channels_last if variant != "eager" else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-3)
    x = torch.randn(batch_size, 3, 32, 32, device=dev).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch_size,), device=dev)
    loss_fn = nn.CrossEntropyLoss()
    bf16 = variant.endswith("bf16")

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    if variant.startswith("compile"):
        step = torch.compile(step)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    step()
    sync()
    first = time.perf_counter() - t0
    for _ in range(warmup - 1):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    seconds = time.perf_counter() - t0
    return {
        "variant": variant,
        "images_per_s": steps * batch_size / seconds,
        "first_step_s": first,
        "batch_size": batch_size,
        "width": width,
        "device": str(dev),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--variants", default=None, help="comma-separated (default: all the device supports)")
    args = parser.parse_args(argv)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    names = args.variants.split(",") if args.variants else variants(dev)
    rows = [measure(v, args.batch_size, args.width, args.steps) for v in names]
    for r in rows:
        print(f"{r['variant']:<15}{r['images_per_s']:>12,.1f} img/s   first step {r['first_step_s']:.1f} s")
    return rows


if __name__ == "__main__":
    main()
