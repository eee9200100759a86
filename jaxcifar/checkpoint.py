"""A run's checkpoints, with orbax: save while training, resume anywhere, read weights for Grad-CAM.

A run folder's `checkpoints/` is an orbax `CheckpointManager` directory: one
folder per saved global step, each with two items,

  state   the TrainState (parameters, BatchNorm statistics, momentum, step)
  meta    JSON: where training stands (epochs done, batches of the next epoch
          done, global step), the best test accuracy so far, and the step of the
          best checkpoint kept

and orbax's own metadata (the step's test accuracy, for keeping the best).
Kept are the latest checkpoint and the best one by test accuracy (the earliest
among equals); checkpoints without an evaluation (step 0, Ctrl-C mid-epoch) rank
lowest and are kept only while they are the latest. Saves are asynchronous: `save` returns once the arrays
are copied off the devices and the files are written in the background, so the
training loop does not wait for the disk. A step folder appears under its final
name only when complete (orbax's atomic commit).

Each finished checkpoint's files are recorded (size and CRC-32, in the run's
checkpoint-files.json) once orbax has written them, so a resumed run knows a damaged
one (a file truncated or changed since) before reading it: it sets that checkpoint
aside (RUN/checkpoints-damaged/STEP) and resumes from the newest intact one.

Restoring takes an abstract target (shapes, dtypes and shardings) built for the
current mesh, so a checkpoint written on 8 devices resumes on 1 and one written
on a GPU loads on a CPU. The metric history is not here: it lives in the run's
metrics.json.
"""

from __future__ import annotations

import dataclasses
import shutil
import zlib
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from jaxcifar import parallel, records

TrainState = Any  # steps.TrainState, or its abstract shapes (jax.eval_shape): any pytree of arrays

FOLDER = "checkpoints"
FILES = "checkpoint-files.json"  # in the run folder: {step: {file: [bytes, crc32]}} of each finished checkpoint
DAMAGED = "checkpoints-damaged"  # in the run folder: checkpoints set aside by a resume
FORMAT = 2  # of the JSON saved beside each checkpoint (1: jaxcifar 0.1's flax msgpack files, no longer read)


def _rank(metrics: dict) -> tuple[float, int]:
    # The highest accuracy; among equals the earliest step, as `accuracy > best` picks it.
    return metrics["test_accuracy"], -metrics["step"]


def abstract_state(state: TrainState, mesh) -> TrainState:
    """Shapes, dtypes and replicated shardings on `mesh` of a state (or of its eval_shape)."""
    sharding = parallel.replicated(mesh)
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), jax.numpy.result_type(x), sharding=sharding), state)


