"""`python scripts/conv_layers.py --help`: see jaxcifar/bench/conv_layers.py."""

from jaxcifar.bench.conv_layers import main

if __name__ == "__main__":
    main()
