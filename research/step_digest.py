"""A digest of the training step's numbers, to show that a refactor keeps them bit for bit.

    python -m research.step_digest --width 64 --steps 2      # ~1 min on 2 cores
    (cd OLD_CHECKOUT && python -m research.step_digest ...)  # the same line at another revision

Runs `steps` training steps of the run a TrainConfig describes (its model, kernels and
optimizer, as `python -m jaxcifar.train` builds them) on fixed random batches and prints
the sha256 of every parameter, BatchNorm statistic and loss afterwards. Two revisions
that print the same digest on one machine compute the same step, bit for bit; across
machines rounding may differ, so compare on one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Sequence

import jax
import numpy as np

import jaxcifar
from jaxcifar import parallel, startup
from jaxcifar import steps as steps_lib
from jaxcifar.config import TrainConfig
from jaxcifar.schedule import one_cycle


def digest(width: int, batch_size: int, steps: int, seed: int = 0) -> dict:
    """{"sha256", "losses", ...}: the state after `steps` steps from `seed`'s parameters."""
    config = TrainConfig(width=width, batch_size=batch_size, seed=seed)
    schedule = one_cycle(0.004, 0.04, 97)
    mesh = parallel.make_mesh(1)
    state = parallel.put_replicated(steps_lib.initial_state(config, schedule), mesh)
    compiled = steps_lib.compile_run_steps(config, state, mesh, schedule, with_eval=False)
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(steps):
        images = rng.normal(size=(batch_size, 32, 32, 3)).astype(np.float32)
        labels = rng.integers(0, 10, batch_size).astype(np.int32)
        state, metrics = compiled.train(state, parallel.put_batch((images, labels), mesh))
        losses.append(float(metrics["loss"]))
    h = hashlib.sha256()
    for leaf in jax.tree.leaves((state.params, state.batch_stats, state.opt_state)):
        h.update(np.asarray(leaf).tobytes())
    h.update(np.asarray(losses, np.float32).tobytes())
    return {"jaxcifar": jaxcifar.__file__, "width": width, "batch_size": batch_size, "steps": steps,
            "losses": losses, "sha256": h.hexdigest()}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m research.step_digest", description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, nargs="+", default=[64], help="base widths, one digest each (default: 64)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (default: 64)")
    parser.add_argument("--steps", type=int, default=2, help="training steps before the digest (default: 2)")
    args = parser.parse_args(argv)
    startup.set_cpu_flags()
    results = [digest(width, args.batch_size, args.steps) for width in args.width]
    for result in results:  # a line each, in the order asked
        print(json.dumps(result))
    return results


if __name__ == "__main__":
    main()
