"""Where the CPU training step's time goes: each convolution of the network, JAX beside PyTorch.

    python -m research.conv_layers --out results/conv-layers-cpu.json   # ~4 min on 2 cores

For every 3x3 convolution of ResNet-9 (`flops.conv_shapes`) at the recipe's batch,
times the three computations a training step makes of it: the forward pass, the
input gradient and the kernel gradient, each jitted alone in JAX (XLA:CPU, with the
convolutions jaxcifar selects; in our NHWC layout and, to see what the layout gives, in
PyTorch's default NCHW; and both gradients as nine matmuls, one per kernel tap) and as
PyTorch's own kernels in channels-last
(`aten.convolution_backward` with one output asked for: what autograd calls). The
same inputs go to both, and the results are compared, so the table times the same
arithmetic. Beside it, in the same process, the whole training step of each, so the
convolutions' share of the step is measured, not assumed. Each figure is the best of
`repeats` calls after one warm-up; ratios are of this one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxcifar import kernels, records, startup
from jaxcifar.errors import entry_point
from research import cpu_variants, flops
from research.taps import kernel_grad_taps

PARTS = ("forward", "input_grad", "kernel_grad")


def best_ms(fn: Callable[[], object], repeats: int) -> float:
    """Milliseconds of the fastest of `repeats` calls of `fn` (which blocks until done), after one warm-up."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return 1e3 * best


