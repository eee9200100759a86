"""`python scripts/benchmark_augment.py --help`: see jaxcifar/bench/augment_speed.py."""

from jaxcifar.bench.augment_speed import main

if __name__ == "__main__":
    main()
