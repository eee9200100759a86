"""Host augmentation throughput: numpy vs albumentations (and the host's share of
--augment device), one thread vs all cores.

    python -m research.benchmark_augment [--data PATH] [--batches 40] [--json out.json]

Takes about 30 s on a 2-core CPU. Images/s are measured through `BatchLoader`,
the path training uses (shuffle, gather, augment, normalise, prefetch), on real
CIFAR-10 when --data is given and on random uint8 images otherwise (the work
does not depend on the pixel values). All figures come from one run, so their
ratios are comparable.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from jaxcifar import records
from jaxcifar.augment import AUGMENTERS
from jaxcifar.data import load_cifar10
from jaxcifar.errors import entry_point
from jaxcifar.loader import BatchLoader


def loader_throughput(images, labels, augment: str, workers: int, batches: int, batch_size: int = 512) -> float:
    """Images/s of `batches` augmented training batches through BatchLoader."""
    loader = BatchLoader(images, labels, batch_size, train=True, augment=augment, workers=workers)
    batches = min(batches, len(loader))
    it = loader.epoch(0)
    next(it)  # warm-up: thread start, first allocation
    start = time.perf_counter()
    for _ in range(batches - 1):
        next(it)
    elapsed = time.perf_counter() - start
    it.close()
    return (batches - 1) * batch_size / elapsed


def measure(images, labels, batches: int) -> list[dict]:
    cores = os.cpu_count() or 1
    rows = []
    for augment in AUGMENTERS:
        # albumentations is ~5x slower: fewer batches keep the run short. "device"
        # measures the host's share of that path (shuffle, draws, uint8 gather).
        n = max(4, batches // 4) if augment == "albumentations" else batches
        for workers in sorted({1, cores}):
            try:
                rate = loader_throughput(images, labels, augment, workers, n)
            except ImportError as e:  # albumentations (or OpenCV) missing: the others still count
                rows.append({"augment": augment, "workers": workers, "error": f"{type(e).__name__}: {e}"[:300]})
                break
            rows.append({"augment": augment, "workers": workers, "images_per_s": round(rate)})
    return rows


@entry_point
def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m research.benchmark_augment", description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=None, help="CIFAR-10 source (default: random images)")
    parser.add_argument("--batches", type=int, default=40, help="batches of 512 per numpy measurement (default: 40)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON (default: none)")
    parser.add_argument("--force", action="store_true", help="replace --json if it exists (default: off)")
    args = parser.parse_args(argv)
    if args.json:
        try:
            records.refuse_overwrite(args.json, force=args.force)
        except FileExistsError as e:
            parser.error(str(e))
    if args.data:
        ds = load_cifar10(args.data)
        images, labels, source = ds.train_images, ds.train_labels, ds.source
    else:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (50_000, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, 50_000).astype(np.int32)
        source = "random uint8 images"
    rows = measure(images, labels, args.batches)
    base = rows[0]["images_per_s"]
    print(f"host augmentation, batches of 512, {source}, {os.cpu_count()} cores")
    print(f"{'path':<16}{'threads':>8}{'images/s':>12}{'vs numpy x1':>13}")
    for r in rows:
        if "error" in r:
            print(f"{r['augment']:<16}{r['workers']:>8}  failed: {r['error'][:60]}")
        else:
            print(f"{r['augment']:<16}{r['workers']:>8}{r['images_per_s']:>12,}{r['images_per_s'] / base:>12.2f}x")
    result = {"command": records.command_line(), "source": source, "cpu_count": os.cpu_count(), "rows": rows}
    if args.json:
        records.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
