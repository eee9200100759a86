"""`python scripts/cpu_variants.py --help`: see jaxcifar/bench/cpu_variants.py."""

from jaxcifar.bench.cpu_variants import main

if __name__ == "__main__":
    main()
