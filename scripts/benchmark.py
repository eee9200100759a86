"""Speed of jaxcifar, measured side by side with PyTorch in one run.

    python scripts/benchmark.py                            # GPU: batch 512, 20 steps
    python scripts/benchmark.py --batch-size 128 --steps 3 --epoch-steps 6   # a 2-core CPU, ~5 min

Measures, on the default device: compile time and training-step throughput
(images/s) in float32 and bfloat16 (and, on CPU, both conv kernel gradients);
eval throughput; the host augmentation of both paths on one thread and on all
cores; an epoch through the real pipeline (BatchLoader -> device -> step), with
host (numpy) and with device augmentation, and the share of time the device
waited for the host; optionally the 980-step LR
range test; and the same network and step in PyTorch (eager, channels-last,
torch.compile, bfloat16 autocast where supported) when torch is installed.
Prints a table and writes results/benchmark-<device>.json (command, hardware,
versions, every figure). Ratios compare figures of this one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from jaxcifar import parallel, records, train  # noqa: E402
from jaxcifar.augment import BatchLoader  # noqa: E402
from jaxcifar.config import TrainConfig  # noqa: E402
from jaxcifar.model import forward_flops  # noqa: E402
from jaxcifar.schedule import one_cycle  # noqa: E402


def random_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int32)


def step_throughput(config: TrainConfig, steps: int, warmup: int = 2) -> dict:
    """Compile seconds and images/s of the training step and the eval step."""
    mesh = parallel.make_mesh(config.devices)
    schedule = one_cycle(0.004, 0.04, 97)
    model = train.make_model(config)
    state = train.create_train_state(model, train.make_optimizer(schedule), jax.random.key(0))
    state = parallel.put_replicated(state, mesh)
    compiled = train.compile_steps(state, mesh, config.batch_size, schedule)
    images, labels = random_data(config.batch_size)
    batch = parallel.put_batch((images.astype(np.float32) / 255.0, labels), mesh)
    for _ in range(warmup):
        state, metrics = compiled.train(state, batch)
    jax.block_until_ready(metrics)
    t0 = time.perf_counter()
    for _ in range(steps):
        state, metrics = compiled.train(state, batch)
    jax.block_until_ready(metrics)
    train_rate = steps * config.batch_size / (time.perf_counter() - t0)
    eval_batch = parallel.put_batch((batch[0], batch[1], jnp.ones(config.batch_size)), mesh)
    jax.block_until_ready(compiled.eval(state, eval_batch))
    t0 = time.perf_counter()
    for _ in range(steps):
        out = compiled.eval(state, eval_batch)
    jax.block_until_ready(out)
    eval_rate = steps * config.batch_size / (time.perf_counter() - t0)
    return {
        "dtype": jnp.dtype(model.dtype).name,
        "kernel_grad": model.kernel_grad,
        "batch_size": config.batch_size,
        "compile_s": compiled.compile_seconds,
        "train_images_per_s": train_rate,
        "eval_images_per_s": eval_rate,
        # Forward, input gradient and kernel gradient: 3x the forward FLOPs per image.
        "train_tflop_per_s": 3 * forward_flops(config.width) * train_rate / 1e12,
        # The recipe's 24 x 97 steps of 512 at this rate, training alone.
        "projected_24_epochs_s": 24 * (50_000 // 512) * 512 / train_rate,
    }


def pipeline_epoch(config: TrainConfig, images: np.ndarray, labels: np.ndarray, max_steps: int | None) -> dict:
    """An epoch (or its first max_steps) through BatchLoader and the step.

    The device waited for the host while the loop blocked on the next batch:
    with asynchronous dispatch, a loop that never waits keeps the device fed.
    """
    mesh = parallel.make_mesh(config.devices)
    schedule = one_cycle(0.004, 0.04, 97)
    state = train.create_train_state(train.make_model(config), train.make_optimizer(schedule), jax.random.key(0))
    state = parallel.put_replicated(state, mesh)
    compiled = train.compile_steps(
        state, mesh, config.batch_size, schedule, with_eval=False, augment=train.device_augment(config)
    )
    loader = BatchLoader(
        images, labels, config.batch_size, train=True, augment=config.augment, workers=config.augment_threads
    )
    # Warm up: one step outside the timing.
    state, metrics = compiled.train(state, parallel.put_batch(loader.batch(0, 0), mesh))
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
            state, metrics = compiled.train(state, parallel.put_batch(batch, mesh))
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
    }


def lr_range_seconds(config: TrainConfig, images: np.ndarray, labels: np.ndarray) -> dict:
    from jaxcifar import lr_range
    from jaxcifar.data import CIFAR10

    ds = CIFAR10(images, labels, images[:10], labels[:10], source="random images")
    # Random labels never diverge fast: the full num_iter runs.
    result = lr_range.sweep(dataclasses.replace(config, lr_range_diverge=1e9), ds)
    return {"iterations": result["iterations"], "seconds": result["seconds"], "compile_s": result["compile_seconds"]}


def torch_rows(batch_size: int, width: int, steps: int) -> list[dict]:
    try:
        import torch  # noqa: F401
        import torch_reference
    except ImportError:
        return []
    dev = torch_reference.torch.device("cuda" if torch_reference.torch.cuda.is_available() else "cpu")
    rows = []
    for variant in torch_reference.variants(dev):
        try:
            rows.append(torch_reference.measure(variant, batch_size, width, steps))
        except Exception as e:  # a variant the installation cannot run (e.g. no compiler for compile)
            rows.append({"variant": variant, "error": f"{type(e).__name__}: {e}"[:300]})
    return rows


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--epoch-steps", type=int, default=None, help="cap the pipeline epoch (CPU)")
    parser.add_argument("--workers", type=int, default=0, help="augmentation threads in the epoch (0: min(4, cores))")
    parser.add_argument("--data", default=None, help="CIFAR-10 for the augmentation and epoch figures")
    parser.add_argument("--lr-range", action="store_true", help="also time the 980-step LR range test")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--out", default=None, help="JSON path (default: results/benchmark-<device>.json)")
    parser.add_argument("--force", action="store_true", help="replace the JSON if it exists")
    args = parser.parse_args(argv)

    env = records.provenance()
    cpu = env["platform"] == "cpu"
    device = re.sub(r"[^A-Za-z0-9]+", "-", env["device_kind"]).strip("-").lower() or env["platform"]
    out = Path(args.out or f"results/benchmark-{device}.json")
    try:  # before minutes of measuring
        records.refuse_overwrite(out, force=args.force)
    except FileExistsError as e:
        parser.error(str(e))
    base = TrainConfig(width=args.width, batch_size=args.batch_size, workers=args.workers)
    if args.data:
        from jaxcifar.data import load_cifar10

        ds = load_cifar10(args.data)
        images, labels, source = ds.train_images, ds.train_labels, ds.source
    else:
        images, labels = random_data(50_000)
        source = "random uint8 images"

    result = {**env, "settings": vars(args), "data": source}
    variants = [("float32", "auto"), ("bfloat16", "auto")]
    if cpu:
        variants.append(("float32", "xla"))  # the kernel gradient XLA gives by itself, for the ratio
    result["steps"] = [
        step_throughput(dataclasses.replace(base, dtype=d, kernel_grad=k), args.steps) for d, k in variants
    ]
    fastest = max(result["steps"], key=lambda r: r["train_images_per_s"])
    best_dtype = fastest["dtype"]

    import benchmark_augment

    result["augmentation"] = benchmark_augment.measure(images, labels, batches=40)
    result["epoch"] = [
        pipeline_epoch(dataclasses.replace(base, dtype=best_dtype, augment=a), images, labels, args.epoch_steps)
        for a in ("numpy", "device")
    ]
    if args.lr_range:
        result["lr_range"] = lr_range_seconds(dataclasses.replace(base, dtype=best_dtype), images, labels)
    result["torch"] = [] if args.no_torch else torch_rows(args.batch_size, args.width, args.steps)
    result["ratios"] = {
        f"jax_{best_dtype}_vs_torch_{r['variant']}": fastest["train_images_per_s"] / r["images_per_s"]
        for r in result["torch"]
        if "images_per_s" in r
    }
    if args.lr_range is False and not cpu:
        result["note"] = "pass --lr-range to time the LR range test"

    _print(result)
    records.write_json(out, result)
    print(f"wrote {out}")
    return result


def _print(r: dict) -> None:
    print(f"{r['device_kind']} x{r['device_count']} ({r['platform']}), jax {r['versions']['jax']}; {r['data']}")
    print(
        f"{'training step':<34}{'compile s':>10}{'train img/s':>13}{'eval img/s':>12}{'TFLOP/s':>9}{'24 epochs s':>13}"
    )
    for s in r["steps"]:
        name = f"jax {s['dtype']} kernel-grad {s['kernel_grad']} b{s['batch_size']}"
        print(
            f"{name:<34}{s['compile_s']:>10.1f}{s['train_images_per_s']:>13,.1f}{s['eval_images_per_s']:>12,.1f}"
            f"{s['train_tflop_per_s']:>9.2f}{s['projected_24_epochs_s']:>13,.0f}"
        )
    for t in r["torch"]:
        if "images_per_s" in t:
            print(f"{'torch ' + t['variant']:<34}{t['first_step_s']:>10.1f}{t['images_per_s']:>13,.1f}")
        else:
            print(f"{'torch ' + t['variant']:<34}  failed: {t['error'][:60]}")
    for k, v in r["ratios"].items():
        print(f"  {k}: {v:.2f}x")
    for a in r["augmentation"]:
        print(f"augmentation {a['augment']:<15} {a['workers']} thread(s): {a['images_per_s']:>10,} img/s")
    for e in r["epoch"]:
        print(
            f"pipeline epoch, --augment {e['augment']}: {e['steps']} steps in {e['seconds']:.2f} s, "
            f"{e['images_per_s']:,.0f} img/s, the device waited for the host "
            f"{100 * e['host_wait_fraction']:.1f}% of the time"
        )
    if "lr_range" in r:
        lr = r["lr_range"]
        print(
            f"LR range test: {lr['iterations']} iterations in {lr['seconds']:.1f} s (+{lr['compile_s']:.1f} s compile)"
        )


if __name__ == "__main__":
    main()