class Checkpoints:
    """The checkpoints of one run folder. Use as a context manager, so pending saves finish.

    Example:
      with Checkpoints(run) as ckpt:
          ckpt.save(state, Position(epoch=1, batch=0, step=97), test_accuracy=0.55)
          state, meta = ckpt.restore(abstract_state(state, mesh))
    """

    def __init__(self, run: str | Path, *, read_only: bool = False):
        self.directory = (Path(run) / FOLDER).absolute()
        if read_only and not self.directory.is_dir():
            raise FileNotFoundError(f"no checkpoints in {Path(run)}: is it a jaxcifar run folder?")
        keep = policies.AnyPreservationPolicy(
            [
                policies.LatestN(n=1),
                policies.BestN(get_metric_fn=_rank, n=1),
            ]
        )
        options = ocp.CheckpointManagerOptions(
            preservation_policy=keep,
            best_fn=_rank,  # orbax writes a step's metrics, so a reopened run still knows its best, only with this
            create=not read_only,  # (orbax's own read_only mode only adds warnings: reading never writes)
            cleanup_tmp_directories=not read_only,  # a save cut short (a full disk, a kill) leaves one
            enable_async_checkpointing=True,
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)
        self.run = Path(run)
        self.read_only = read_only
        self._best: tuple[float, int] | None = None  # (accuracy, step) of the best checkpoint kept
        self._damage: list[tuple[int, str]] | None = None  # damaged(), read once per manager
        if not self.damaged():  # else the run that resumes sets them aside first (set_aside_damaged)
            self._load_best()

    def _load_best(self) -> None:
        self._best = None
        if (latest := self.manager.latest_step()) is not None:
            meta = self.meta(latest)
            if meta.get("best_saved_step") is not None:
                self._best = (meta["best_saved_accuracy"], meta["best_saved_step"])

    # --- which checkpoints are intact ---------------------------------------------

    def _files(self) -> dict[str, dict[str, list[int]]]:
        path = self.run / FILES
        return records.read_json(path) if path.exists() else {}

    def _record_files(self) -> None:
        """Records the files of every finished checkpoint not yet recorded (call once saves are finished)."""
        recorded = self._files()
        steps = {str(s) for s in self.manager.all_steps()}
        kept = {k: v for k, v in recorded.items() if k in steps}
        for step in steps - kept.keys():
            kept[step] = _file_sums(self.directory / step)
        if kept != recorded:
            records.write_json(self.run / FILES, dict(sorted(kept.items(), key=lambda kv: int(kv[0]))))

    def damaged(self) -> list[tuple[int, str]]:
        """(step, what differs) of each checkpoint whose files are not what was recorded, newest first.

        A checkpoint written before its files were recorded (the run was killed right after) counts as intact.
        The files are read once per manager (every checkpoint's bytes are summed).
        """
        if self._damage is not None:
            return list(self._damage)
        recorded = self._files()
        found = []
        for step in sorted(self.manager.all_steps(), reverse=True):
            if (saved := recorded.get(str(step))) is not None:
                now = _file_sums(self.directory / str(step))
                if differ := sorted(f for f in saved.keys() | now.keys() if saved.get(f) != now.get(f)):
                    what = "is missing" if differ[0] not in now else "has changed since it was written"
                    found.append((step, f"{FOLDER}/{step}/{differ[0]} {what}"))
        self._damage = found
        return list(found)

    def set_aside_damaged(self) -> list[str]:
        """Moves each damaged checkpoint to RUN/checkpoints-damaged/STEP (nothing is deleted); returns a line
        for each, saying what was found and where it went."""
        said = []
        for step, what in self.damaged():
            target = self.run / DAMAGED / str(step)
            target.parent.mkdir(exist_ok=True)
            if target.exists():
                shutil.rmtree(target)  # the same step set aside before, and written again since
            shutil.move(str(self.directory / str(step)), target)
            said.append(f"checkpoint {step} is damaged ({what}): set aside in {target}")
        if said:
            self._damage = []  # what was damaged is gone from checkpoints/
            self.manager.reload()
            self._record_files()
            self._load_best()
        return said

    def __enter__(self) -> Checkpoints:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def best_step(self) -> int | None:
        """The step of the best checkpoint kept (None before any epoch was evaluated)."""
        latest = self.latest_step()
        return None if latest is None else self.meta(latest).get("best_saved_step")

    def save(self, state: TrainState, position: Any, test_accuracy: float | None = None, **meta: Any) -> bool:
        """Saves `state` at `position` (a `runlog.Position`: epoch, batch, step), asynchronously; `meta` adds
        JSON fields.

        `test_accuracy` (at epoch ends) ranks the checkpoint for keeping the best.
        Returns False, saving nothing, when this step is saved already (a stop
        requested right after an epoch's checkpoint).
        """
        if position.step in self.manager.all_steps():
            return False
        self.manager.wait_until_finished()  # the last save (it had an epoch's time), so its files are recorded
        if jax.process_index() == 0:
            self._record_files()
        if test_accuracy is not None:
            new = {"test_accuracy": float(test_accuracy), "step": position.step}
            if self._best is None or _rank(new) > _rank({"test_accuracy": self._best[0], "step": self._best[1]}):
                self._best = (float(test_accuracy), position.step)
        record = {
            **dataclasses.asdict(position),
            **meta,
            "best_saved_accuracy": self._best[0] if self._best else None,
            "best_saved_step": self._best[1] if self._best else None,
            "format": FORMAT,
        }
        # Orbax wants metrics with every save once it ranks them; -1 ranks an unevaluated
        # checkpoint (step 0, Ctrl-C mid-epoch) below every evaluated one.
        rank = -1.0 if test_accuracy is None else float(test_accuracy)
        metrics = {"test_accuracy": rank, "step": position.step}
        self.manager.save(
            position.step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(record)),
            metrics=metrics,
        )
        return True

    def meta(self, step: int | None = None) -> dict:
        """The JSON saved with a checkpoint (default: the latest)."""
        step = self._step(step)
        return dict(self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta)

    def restore(self, target: TrainState, step: int | None = None) -> tuple[TrainState, dict]:
        """(state, meta) of a checkpoint (default: the latest), laid out as `target` says.

        Args:
          target: an abstract state (`abstract_state`) for the current mesh.
        """
        step = self._step(step)
        self._check_fits(target, step)
        try:
            restored = self.manager.restore(
                step,
                args=ocp.args.Composite(state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(
                f"the checkpoint {self.directory / str(step)} does not fit this model ({str(e)[:300]}); was it "
                "written by a run with another --width or optimizer? Use that run's settings or start a new run."
            ) from e
        return restored.state, dict(restored.meta)

    def _check_fits(self, target: TrainState, step: int) -> None:
        """Raises ValueError naming the first array of checkpoint `step` whose shape differs from `target`'s.

        Checked on orbax's metadata before reading: a restore that fails part-way
        leaves reads pending, which print a page of tracebacks when Python exits.
        """
        saved = _shapes(ocp.StandardCheckpointHandler().metadata(self.directory / str(step) / "state"))
        wanted = _shapes(target)
        if saved == wanted:
            return
        differ = [k for k in sorted(wanted.keys() & saved.keys()) if saved[k] != wanted[k]]
        if differ:
            what = f"{differ[0]} has shape {saved[differ[0]]} there, {wanted[differ[0]]} here"
        else:
            only = sorted(saved.keys() ^ wanted.keys())[0]
            what = f"{only} is {'only in the checkpoint' if only in saved else 'missing from it'}"
        raise ValueError(
            f"the checkpoint {self.directory / str(step)} does not fit this model ({what}); was it written by a "
            "run with another --width or optimizer? Use that run's settings or start a new run."
        )

    def wait(self) -> None:
        """Blocks until every save has reached the disk."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        if not self.read_only and jax.process_index() == 0:  # the process that writes the checkpoints
            self._record_files()
        self.manager.close()

    def _step(self, step: int | None) -> int:
        if step is None:
            step = self.latest_step()
        if step is None or step not in self.manager.all_steps():
            raise FileNotFoundError(f"no checkpoint {'' if step is None else step} in {self.directory}")
        return step


def _file_sums(folder: Path) -> dict[str, list[int]]:
    """{file relative to `folder`: [bytes, CRC-32]} of every file under it (CRC-32 reads ~1 GB/s: 30 ms for a
    width-64 checkpoint)."""
    sums = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            sums[str(path.relative_to(folder))] = [path.stat().st_size, zlib.crc32(path.read_bytes())]
    return sums


def _shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    """{'params/layer1/conv/kernel': shape, ...} of a state, an abstract state or orbax's metadata of one."""
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return {jax.tree_util.keystr(path, simple=True, separator="/"): tuple(x.shape) for path, x in leaves}


def load_variables(run: str | Path, template: TrainState, which: str = "best") -> dict:
    """{'params', 'batch_stats'} of a run's best or latest checkpoint, on this machine's first device.

    `template` is the run's state or its shapes (`steps.state_shapes(config)`). Needs no training:
    for evaluation and Grad-CAM of any run, wherever it ran.
    """
    if which not in ("best", "latest"):
        raise ValueError(f"which must be 'best' or 'latest', got {which!r}")
    with Checkpoints(run, read_only=True) as ckpt:
        step = ckpt.latest_step() if which == "latest" else ckpt.best_step()
        if step is None:
            hint = " (no epoch was evaluated: the run may have diverged); use --checkpoint latest"
            raise FileNotFoundError(f"{Path(run)} has no {which} checkpoint" + (hint if which == "best" else ""))
        if damage := dict(ckpt.damaged()).get(step):
            other = "latest" if which == "best" else "best"
            raise ValueError(
                f"the {which} checkpoint of {Path(run)} is damaged ({damage}): use --checkpoint {other}, or "
                "resume the run (python -m jaxcifar.train --out RUN --resume sets it aside)"
            )
        state, _ = ckpt.restore(abstract_state(template, parallel.make_mesh(1)), step)
    return {"params": state.params, "batch_stats": state.batch_stats}
