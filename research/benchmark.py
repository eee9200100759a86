"""Speed of jaxcifar, measured side by side with PyTorch in one run.

    python -m research.benchmark                            # GPU: batch 512, 20 steps
    python -m research.benchmark --batch-size 128 512 --steps 4 --epoch-steps 6   # a 2-core CPU

Measures, on the default device, in this order: compile time and training-step
throughput (images/s) in float32 and bfloat16 (and, on CPU, the nine-matmul
kernel gradient beside XLA's), eval throughput, achieved TFLOP/s and the 24-epoch time each
projects; the same network and step in PyTorch (eager, channels-last,
torch.compile, bfloat16 where supported; cuDNN autotuned) when torch is
installed; an epoch through the real pipeline (BatchLoader -> device -> step)
with host (numpy) and device augmentation, and the share of time the device
waited for the host; optionally the 980-step LR range test; the host
augmentation of each path on one thread and on all cores.

Ratios compare figures of this one run. The JSON (results/benchmark-<device>.json:
command, hardware, versions, every figure) is rewritten after every section and
every line is printed as it is measured, so a run cut short (`--budget`, or a
killed process) still leaves what it measured; sections left out by the budget
are named in "skipped". Compiled programs go to the persistent compilation cache,
and a step compiled for one section is reused by the next.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxcifar import data as data_lib
from jaxcifar import kernels, lr_range, parallel, records, startup
from jaxcifar import steps as steps_lib
from jaxcifar.config import TrainConfig
from jaxcifar.data import CIFAR10, load_cifar10
from jaxcifar.errors import entry_point
from jaxcifar.loader import BatchLoader
from jaxcifar.schedule import one_cycle
from research import benchmark_augment
from research.flops import forward_flops
from research.taps import TapsConv3x3

SCHEDULE = one_cycle(0.004, 0.04, 97)
RECIPE_IMAGES = 24 * (50_000 // 512) * 512  # the 24-epoch recipe: 24 x 97 steps of 512 images


def random_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int32)


class Compiled:
    """Compiled steps per (dtype, kernel gradient, convolutions, batch, augmentation), compiled once per run.

    kernel_grad "taps": the conv kernel gradient as nine matmuls (research.taps), with XLA's convolutions.
    """

    def __init__(self) -> None:
        self._steps: dict[tuple, tuple] = {}

    def get(self, config: TrainConfig, kernel_grad: str = "xla"):
        key = (
            config.dtype,
            kernel_grad,
            config.conv,
            config.batch_norm,
            config.batch_size,
            config.augment,
            config.width,
        )
        if key not in self._steps:
            mesh = parallel.make_mesh(config.devices)
            model = steps_lib.make_model(config)
            model = model.clone(conv=TapsConv3x3) if kernel_grad == "taps" else model
            state = parallel.put_replicated(steps_lib.initial_state(config, SCHEDULE, model), mesh)
            self._steps[key] = (steps_lib.compile_run_steps(config, state, mesh, SCHEDULE), mesh, state)
        steps, mesh, state = self._steps[key]
        # A copy: the step donates its input. (The same optimizer object, which the program was compiled for.)
        return steps, mesh, jax.tree.map(lambda x: x.copy(), state)


def train_rate(train, state, batch, batch_size: int, steps: int, warmup: int = 2):
    """(state, images/s of `steps` training steps on one batch, after `warmup` untimed ones)."""
    for _ in range(warmup):
        state, metrics = train(state, batch)
    jax.block_until_ready(metrics)
    t0 = time.perf_counter()
    for _ in range(steps):
        state, metrics = train(state, batch)
    jax.block_until_ready(metrics)
    return state, steps * batch_size / (time.perf_counter() - t0)


def step_throughput(
    compiled: Compiled, config: TrainConfig, steps: int, warmup: int = 2, kernel_grad: str = "xla"
) -> dict:
    """Compile seconds and images/s of the training step and the eval step (kernel_grad: see Compiled)."""
    run, mesh, state = compiled.get(config, kernel_grad)
    images, labels = random_data(config.batch_size)
    batch = parallel.put_batch((images.astype(np.float32) / 255.0, labels), mesh)
    state, rate = train_rate(run.train, state, batch, config.batch_size, steps, warmup)
    eval_batch = parallel.put_batch((batch[0], batch[1], jnp.ones(config.batch_size)), mesh)
    jax.block_until_ready(run.eval(state, eval_batch))
    t0 = time.perf_counter()
    for _ in range(steps):
        out = run.eval(state, eval_batch)
    jax.block_until_ready(out)
    eval_rate = steps * config.batch_size / (time.perf_counter() - t0)
    model = steps_lib.make_model(config)
    return {
        "dtype": jnp.dtype(model.dtype).name,
        "kernel_grad": kernel_grad,
        "conv": kernels.name_of(model.conv),
        "batch_norm": kernels.name_of(model.norm),
        "batch_size": config.batch_size,
        "compile_s": run.compile_seconds,
        "train_images_per_s": rate,
        "eval_images_per_s": eval_rate,
        # Forward, input gradient and kernel gradient: 3x the forward FLOPs per image.
        "train_tflop_per_s": 3 * forward_flops(config.width) * rate / 1e12,
        # The recipe's 24 x 97 steps of 512 at this rate, training alone.
        "projected_24_epochs_s": RECIPE_IMAGES / rate,
    }


def pipeline_epoch(
    compiled: Compiled, config: TrainConfig, images: np.ndarray, labels: np.ndarray, max_steps: int | None
) -> dict:
    """An epoch (or its first max_steps) through BatchLoader and the step.

    The device waited for the host while the loop blocked on the next batch:
    with asynchronous dispatch, a loop that never waits keeps the device fed.
    """
    run, mesh, state = compiled.get(config)
    loader = BatchLoader(
        images, labels, config.batch_size, train=True, augment=config.augment, workers=config.augment_threads
    )
    # Warm up: one step outside the timing.
    state, metrics = run.train(state, parallel.put_batch(loader.batch(0, 0), mesh))
    jax.block_until_ready(metrics)
    total = min(len(loader), max_steps or len(loader))
    waited, done = 0.0, 0
    batches = loader.epoch(1)
    t0 = time.perf_counter()
    try:
        while done < total:
            t_wait = time.perf_counter()
            batch = next(batches)
            waited += time.perf_counter() - t_wait
            state, metrics = run.train(state, parallel.put_batch(batch, mesh))
            done += 1
        jax.block_until_ready(metrics)
    finally:
        batches.close()
    seconds = time.perf_counter() - t0
    return {
        "steps": done,
        "seconds": seconds,
        "images_per_s": done * config.batch_size / seconds,
        "host_wait_s": waited,
        "host_wait_fraction": waited / seconds,
        "workers": config.augment_threads,
        "augment": config.augment,
        "dtype": config.dtype,
        "batch_size": config.batch_size,
    }


def lr_range_seconds(config: TrainConfig, images: np.ndarray, labels: np.ndarray) -> dict:
    ds = CIFAR10(images, labels, images[:10], labels[:10], source="random images")
    # Random labels never diverge fast: the full num_iter runs.
    result = lr_range.sweep(dataclasses.replace(config, lr_range_diverge=1e9, progress=False), ds)
    return {"iterations": result["iterations"], "seconds": result["seconds"], "compile_s": result["compile_seconds"]}


def torch_rows(batch_size: int, width: int, steps: int) -> list[dict]:
    """PyTorch's figures of every variant the device supports; [] without torch."""
    try:
        from research import torch_reference
    except ImportError:
        return []
    torch = torch_reference.torch
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for variant in torch_reference.variants(dev):
        try:
            rows.append(torch_reference.measure(variant, batch_size, width, steps))
        except Exception as e:  # a variant the installation cannot run (e.g. no compiler for compile)
            rows.append({"variant": variant, "batch_size": batch_size, "error": f"{type(e).__name__}: {e}"[:300]})
        print_torch(rows[-1])
    return rows


