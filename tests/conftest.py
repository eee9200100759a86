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


@pytest.fixture(scope="session", autouse=True)
def compilation_cache(tmp_path_factory):
    """A persistent XLA cache for this session: the many tiny runs compile the
    same programs (new Python callables each time, same HLO), so all but the
    first hit the cache."""
    import jax

    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("xla-cache")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    yield
