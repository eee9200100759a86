"""The same ResNet-9 and training step in PyTorch: a speed baseline, never a dependency.

    python -m research.torch_reference [--batch-size 512] [--width 64] [--steps 20]
    python -m research.torch_reference --compare-steps 6 --data PATH --lr-max 0.0781 [--out FILE.json]

Prints images/s of one SGD step (forward, cross-entropy, backward, PyTorch SGD
with momentum 0.9 and weight decay 5e-3) in each variant the device supports:
eager; channels-last; torch.compile; and bfloat16 autocast (CUDA, or a CPU with
native bfloat16). research.benchmark imports `measure` to put these beside the
JAX figures of the same run; `load_flax_variables` copies a jaxcifar model's
weights in, so tests can hold our training step to the original's step by step;
`conv_parts` gives research.conv_layers one convolution's kernels.
Needs torch; jaxcifar's training code never imports it (only research does).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import jax
import numpy as np
import torch
from torch import nn

from jaxcifar import records, startup
from jaxcifar import steps as steps_lib
from jaxcifar.config import TrainConfig
from jaxcifar.data import load_cifar10
from jaxcifar.errors import entry_point
from jaxcifar.loader import BatchLoader
from jaxcifar.schedule import one_cycle


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


def load_flax_variables(model: nn.Sequential, params: dict, batch_stats: dict | None = None) -> nn.Sequential:
    """Copy a jaxcifar ResNet-9's parameters (and BatchNorm statistics) into `resnet9()`.

    Flax kernels are HWIO and the dense kernel is [in, out]; PyTorch wants OIHW and
    [out, in]. With the same weights the two networks compute the same function,
    so the two training steps can be compared step by step.
    """

    def conv(module: nn.Conv2d, p: dict) -> None:
        module.weight.data = torch.from_numpy(np.ascontiguousarray(np.asarray(p["kernel"]).transpose(3, 2, 0, 1)))

    def bn(module: nn.BatchNorm2d, p: dict, stats: dict | None) -> None:
        module.weight.data = torch.from_numpy(np.array(p["scale"]))
        module.bias.data = torch.from_numpy(np.array(p["bias"]))
        if stats is not None:
            module.running_mean.data = torch.from_numpy(np.array(stats["mean"]))
            module.running_var.data = torch.from_numpy(np.array(stats["var"]))

    def conv_bn(block: nn.Sequential, p: dict, stats: dict | None) -> None:
        conv(block[0], p["conv"])
        bn(block[-2], p["bn"], stats and stats["bn"])  # [-2]: after the max-pool where there is one

    stats = batch_stats or {}
    for i, name in ((0, "prep"), (1, "layer1"), (3, "layer2"), (4, "layer3")):
        conv_bn(model[i], params[name], stats.get(name))
    for i, name in ((2, "res1"), (5, "res2")):
        for j in (0, 1):
            inner = f"conv_bn{j + 1}"
            conv_bn(model[i].block[j], params[name][inner], stats.get(name, {}).get(inner))
    model[8].weight.data = torch.from_numpy(np.ascontiguousarray(np.asarray(params["fc"]["kernel"]).T))
    return model


def variants(device: torch.device) -> list[str]:
    """The variants worth timing here: bfloat16 ones only where the hardware has bfloat16 math."""
    names = ["eager", "channels_last", "compile"]
    if device.type == "cuda" or (
        device.type == "cpu"
        and torch.backends.mkldnn.is_available()
        and getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    ):
        names += ["eager_bf16", "compile_bf16"]
    return names


def measure(
    variant: str, batch_size: int = 512, width: int = 64, steps: int = 20, warmup: int = 3, device: str | None = None
) -> dict:
    """Images/s of the training step in one variant (and its first-step seconds).

    Variants: eager, channels_last, compile (channels-last + torch.compile), and
    eager_bf16 / compile_bf16 (bfloat16 autocast). cuDNN picks its fastest
    convolution algorithms (cudnn.benchmark), as XLA's autotuner does for JAX.
    """
    torch.backends.cudnn.benchmark = True
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(0)
    model = resnet9(width).to(dev)
    fmt = torch.contiguous_format if variant.startswith("eager") else torch.channels_last
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


def conv_parts(x: np.ndarray, kernel: np.ndarray, g: np.ndarray) -> dict[str, Callable[[], np.ndarray]]:
    """One 3x3 'same' convolution's forward pass, input gradient and kernel gradient with PyTorch's own
    kernels in channels-last (what autograd calls), for research.conv_layers.

    Args: x float32[N, H, W, C], kernel float32[3, 3, C, K], g float32[N, H, W, K] (NHWC / HWIO, as in JAX).
    Returns: {part: () -> the result as a NHWC / HWIO array}.
    """
    last = torch.channels_last
    tx = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=last)
    tw = torch.from_numpy(kernel).permute(3, 2, 0, 1).contiguous(memory_format=last)
    tg = torch.from_numpy(g).permute(0, 3, 1, 2).contiguous(memory_format=last)
    backward = torch.ops.aten.convolution_backward

    def grad(mask):
        return backward(tg, tx, tw, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask)

    def run(part):
        with torch.no_grad():
            if part == "forward":
                return torch.nn.functional.conv2d(tx, tw, padding=1)
            if part == "input_grad":
                return grad([True, False, False])[0]
            return grad([False, True, False])[1]

    to_nhwc = {"forward": (0, 2, 3, 1), "input_grad": (0, 2, 3, 1), "kernel_grad": (2, 3, 1, 0)}
    return {part: (lambda p=part, o=order: run(p).permute(*o).numpy()) for part, order in to_nhwc.items()}


def compare_steps(
    images: np.ndarray, labels: np.ndarray, steps: int, lr_max: float, width: int = 64, batch_size: int = 512
) -> dict:
    """Train jaxcifar's step and the original's PyTorch step side by side from the same weights.

    Both see the same augmented batches (images uint8[N, 32, 32, 3], labels int[N]) and
    follow the original's schedule (LR_MAX / 10 rising to LR_MAX at epoch 5 of 24: ours
    from `one_cycle`, theirs from `OneCycleLR`). Returns the per-step rows (LR, loss and
    batch accuracy of each) and, after the last step, the relative difference
    ||ours - theirs|| / ||theirs|| of all weights, of all running means and of all
    running variances.
    """
    steps_per_epoch = len(labels) // batch_size
    schedule = one_cycle(lr_max / 10, lr_max, steps_per_epoch)
    config = TrainConfig(width=width, batch_size=batch_size, data="synthetic", dtype="float32")
    state = steps_lib.create_train_state(
        steps_lib.make_model(config), steps_lib.make_optimizer(schedule), jax.random.key(0)
    )
    step = jax.jit(lambda s, b: steps_lib.train_step(s, b, schedule))
    net = load_flax_variables(resnet9(width), jax.device_get(state.params)).train()
    opt = torch.optim.SGD(net.parameters(), lr=lr_max / 10, momentum=0.9, weight_decay=5e-3)
    torch_schedule = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr_max, total_steps=24 * steps_per_epoch, pct_start=5 / 24, anneal_strategy="linear",
        div_factor=10, final_div_factor=1, cycle_momentum=False,
    )  # fmt: skip
    loader = BatchLoader(images, labels, batch_size, train=True, augment="numpy", workers=1)
    rows = []
    for i in range(steps):
        x, y = loader.batch(0, i % steps_per_epoch)
        state, metrics = step(state, (x, y))
        lr = opt.param_groups[0]["lr"]
        opt.zero_grad()
        logits = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
        target = torch.from_numpy(y.astype(np.int64))
        loss = nn.functional.cross_entropy(logits, target)
        loss.backward()
        opt.step()
        torch_schedule.step()
        rows.append({
            "step": i,
            "lr_jax": float(metrics["lr"]),
            "lr_torch": lr,
            "loss_jax": float(metrics["loss"]),
            "loss_torch": loss.item(),
            "accuracy_jax": float(metrics["accuracy"]),
            "accuracy_torch": (logits.argmax(1) == target).float().mean().item(),
        })  # fmt: skip
    ours = load_flax_variables(resnet9(width), jax.device_get(state.params), jax.device_get(state.batch_stats))
    squares = {kind: [0.0, 0.0] for kind in ("weights", "running_mean", "running_var")}
    for (name, a), b in zip(net.state_dict().items(), ours.state_dict().values()):
        if name.endswith("num_batches_tracked"):
            continue
        kind = name.rsplit(".", 1)[-1] if name.endswith(("running_mean", "running_var")) else "weights"
        squares[kind][0] += (a - b).square().sum().item()
        squares[kind][1] += a.square().sum().item()
    diff = {kind: (d / n) ** 0.5 for kind, (d, n) in squares.items()}
    return {"rows": rows, "relative_difference": diff}


@entry_point
def main(argv=None) -> list[dict]:
    startup.set_cpu_flags()  # XLA as the training command has it: YNNPACK off on the CPU
    parser = argparse.ArgumentParser(prog="python -m research.torch_reference", description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=512, help="images per step (default: 512)")
    parser.add_argument("--width", type=int, default=64, help="base width (default: 64)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant (default: 20)")
    parser.add_argument("--variants", default=None, help="comma-separated (default: all the device supports)")
    parser.add_argument(
        "--compare-steps",
        type=int,
        default=0,
        help="instead: N steps of ours beside theirs from the same weights (default: 0, off)",
    )
    parser.add_argument(
        "--data", default=None, help="CIFAR-10 for --compare-steps (default: $JAXCIFAR_DATA, else download)"
    )
    parser.add_argument(
        "--lr-max", type=float, default=0.0444, help="LR_MAX for --compare-steps (default: 0.0444, the original's)"
    )
    parser.add_argument("--out", default=None, help="JSON record of --compare-steps (default: none)")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists (default: off)")
    args = parser.parse_args(argv)
    if args.compare_steps:
        if args.out:
            records.refuse_overwrite(args.out, force=args.force)
        ds = load_cifar10(args.data)
        result = compare_steps(
            ds.train_images, ds.train_labels, args.compare_steps, args.lr_max, args.width, args.batch_size
        )
        if args.out:
            env = {**records.provenance(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()}
            records.write_json(args.out, {**env, "settings": vars(args), "data": ds.source, **result})
        print("step        LR   loss ours  loss torch   acc ours  acc torch")
        for r in result["rows"]:
            print(
                f"{r['step']:>4} {r['lr_jax']:>9.5f} {r['loss_jax']:>11.4f} {r['loss_torch']:>11.4f}"
                f" {100 * r['accuracy_jax']:>9.1f}% {100 * r['accuracy_torch']:>9.1f}%"
            )
        print("relative difference after the last step:", result["relative_difference"])
        return result["rows"]
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    names = args.variants.split(",") if args.variants else variants(dev)
    rows = [measure(v, args.batch_size, args.width, args.steps) for v in names]
    for r in rows:
        print(f"{r['variant']:<15}{r['images_per_s']:>12,.1f} img/s   first step {r['first_step_s']:.1f} s")
    return rows


if __name__ == "__main__":
    main()
