"""`python scripts/lr_rules.py --help`: see jaxcifar/rules_study.py."""

from jaxcifar.rules_study import main

if __name__ == "__main__":
    main()
