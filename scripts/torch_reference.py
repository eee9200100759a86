"""`python scripts/torch_reference.py --help`: see jaxcifar/bench/torch_reference.py."""

from jaxcifar.bench.torch_reference import main

if __name__ == "__main__":
    main()
