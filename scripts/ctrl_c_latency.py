"""`python scripts/ctrl_c_latency.py --help`: see jaxcifar/bench/ctrl_c.py."""

from jaxcifar.bench.ctrl_c import main

if __name__ == "__main__":
    main()
