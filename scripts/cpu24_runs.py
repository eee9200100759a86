"""`python scripts/cpu24_runs.py --help`: see jaxcifar/evidence.py (CPU24_EXPERIMENTS)."""

from jaxcifar.evidence import cpu24_main

if __name__ == "__main__":
    cpu24_main()
