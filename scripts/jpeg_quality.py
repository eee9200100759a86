"""`python scripts/jpeg_quality.py --help`: see jaxcifar/jpeg_study.py."""

from jaxcifar.jpeg_study import main

if __name__ == "__main__":
    main()
