"""Shared test fixtures: the real CIFAR-10 copy, when this machine has it."""

import os
from pathlib import Path

import pytest

from jaxcifar import startup

# pytest-xdist runs the suite in one worker per core (`-n auto` in pyproject.toml), each pinned to
# its own core before JAX starts, so XLA sizes its thread pool to that core: two workers of two
# threads each on 2 cores made the whole suite slower than one process (26.7 against 18.7 min on a
# 2-core AMD EPYC), one pinned worker per core faster (10.6 min; 8.6 with one compilation cache for
# both, below). Subprocesses inherit the core.
WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", "gw1", ...; None without xdist
if WORKER and hasattr(os, "sched_setaffinity"):
    _cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {_cores[int(WORKER.removeprefix("gw")) % len(_cores)]})

# The tests run XLA as the command lines do (YNNPACK off on the CPU), their subprocesses too.
startup.set_cpu_flags()

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
    first hit the cache, in every worker."""
    import jax

    # One cache for every worker of the run (their base folders share a parent), made once.
    root = tmp_path_factory.getbasetemp()
    cache = (root.parent if WORKER else root) / "xla-cache"
    cache.mkdir(exist_ok=True)
    cache = str(cache)
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    # Subprocess tests (several devices, the notebook, the GPU session script) share it.
    os.environ["JAX_COMPILATION_CACHE_DIR"] = cache
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.2"
    yield


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One finished tiny run (3 epochs, flip TTA, Grad-CAM) that tests read and never change.

    Returns (run folder, its summary, its config, its data).
    """
    from tiny import TINY_RUN

    from jaxcifar import train
    from jaxcifar.config import TrainConfig
    from jaxcifar.loader import load_data

    out = tmp_path_factory.mktemp("tiny-run") / "run"
    settings = {**TINY_RUN, "epochs": 3, "tta": True, "gradcam": True, "n_train": 640, "n_test": 200}
    config = TrainConfig(**settings, out=str(out))
    ds = load_data(config)  # as the Grad-CAM command line will load it again
    summary = train.train_and_evaluate(config, ds)
    return out, summary, config, ds
