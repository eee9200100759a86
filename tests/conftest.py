"""Shared test fixtures: the real CIFAR-10 copy, when this machine has it."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The development machines keep the real images beside the checkout
# (../shared/data, see its README); JAXCIFAR_TEST_DATA points elsewhere.
REAL_DATA = Path(os.environ.get("JAXCIFAR_TEST_DATA", REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"))


@pytest.fixture(scope="session")
def real_cifar(tmp_path_factory):
    """The full real CIFAR-10 (decoded once per session), or a skip saying why."""
    if not REAL_DATA.exists():
        pytest.skip(f"real CIFAR-10 not found at {REAL_DATA} (set JAXCIFAR_TEST_DATA to its path)")
    from jaxcifar.data import load_cifar10

    cache = os.environ.get("JAXCIFAR_CACHE") or tmp_path_factory.mktemp("cache")
    return load_cifar10(REAL_DATA, cache_dir=cache)
