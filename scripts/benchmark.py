"""`python scripts/benchmark.py --help`: see jaxcifar/bench/benchmark.py."""

from jaxcifar.bench.benchmark import main

if __name__ == "__main__":
    main()
