"""`python scripts/collect_run.py --help`: see jaxcifar/evidence.py."""

from jaxcifar.evidence import main

if __name__ == "__main__":
    main()
