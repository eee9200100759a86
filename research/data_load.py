"""How long a data source takes to load: decoded the first time, then from the cache.

    python -m research.data_load --data ../shared/data/cifar10-png.tar.gz --out results/data-load-cpu-png.json

Loads the source twice with a fresh, empty cache folder: the first load decodes every
image and writes the cache, the second reads the cache. Records both times and the
arrays' shapes; the cache folder is removed afterwards.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from jaxcifar import records
from jaxcifar.data import load_cifar10
from jaxcifar.errors import entry_point
from research.collect_run import data_file


def measure(data: str) -> dict:
    """Seconds of the first (decoding) and the second (cached) load of `data`."""
    cache = Path(tempfile.mkdtemp(prefix="jaxcifar-data-load-"))
    try:
        times = []
        for _ in range(2):
            start = time.perf_counter()
            ds = load_cifar10(data, cache_dir=cache)
            times.append(time.perf_counter() - start)
        cache_bytes = sum(p.stat().st_size for p in cache.iterdir())
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return {
        "data": data,
        "data_source": ds.source,
        "data_file": data_file(data),
        "train_images": len(ds.train_images),
        "test_images": len(ds.test_images),
        "first_load_s": times[0],
        "cached_load_s": times[1],
        "cache_bytes": cache_bytes,
    }


@entry_point
def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m research.data_load", description="Time a data source's first and cached load."
    )
    parser.add_argument("--data", required=True, help="the source, as --data of the training command (required)")
    parser.add_argument("--out", default=None, help="JSON record (default: print only)")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists (default: off)")
    args = parser.parse_args(argv)
    if args.out:
        records.refuse_overwrite(args.out, force=args.force)
    result = {**records.provenance(), **measure(args.data)}
    print(
        f"{result['data_source']}: first load {result['first_load_s']:.1f} s (decoding), "
        f"cached {result['cached_load_s']:.2f} s"
    )
    if args.out:
        records.write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
