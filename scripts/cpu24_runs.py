"""`python scripts/cpu24_runs.py --help`: see jaxcifar/investigation.py (CPU24_EXPERIMENTS)."""

from jaxcifar.investigation import main

if __name__ == "__main__":
    main()
