"""`python scripts/readme_tables.py [--check]`: see jaxcifar/evidence.py."""

from jaxcifar.evidence import readme_main

if __name__ == "__main__":
    readme_main()