def conv_inputs(batch: int, side: int, c_in: int, c_out: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """x: float32[batch, side, side, c_in], kernel: float32[3, 3, c_in, c_out] (PyTorch's init scale),
    g: float32[batch, side, side, c_out] (an output gradient)."""
    rng = np.random.default_rng(seed)
    bound = 1 / np.sqrt(9 * c_in)
    return (
        rng.standard_normal((batch, side, side, c_in), np.float32),
        rng.uniform(-bound, bound, (3, 3, c_in, c_out)).astype(np.float32),
        rng.standard_normal((batch, side, side, c_out), np.float32),
    )


@dataclasses.dataclass(frozen=True)
class Part:
    """One jitted computation on device arrays: calling it runs it to completion (what is timed)."""

    fn: Callable[..., jax.Array]
    args: tuple
    order: tuple[int, ...] | None = None  # the transpose that brings the result to NHWC / HWIO

    def __call__(self) -> jax.Array:
        return self.fn(*self.args).block_until_ready()

    def result(self) -> np.ndarray:
        out = np.asarray(self())
        return out if self.order is None else out.transpose(self.order)


def jax_parts(x: np.ndarray, kernel: np.ndarray, g: np.ndarray, layout: str = "NHWC") -> dict[str, Part]:
    """Each part of the convolution, jitted: {"forward", "input_grad", "kernel_grad": Part}.

    x float32[N, H, W, C], kernel float32[3, 3, C, K], g float32[N, H, W, K]. layout="NCHW"
    hands XLA the same arrays channels-first (OIHW kernel), PyTorch's default layout;
    "winograd" computes in NHWC by `kernels.conv3x3_winograd`. `Part.result()` is NHWC /
    HWIO either way.
    """
    if layout == "NHWC":
        conv, back = kernels.conv3x3, (None, None, None)
    elif layout == "winograd":
        conv, back = kernels.conv3x3_winograd, (None, None, None)
    elif layout == "NCHW":
        x, kernel, g = x.transpose(0, 3, 1, 2), kernel.transpose(3, 2, 0, 1), g.transpose(0, 3, 1, 2)

        def conv(x, k):
            return jax.lax.conv_general_dilated(
                x, k, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NCHW", "OIHW", "NCHW")
            )

        back = ((0, 2, 3, 1), (0, 2, 3, 1), (2, 3, 1, 0))
    else:
        raise ValueError(f"layout {layout!r}: expected 'NHWC', 'NCHW' or 'winograd'")
    x, kernel, g = jax.device_put((x, kernel, g))
    forward = jax.jit(conv)
    input_grad = jax.jit(lambda x, k, g: jax.vjp(lambda x_: conv(x_, k), x)[1](g)[0])
    kernel_grad = jax.jit(lambda x, k, g: jax.vjp(lambda k_: conv(x, k_), k)[1](g)[0])
    return {
        "forward": Part(forward, (x, kernel), back[0]),
        "input_grad": Part(input_grad, (x, kernel, g), back[1]),
        "kernel_grad": Part(kernel_grad, (x, kernel, g), back[2]),
    }


def input_grad_taps(g: jax.Array, kernel: jax.Array) -> jax.Array:
    """d(loss)/d(x) of a 3x3 'same' conv as nine matmuls, one per kernel tap (the kernel
    gradient's `kernel_grad_taps` turned round): g float[N, H, W, K] -> float[N, H, W, C].

    x[n, h, w] meets kernel[i, j] at output (h + 1 - i, w + 1 - j), so its gradient is the
    sum over taps of the shifted output gradient times the tap's kernel, transposed.
    """
    n, h, w, k = g.shape
    padded = jnp.pad(g, ((0, 0), (1, 1), (1, 1), (0, 0)))
    taps = [
        padded[:, 2 - i : 2 - i + h, 2 - j : 2 - j + w, :].reshape(-1, k) @ kernel[i, j].T
        for i in range(3)
        for j in range(3)
    ]
    return sum(taps).reshape(n, h, w, kernel.shape[2])


def taps_parts(x: np.ndarray, kernel: np.ndarray, g: np.ndarray) -> dict[str, Part]:
    """Both gradients as nine matmuls each, jitted: {"input_grad", "kernel_grad": Part} (NHWC / HWIO)."""
    x, kernel, g = jax.device_put((x, kernel, g))
    return {
        "input_grad": Part(jax.jit(input_grad_taps), (g, kernel)),
        "kernel_grad": Part(jax.jit(kernel_grad_taps), (x, g)),
    }


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |b|."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def measure(batch_size: int, width: int, repeats: int, torch: bool = True) -> dict:
    """Per convolution and part: milliseconds in JAX (and PyTorch), their ratio, and the results' difference.

    The prep convolution's input gradient is left out: its input is the image, whose
    gradient no step computes.
    """
    if torch:
        from research import torch_reference
    rows = []
    for name, side, c_in, c_out in flops.conv_shapes(width):
        x, kernel, g = conv_inputs(batch_size, side, c_in, c_out)
        ours, nchw, taps = jax_parts(x, kernel, g), jax_parts(x, kernel, g, "NCHW"), taps_parts(x, kernel, g)
        winograd = jax_parts(x, kernel, g, "winograd")
        theirs = torch_reference.conv_parts(x, kernel, g) if torch else {}
        for part in PARTS:
            if name == "prep" and part == "input_grad":
                continue
            row = {"layer": name, "shape": [side, c_in, c_out], "part": part}
            row["gflop"] = batch_size * flops.conv_flops(side, c_in, c_out) / 1e9
            row["jax_ms"] = best_ms(ours[part], repeats)
            row["jax_nchw_ms"] = best_ms(nchw[part], repeats)
            if part in taps:
                row["jax_taps_ms"] = best_ms(taps[part], repeats)
            row["jax_winograd_ms"] = best_ms(winograd[part], repeats)
            row["winograd_difference"] = relative_difference(winograd[part].result(), ours[part].result())
            if torch:
                row["torch_ms"] = best_ms(theirs[part], repeats)
                row["jax_vs_torch"] = row["jax_ms"] / row["torch_ms"]
                row["winograd_vs_torch"] = row["jax_winograd_ms"] / row["torch_ms"]
                row["relative_difference"] = relative_difference(ours[part].result(), theirs[part]())
            print(
                f"{name:<14} {side:>2}x{side:<2} {c_in:>3}->{c_out:<3} {part:<11} jax {row['jax_ms']:8.1f} ms"
                f" (NCHW {row['jax_nchw_ms']:8.1f}, Winograd {row['jax_winograd_ms']:8.1f}"
                + (f", nine matmuls {row['jax_taps_ms']:8.1f})" if "jax_taps_ms" in row else ")")
                + (f"  torch {row['torch_ms']:8.1f} ms  {row['jax_vs_torch']:.2f}x" if torch else ""),
                flush=True,
            )
            rows.append(row)
    return {"batch_size": batch_size, "width": width, "repeats": repeats, "rows": rows, "totals": totals(rows)}


def totals(rows: Sequence[dict]) -> dict:
    """Per part and over all parts: summed milliseconds of each framework, and their ratio."""
    out = {}
    for part in (*PARTS, "all"):
        mine = [r for r in rows if part in ("all", r["part"])]
        entry = {"jax_ms": sum(r["jax_ms"] for r in mine)}
        for key in ("jax_nchw_ms", "jax_taps_ms", "jax_winograd_ms"):
            if mine and all(key in r for r in mine):
                entry[key] = sum(r[key] for r in mine)
        if mine and all("torch_ms" in r for r in mine):
            entry["torch_ms"] = sum(r["torch_ms"] for r in mine)
            entry["jax_vs_torch"] = entry["jax_ms"] / entry["torch_ms"]
            if "jax_winograd_ms" in entry:
                entry["winograd_vs_torch"] = entry["jax_winograd_ms"] / entry["torch_ms"]
        out[part] = entry
    return out


def whole_steps(batch_size: int, width: int, steps: int, torch: bool) -> dict:
    """Milliseconds of one whole training step of jaxcifar (as it ships, and with XLA's convolutions) and of
    PyTorch channels-last."""
    out = {}
    for key, variant in (("jax_ms", "default"), ("jax_xla_ms", "xla-conv")):
        out[key] = 1e3 * batch_size / cpu_variants.worker(variant, batch_size, steps, width)["images_per_s"]
    if torch:
        from research import torch_reference

        theirs = torch_reference.measure("channels_last", batch_size, width, steps, warmup=1)
        out["torch_channels_last_ms"] = 1e3 * batch_size / theirs["images_per_s"]
    return out


@entry_point
def main(argv: Sequence[str] | None = None) -> dict:
    startup.set_cpu_flags()  # XLA as the training command has it: YNNPACK off on the CPU
    parser = argparse.ArgumentParser(
        prog="python -m research.conv_layers",
        description="Time each convolution of the training step (forward, input and kernel gradient) "
        "in JAX and PyTorch, and the whole step of each.",
    )
    parser.add_argument("--batch-size", type=int, default=512, help="images per step (default: 512)")
    parser.add_argument("--width", type=int, default=64, help="base width (default: 64)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per figure; the best counts (default: 3)")
    parser.add_argument("--steps", type=int, default=3, help="timed whole training steps (default: 3)")
    parser.add_argument("--no-torch", action="store_true", help="leave out PyTorch (default: measured if installed)")
    parser.add_argument("--out", default=None, help="JSON record (default: print only)")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists (default: off)")
    args = parser.parse_args(argv)
    if args.out:
        records.refuse_overwrite(args.out, force=args.force)
    torch = not args.no_torch
    if torch:
        try:
            from research import torch_reference  # noqa: F401
        except ImportError:
            torch = False
            print("torch is not installed: JAX alone")
    result = {**records.provenance(), **measure(args.batch_size, args.width, args.repeats, torch)}
    result["step"] = whole_steps(args.batch_size, args.width, args.steps, torch)
    # XLA's convolutions timed alone, over the step that uses them
    result["step"]["convolutions_share"] = result["totals"]["all"]["jax_ms"] / result["step"]["jax_xla_ms"]
    print(
        f"all convolutions: XLA {result['totals']['all']['jax_ms']:.0f} ms of a {result['step']['jax_xla_ms']:.0f} ms "
        f"step; Winograd {result['totals']['all']['jax_winograd_ms']:.0f} ms; jaxcifar's step "
        f"{result['step']['jax_ms']:.0f} ms"
    )
    if args.out:
        records.write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