def ratios(result: dict) -> dict:
    """Our fastest step over each PyTorch variant, at each batch size measured for both."""
    out = {}
    for t in result.get("torch", []):
        ours = [s for s in result.get("steps", []) if s["batch_size"] == t["batch_size"]]
        if "images_per_s" in t and ours:
            fastest = max(ours, key=lambda s: s["train_images_per_s"])
            out[f"jax_{fastest['dtype']}_vs_torch_{t['variant']}_b{t['batch_size']}"] = (
                fastest["train_images_per_s"] / t["images_per_s"]
            )
    return out


@entry_point
def main(argv=None) -> dict:
    startup.set_cpu_flags()  # XLA as the training command has it: YNNPACK off on the CPU
    parser = argparse.ArgumentParser(prog="python -m research.benchmark", description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, nargs="+", default=[512], help="one or more (default: 512)")
    parser.add_argument("--width", type=int, default=64, help="base width (default: 64)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement (default: 20)")
    parser.add_argument("--epoch-steps", type=int, default=None, help="cap the pipeline epoch (default: a whole one)")
    parser.add_argument("--workers", type=int, default=0, help="augmentation threads (default: 0 = min(4, cores))")
    parser.add_argument(
        "--data", default=None, help="CIFAR-10 for the augmentation and epoch figures (default: random images)"
    )
    parser.add_argument("--lr-range", action="store_true", help="also time the 980-step LR range test (default: off)")
    parser.add_argument(
        "--no-torch",
        action="store_true",
        help="leave out the PyTorch baseline (default: measured where torch is installed)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds; sections that would start later are skipped (default: no limit)",
    )
    parser.add_argument(
        "--only-dtypes",
        action="store_true",
        help="the float32 and bfloat16 steps alone, as on a GPU (default: on a CPU also its other kernels)",
    )
    parser.add_argument(
        "--augment-batches", type=int, default=40, help="batches each host augmentation is timed on (default: 40)"
    )
    parser.add_argument("--out", default=None, help="JSON path (default: results/benchmark-<device>.json)")
    parser.add_argument("--force", action="store_true", help="replace the JSON if it exists (default: off)")
    args = parser.parse_args(argv)
    if min(args.batch_size) < 1 or args.steps < 1 or args.width < 1 or args.augment_batches < 1:
        parser.error("--batch-size, --steps, --width and --augment-batches must be positive")

    start = time.perf_counter()
    env = records.provenance()
    cpu = env["platform"] == "cpu"
    device = re.sub(r"[^A-Za-z0-9]+", "-", env["device_kind"]).strip("-").lower() or env["platform"]
    out = Path(args.out or f"results/benchmark-{device}.json")
    try:  # before minutes of measuring
        records.refuse_overwrite(out, force=args.force)
    except FileExistsError as e:
        parser.error(str(e))
    base = TrainConfig(width=args.width, workers=args.workers)
    parallel.enable_compilation_cache(data_lib.compile_cache_folder(base.cache_dir))
    print(f"{env['device_kind']} x{env['device_count']} ({env['platform']}), jax {env['versions']['jax']}", flush=True)
    if args.data:
        ds = load_cifar10(args.data)
        images, labels, source = ds.train_images, ds.train_labels, ds.source
    else:
        images, labels = random_data(50_000)
        source = "random uint8 images"
    result = {**env, "settings": vars(args), "data": source, "skipped": []}
    compiled = Compiled()

    def section(name: str, measure) -> None:
        if args.budget is not None and time.perf_counter() - start > args.budget:
            result["skipped"].append(name)
            print(f"{name}: skipped (past the {args.budget:g} s budget)", flush=True)
        else:
            measure()
        result["ratios"] = ratios(result)
        result["seconds"] = time.perf_counter() - start
        records.write_json(out, result)

    # (dtype, kernel gradient, convolutions, BatchNorm's sums); None: the platform's default,
    # measured first. On CPUs also the other convolutions, the other BatchNorm, and XLA's
    # convolutions with the nine-matmul kernel gradient.
    other = "xla" if kernels.conv_algorithm(None, args.width) == "winograd" else "winograd"
    other_bn = "flax" if kernels.batch_norm_kind(None, args.width) == "matvec" else "matvec"
    variants = [("float32", "xla", None, None), ("bfloat16", "xla", None, None)]
    if cpu and not args.only_dtypes:
        variants += [("float32", "xla", other, None), ("float32", "xla", None, other_bn)]
        variants += [("float32", "taps", "xla", None)]
    result["steps"] = []
    for b in args.batch_size:
        for dtype, grad, conv, bn in variants:
            cfg = dataclasses.replace(base, batch_size=b, dtype=dtype, conv=conv, batch_norm=bn)

            def jax_step(cfg=cfg, grad=grad):
                result["steps"].append(step_throughput(compiled, cfg, args.steps, kernel_grad=grad))
                print_step(result["steps"][-1])

            section(f"jax step {dtype} {grad} {conv or 'auto'} {bn or 'auto'} b{b}", jax_step)
    result["torch"] = []
    if not args.no_torch:
        for b in args.batch_size:
            section(f"torch b{b}", lambda b=b: result["torch"].extend(torch_rows(b, args.width, args.steps)))
    for k, v in result["ratios"].items():
        print(f"  {k}: {v:.2f}x", flush=True)
    fastest = max(result["steps"], key=lambda r: r["train_images_per_s"], default=None)
    result["epoch"] = []
    if fastest:
        for augment in ("numpy", "device"):
            cfg = dataclasses.replace(base, batch_size=fastest["batch_size"], dtype=fastest["dtype"], augment=augment)

            def epoch(cfg=cfg):
                result["epoch"].append(pipeline_epoch(compiled, cfg, images, labels, args.epoch_steps))
                print_epoch(result["epoch"][-1])

            section(f"pipeline epoch {augment}", epoch)
        if args.lr_range:
            cfg = dataclasses.replace(base, batch_size=fastest["batch_size"], dtype=fastest["dtype"])

            def sweep(cfg=cfg):
                result["lr_range"] = lr_range_seconds(cfg, images, labels)
                lr = result["lr_range"]
                print(f"LR range test: {lr['iterations']} iterations in {lr['seconds']:.1f} s", flush=True)

            section("lr range test", sweep)

    def augmentation():
        result["augmentation"] = benchmark_augment.measure(images, labels, batches=args.augment_batches)
        for a in result["augmentation"]:
            rate = f"{a['images_per_s']:>10,} img/s" if "images_per_s" in a else f"failed: {a['error'][:60]}"
            print(f"augmentation {a['augment']:<15} {a['workers']} thread(s): {rate}", flush=True)

    section("host augmentation", augmentation)
    print(f"wrote {out} ({time.perf_counter() - start:.0f} s)")
    return result


