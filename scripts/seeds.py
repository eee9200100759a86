"""`python scripts/seeds.py --help`: see jaxcifar/seeds.py."""

from jaxcifar.seeds import main

if __name__ == "__main__":
    main()