def print_step(s: dict) -> None:
    name = f"jax {s['dtype']} conv {s['conv']} kernel-grad {s['kernel_grad']} bn {s['batch_norm']} b{s['batch_size']}"
    print(
        f"{name:<52} compile {s['compile_s']:6.1f} s  train {s['train_images_per_s']:>10,.1f} img/s  "
        f"eval {s['eval_images_per_s']:>10,.1f} img/s  {s['train_tflop_per_s']:6.2f} TFLOP/s  "
        f"24 epochs {s['projected_24_epochs_s']:>8,.1f} s",
        flush=True,
    )


def print_torch(t: dict) -> None:
    name = f"torch {t['variant']} b{t['batch_size']}"
    if "images_per_s" in t:
        print(f"{name:<38} first step {t['first_step_s']:5.1f} s  train {t['images_per_s']:>10,.1f} img/s", flush=True)
    else:
        print(f"{name:<38} failed: {t['error'][:80]}", flush=True)


def print_epoch(e: dict) -> None:
    print(
        f"pipeline epoch, --augment {e['augment']}: {e['steps']} steps in {e['seconds']:.2f} s, "
        f"{e['images_per_s']:,.0f} img/s, the device waited for the host "
        f"{100 * e['host_wait_fraction']:.1f}% of the time",
        flush=True,
    )


if __name__ == "__main__":
    main()
