"""Train ResNet-9 on CIFAR-10 with the one-cycle recipe and evaluate after every epoch.

    python -m jaxcifar.train --lr-max auto            # the full recipe (24 epochs)
    python -m jaxcifar.train --quick --data synthetic # a first try: minutes on a CPU

This module is the driver only: the run folder, the learning rates (an LR range
test when `lr_max` is None), the epoch loop, Ctrl-C and SIGTERM, and `main`. The steps are
`jaxcifar.steps`', the batches `jaxcifar.loader`'s, the checkpoints
`jaxcifar.checkpoint`'s, and `RunLog` keeps what the run records.

Run folder (`--out`, default runs/<timestamp>):
  config.json     the settings (LRs and data source as used), with command, versions and hardware
  metrics.json    per epoch: train/test loss and accuracy, LR, seconds; per step: LR, loss, accuracy
  summary.json    final and best accuracies, times, images/s, status
  checkpoints/    orbax checkpoints: the latest (resumable) and the best by test accuracy
  accuracy.png, loss_accuracy.png, one_cycle.png (the LR actually used, per step)
  lr_range.json, lr_range.png       the LR range test that chose LR_MAX (run or reused)
  gradcam_misclassified.png, misclassified.png   Grad-CAM of 25 misclassified test images

Exit status: 0 done, 1 failed during the run (diverged, data unreadable), 2 bad
usage or input (nothing was started), 130 stopped by Ctrl-C, 143 stopped by SIGTERM
(both saved a checkpoint: resumable).
"""

from __future__ import annotations

import sys

from jaxcifar import config as config_lib
from jaxcifar import startup

PROG = "python -m jaxcifar.train"
DESCRIPTION = (
    "Train ResNet-9 on CIFAR-10 with the one-cycle recipe (LR range test first with --lr-max auto), "
    "evaluating after every epoch."
)

if __name__ == "__main__":  # the command line, before JAX loads: --help at once, XLA's CPU flags, huge pages
    startup.prepare("jaxcifar.train", sys.argv[1:], lambda: config_lib.parser(PROG, DESCRIPTION))

import dataclasses
import math
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxcifar import gradcam, kernels, lr_range, parallel, plots, records
from jaxcifar import steps as steps_lib
from jaxcifar.checkpoint import Checkpoints, Position, abstract_state
from jaxcifar.config import TrainConfig
from jaxcifar.console import Progress, StopRequest, say
from jaxcifar.data import CIFAR10, resolve_source, subset
from jaxcifar.errors import EXIT_FAILED, UsageError, entry_point, stop_status
from jaxcifar.loader import BatchLoader, load_data, make_train_loader
from jaxcifar.schedule import one_cycle
from jaxcifar.steps import Steps, TrainState

STEP_KEYS = ("lr", "loss", "accuracy")


class Diverged(RuntimeError):
    """The loss became NaN or infinite."""


# --- what a run records ------------------------------------------------------------


@dataclasses.dataclass
class RunLog:
    """A run's record: per-epoch history, the per-step log, the best test accuracy.

    `steps` holds every step done (lr, loss, accuracy), the current epoch's
    included; `history` one row per finished epoch. Written to metrics.json,
    read back from it on resume, cut to the checkpoint's position.
    """

    steps_per_epoch: int
    tta: bool
    history: dict[str, list] = dataclasses.field(default_factory=dict)
    steps: dict[str, list] = dataclasses.field(default_factory=lambda: {k: [] for k in STEP_KEYS})

    def __post_init__(self) -> None:
        keys = ["train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr", "seconds", "eval_seconds"]
        keys += ["images_per_second", *(("test_loss_tta", "test_accuracy_tta") if self.tta else ())]
        self.history = {k: list(self.history.get(k, [])) for k in keys}

    @classmethod
    def read(cls, path: Path, position: Position, tta: bool) -> RunLog:
        """The log in metrics.json as it stood at `position` (later rows dropped)."""
        saved = records.read_json(path)
        log = cls(saved["steps_per_epoch"], tta, saved["epochs"], saved["steps"])
        log.history = {k: v[: position.epoch] for k, v in log.history.items()}
        log.steps = {k: list(saved["steps"][k][: position.step]) for k in STEP_KEYS}
        return log

    @property
    def epochs_done(self) -> int:
        return len(self.history["test_accuracy"])

    @property
    def best(self) -> tuple[float, int] | None:
        """(best test accuracy, its epoch from 1), the earliest among equals."""
        acc = self.history["test_accuracy"]
        return (acc[int(np.argmax(acc))], int(np.argmax(acc)) + 1) if acc else None

    def add_steps(self, fetched: Sequence[dict]) -> None:
        for m in fetched:
            for k in STEP_KEYS:
                self.steps[k].append(float(m[k]))

    def epoch_steps(self, epoch: int) -> dict[str, list]:
        s = self.steps_per_epoch
        return {k: v[epoch * s : (epoch + 1) * s] for k, v in self.steps.items()}

    def end_epoch(self, epoch: int, test: dict, seconds: float, eval_seconds: float, images_per_second: float) -> dict:
        """Adds epoch `epoch`'s row (its steps must be in) and returns it.

        `seconds` is the epoch's training time, over every session that trained it.
        """
        steps = self.epoch_steps(epoch)
        row = {
            "train_loss": float(np.mean(steps["loss"])),
            "train_accuracy": float(np.mean(steps["accuracy"])),
            "test_loss": test["loss"],
            "test_accuracy": test["accuracy"],
            "lr": steps["lr"][-1],
            "seconds": seconds,
            "eval_seconds": eval_seconds,
            "images_per_second": images_per_second,
        }
        if self.tta:
            row.update(test_loss_tta=test["tta_loss"], test_accuracy_tta=test["tta_accuracy"])
        for k, v in row.items():
            self.history[k].append(v)
        return row

    def write(self, path: Path) -> None:
        records.write_json(path, {"epochs": self.history, "steps": self.steps, "steps_per_epoch": self.steps_per_epoch})

    def summary(self, config: TrainConfig, status: str, message: str, extra: dict) -> dict:
        h = self.history
        acc = h["test_accuracy"]
        best = self.best
        train_seconds = float(np.sum(h["seconds"]))
        images = sum(r * s for r, s in zip(h["images_per_second"], h["seconds"]))
        return {
            "status": status,
            "message": message,
            "epochs_completed": len(acc),
            "final_test_accuracy": acc[-1] if acc else None,
            "best_test_accuracy": best[0] if best else None,
            "best_epoch": best[1] if best else None,
            "final_train_accuracy": h["train_accuracy"][-1] if acc else None,
            "best_train_accuracy": max(h["train_accuracy"]) if acc else None,
            **(
                {
                    "final_test_accuracy_tta": h["test_accuracy_tta"][-1],
                    "best_test_accuracy_tta": max(h["test_accuracy_tta"]),
                }
                if acc and self.tta
                else {}
            ),
            "lr_min": config.lr_min,
            "lr_max": config.lr_max,
            "train_seconds": train_seconds,
            "eval_seconds": float(np.sum(h["eval_seconds"])),
            "images_per_second": images / train_seconds if train_seconds else None,
            **extra,
        }


def epoch_line(epoch: int, epochs: int, row: dict, batches: int, steps_per_epoch: int) -> str:
    """The one line printed per epoch; a resumed epoch's speed is marked as partial."""
    speed = f"{row['seconds']:.1f} s  {row['images_per_second']:,.0f} img/s"
    if batches < steps_per_epoch:
        speed = f"{speed} (resumed: the speed of this session's {batches} of {steps_per_epoch} batches)"
    return (
        f"epoch {epoch + 1:>2}/{epochs}  train loss {row['train_loss']:.4f} acc {100 * row['train_accuracy']:6.2f}%"
        f"  test loss {row['test_loss']:.4f} acc {100 * row['test_accuracy']:6.2f}%"
        + (f" (flip TTA {100 * row['test_accuracy_tta']:6.2f}%)" if "test_accuracy_tta" in row else "")
        + f"  lr {row['lr']:.4g}  {speed}"
    )


# --- the run folder and the settings -----------------------------------------------


def default_out() -> Path:
    base = Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    out, i = base, 1
    while out.exists():
        out, i = base.with_name(f"{base.name}-{i}"), i + 1
    return out


def resumed_config(config: TrainConfig, given: Iterable[str] | None = None) -> TrainConfig:
    """The settings of the run in `config.out`, for `--resume`.

    Settings in `given` (the flags on the command line; by default every setting
    of `config` that differs from the defaults) must equal the run's, except the
    RESUMABLE ones: those of the machine (config.MACHINE: devices, processes,
    threads, caches, progress) are taken from `config`, the others from `config`
    where given, else the run's (a run on --data PATH resumes on PATH, not on the
    default data).

    Raises:
      FileNotFoundError: `config.out` is not a run folder.
      UsageError: a given setting differs from the run's.
    """
    out = Path(config.out)
    saved = out / "config.json"
    if not saved.exists():
        raise FileNotFoundError(f"--resume: {saved} not found; is {out} a jaxcifar run folder?")
    stored = TrainConfig.from_json(records.read_json(saved)["config"])
    if given is None:
        default = TrainConfig()
        given = [f.name for f in dataclasses.fields(TrainConfig) if getattr(config, f.name) != getattr(default, f.name)]
    given = set(given)
    changed = [
        f"--{k.replace('_', '-')} {getattr(config, k)!r} (the run has {getattr(stored, k)!r})"
        for k in given
        if k not in (*config_lib.RESUMABLE, "resume", "out", "overrides") and getattr(config, k) != getattr(stored, k)
    ]
    if changed:
        raise UsageError(
            f"--resume continues {out} with its own settings; these differ: {'; '.join(changed)}. "
            "Drop them, or start a new run with another --out."
        )
    here = {k: getattr(config, k) for k in config_lib.RESUMABLE if k in config_lib.MACHINE or k in given}
    return dataclasses.replace(stored, resume=True, out=str(out), **here)


def check_inputs(config: TrainConfig) -> None:
    """Checks every input file and the output folder before anything is created.

    Raises:
      UsageError / FileNotFoundError / FileExistsError naming the file or folder.
    """
    out = Path(config.out)
    if config.resume:
        if not (out / "checkpoints").is_dir():
            raise FileNotFoundError(f"--resume: {out} has no checkpoints/ to continue from")
    else:
        # Only process 0 writes; the others must not trip over its first files.
        if jax.process_index() == 0 and out.exists() and any(out.iterdir()):
            raise FileExistsError(
                f"{out} already exists and is not empty; nothing is overwritten. Pass --resume to continue "
                "the run in it, or choose another --out."
            )
        if config.lr_range_json:
            lr_range.load(config.lr_range_json)  # raises, naming the file and the flag
    if jax.process_index() == 0:
        records.check_writable(out)


def resolve_lr(config: TrainConfig, ds: CIFAR10, out: Path, mesh) -> tuple[float, float, dict]:
    """(LR_MIN, LR_MAX, how they were found): given, or by the rules from a new or a saved sweep.

    A sweep, new or reused, ends up in the run folder as lr_range.json and
    lr_range.png, with every rule's suggestions and the pair this run's rules chose.
    """
    info: dict[str, Any] = {}
    sweep = None
    if config.lr_range_json:
        sweep = lr_range.load(config.lr_range_json)
        sweep = {**sweep, **lr_range.suggestions_of(sweep, config), "reused_from": str(config.lr_range_json)}
        if jax.process_index() == 0:
            records.write_json(out / "lr_range.json", sweep)
            lr_range.plot(sweep, out / "lr_range.png")
        info["source"] = f"LR range test {config.lr_range_json}"
    elif config.lr_max is None:
        sweep = lr_range.run(config, ds, out, mesh=mesh)
        info["source"] = f"LR range test in {out / 'lr_range.json'}"
    if config.lr_max is not None:
        lr_max = float(config.lr_max)
        info["lr_max"] = "--lr-max"
    else:
        lr_max = float(sweep["lr_max"])
        info["rule"] = config.lr_range_rule
    if config.lr_min is not None:
        lr_min = float(config.lr_min)
        info["lr_min"] = "--lr-min"
    elif sweep is None:
        lr_min = lr_max / config.lr_div
        info["lr_min_rule"] = "div"
    else:  # for the sweep's LR_MAX or the one given
        rec = {k: np.asarray(v, dtype=np.float64) for k, v in sweep["records"].items()}
        picked = lr_range.pick_min(rec, lr_max, config.lr_min_rule, config.lr_div, config.lr_min_fraction)
        lr_min = picked["lr_min"]
        info["lr_min_rule"] = picked["lr_min_rule"]
        if picked["fallback"]:
            info["lr_min_fallback"] = picked["fallback"]
            say(f"warning: {picked['fallback']}", file=sys.stderr)
    if lr_min > lr_max:
        raise UsageError(f"LR_MIN {lr_min:g} exceeds LR_MAX {lr_max:g}; lower --lr-min")
    if sweep is not None:
        say(
            f"LR_MAX {lr_max:.4g} ({info.get('rule', 'given')}), "
            f"LR_MIN {lr_min:.4g} ({info.get('lr_min_rule', 'given')})"
        )
    return lr_min, lr_max, info


# --- the loop ----------------------------------------------------------------------


def steps_in_flight() -> int:
    """How many dispatched steps may wait unfinished: JAX runs ahead of the device asynchronously.

    One on a CPU, where a full-size step takes seconds and a queue of them would
    delay Ctrl-C by minutes (343 s measured with an unbounded queue); eight on an
    accelerator, whose steps take milliseconds and must not wait for the host.
    """
    return 1 if jax.default_backend() == "cpu" else 8


@dataclasses.dataclass
class EpochResult:
    state: TrainState
    metrics: list[dict]  # host metrics of every step run
    seconds: float
    completed: bool  # False: a stop was requested, or a loss went non-finite


def run_epoch(
    steps: Steps,
    state: TrainState,
    batches,
    stop: StopRequest,
    progress: Progress,
    estimate_steps: int | None = None,
) -> EpochResult:
    """Trains on the batches of (part of) an epoch, at most `steps_in_flight()` steps ahead.

    With `estimate_steps`, prints how long that many steps will take once 5 have finished.
    """
    pending: list[dict] = []
    t0 = time.perf_counter()
    ahead = steps_in_flight()
    completed = True
    try:
        for batch in batches:
            if stop.requested:
                completed = False
                break
            state, metrics = steps.train(state, parallel.put_batch(batch, steps.mesh))
            pending.append(metrics)
            done = len(pending)
            if done > ahead:
                jax.block_until_ready(pending[done - 1 - ahead])
            finished = done - ahead
            if finished == 5 and estimate_steps is not None:
                announce_estimate(time.perf_counter() - t0, finished, estimate_steps)
            if done % 10 == 0 and finished > 0:
                seen = parallel.to_host(pending[finished - 1])
                if not math.isfinite(float(seen["loss"])):
                    completed = False
                    break
                rate = done * steps.batch_size / (time.perf_counter() - t0)
                progress.update(
                    1,
                    loss=f"{float(seen['loss']):.3f}",
                    acc=f"{100 * float(seen['accuracy']):.1f}%",
                    img_s=f"{rate:,.0f}",
                )
            else:
                progress.update(1)
    finally:
        batches.close()
        progress.close()
    fetched = parallel.to_host(pending)  # one transfer for the epoch
    return EpochResult(state, fetched, time.perf_counter() - t0, completed)


def announce_estimate(elapsed: float, finished: int, remaining_steps: int) -> None:
    """Prints the time the rest of the run will take, when that is more than ten minutes."""
    per_step = elapsed / finished
    total = per_step * remaining_steps
    if total > 600:
        say(
            f"One step takes {per_step:.2f} s here: the {remaining_steps} remaining steps will take about "
            f"{total / 3600:.1f} h. For a first try, use --quick (minutes), or run on a GPU.",
            file=sys.stderr,
            flush=True,
        )


def check_finite(metrics: Sequence[dict], epoch: int, first_batch: int, steps_per_epoch: int) -> None:
    """Raises Diverged naming the first step of `metrics` (from `first_batch` of `epoch`) with a non-finite loss."""
    loss = np.asarray([m["loss"] for m in metrics], dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(loss))
    if len(bad):
        i = int(bad[0])
        batch = first_batch + i
        raise Diverged(
            f"the loss became {loss[i]} at step {epoch * steps_per_epoch + batch} (epoch {epoch + 1}, batch {batch}) "
            f"with learning rate {float(metrics[i]['lr']):.4g}"
        )


# --- the driver --------------------------------------------------------------------


def train_and_evaluate(config: TrainConfig, ds: CIFAR10 | None = None) -> dict:
    """Trains and evaluates as `config` says; returns the summary (also in summary.json).

    Args:
      config: the run's settings.
      ds: the data, if already loaded (else loaded as config.data says).

    Raises:
      FileExistsError: `config.out` holds another run and resume is off.
      FileNotFoundError, UsageError: a missing or bad input, found before the run folder is made.
    """
    config = dataclasses.replace(config, out=config.out or str(default_out()))
    if config.resume:
        config = resumed_config(config)
    check_inputs(config)
    out = Path(config.out)
    main_process = jax.process_index() == 0
    if config.resume:
        with Checkpoints(out, read_only=True) as ckpt:
            meta = ckpt.meta()
        position = Position(meta["epoch"], meta["batch"], meta["step"])
        if position.epoch >= config.epochs:
            say(f"{out} is complete ({position.epoch} of {config.epochs} epochs); nothing to resume, nothing changed.")
            return records.read_json(out / "summary.json")
    if ds is None:
        say(f"Loading CIFAR-10 ({resolve_source(config.data)}) ...", flush=True)
        ds = load_data(config)
    elif config.n_train or config.n_test:
        ds = subset(ds, config.n_train, config.n_test, seed=config.seed)
    mesh = parallel.make_mesh(config.devices)
    parallel.check_batch_size(config.batch_size, mesh)
    if main_process:
        out.mkdir(parents=True, exist_ok=True)
    train_loader = make_train_loader(config, ds, rows=parallel.process_slice(config.batch_size))
    steps_per_epoch = len(train_loader)

    lr_min, lr_max, lr_info = resolve_lr(config, ds, out, mesh)
    if config.resume:  # the saved config holds the numbers; keep the record of where they came from
        lr_info = records.read_json(out / "config.json").get("lr", lr_info)
    config = dataclasses.replace(config, lr_min=lr_min, lr_max=lr_max, data=resolve_source(config.data))
    schedule = one_cycle(lr_min, lr_max, steps_per_epoch, config.epochs, config.peak)
    state = steps_lib.initial_state(config, schedule)
    env = records.provenance()
    if main_process and not config.resume:
        records.write_json(
            out / "config.json", {"config": config.to_json(), "lr": lr_info, "data_source": ds.source, **env}
        )

    with Checkpoints(out) as ckpt:
        if config.resume:
            state, meta = ckpt.restore(abstract_state(state, mesh))
            position = Position(meta["epoch"], meta["batch"], meta["step"])
            carried = float(meta.get("epoch_seconds", 0.0)) if position.batch else 0.0
            log = RunLog.read(out / "metrics.json", position, config.tta)
            say(f"Resuming {out} at epoch {position.epoch + 1}, batch {position.batch} (step {position.step}).")
        else:
            state = parallel.put_replicated(state, mesh)
            position = Position(0, 0, 0)
            log = RunLog(steps_per_epoch, config.tta)
            carried = 0.0
            ckpt.save(state, position)  # a last good checkpoint exists from the start
        summary = _train(config, ds, mesh, schedule, state, ckpt, log, position, carried, out)
    summary = {**summary, "lr": lr_info, "data_source": ds.source, **env}
    if main_process:
        records.write_json(out / "summary.json", summary)
        if log.epochs_done:
            tag = plots.run_tag(
                config.width, len(ds.train_labels), config.batch_size, env["device_kind"], config.epochs
            )
            plots.run_figures(out, log.history, log.steps["lr"], steps_per_epoch, tag)
        if summary["status"] == "completed" and config.gradcam:
            # A seeded random 25 rather than the first 25: image-folder test sets
            # are sorted by class, and the first 25 mistakes would all be airplanes.
            gradcam.run_on(out, ds, seed=config.seed)
    if summary["status"] == "completed":
        say(
            f"Done: final test accuracy {100 * summary['final_test_accuracy']:.2f}%, best "
            f"{100 * summary['best_test_accuracy']:.2f}% (epoch {summary['best_epoch']}); results in {out}"
        )
    else:
        say(summary["message"], file=sys.stderr)
    return summary


def _train(config, ds, mesh, schedule, state, ckpt: Checkpoints, log: RunLog, position: Position, carried: float,
           out: Path) -> dict:  # fmt: skip
    """The epoch loop from `position`; returns the summary without provenance.

    `carried`: seconds spent on `position`'s epoch by earlier sessions of the run.
    """
    main_process = jax.process_index() == 0
    steps_per_epoch = log.steps_per_epoch
    train_loader = make_train_loader(config, ds, rows=parallel.process_slice(config.batch_size))
    test_loader = BatchLoader(ds.test_images, ds.test_labels, config.batch_size, train=False)
    steps = steps_lib.compile_run_steps(config, state, mesh, schedule)
    test_batches = steps_lib.device_eval_batches(test_loader.epoch(0), config.batch_size, mesh)
    conv = kernels.conv_algorithm(config.conv, config.width)
    batch_norm = kernels.batch_norm_kind(config.batch_norm, config.width)
    say(
        f"{ds.source}: {len(ds.train_labels):,} train / {len(ds.test_labels):,} test images; "
        f"ResNet-9 width {config.width}, {np.dtype(steps_lib.compute_dtype(config.dtype)).name}, "
        f"{kernels.CONV_NAMES[conv]} convolutions, {kernels.BATCH_NORM_NAMES[batch_norm]} BatchNorm sums; "
        f"{jax.devices()[0].device_kind} x{mesh.devices.size}; "
        f"LR {config.lr_min:.4g} -> {config.lr_max:.4g} at epoch {config.peak:.3g} -> {config.lr_min:.4g}; "
        f"{config.epochs} epochs of {steps_per_epoch} steps; compiled in {steps.compile_seconds:.1f} s; "
        f"writing to {out}",
        flush=True,
    )

    def save(epoch: int, batch: int, test_accuracy: float | None = None, epoch_seconds: float = 0.0) -> None:
        if main_process:
            log.write(out / "metrics.json")  # before the checkpoint: resume cuts it back to the checkpoint
        position_ = Position(epoch, batch, epoch * steps_per_epoch + batch)
        ckpt.save(state, position_, test_accuracy, epoch_seconds=epoch_seconds)

    status, message = "completed", ""
    with StopRequest() as stop:
        try:
            for epoch in range(position.epoch, config.epochs):
                first = position.batch if epoch == position.epoch else 0
                estimate = config.epochs * steps_per_epoch - position.step if epoch == position.epoch else None
                progress = Progress(config.progress, steps_per_epoch, f"epoch {epoch + 1}/{config.epochs}", first)
                result = run_epoch(steps, state, train_loader.epoch(epoch, start=first), stop, progress, estimate)
                state = result.state
                seconds = result.seconds + (carried if epoch == position.epoch else 0.0)
                log.add_steps(result.metrics)
                check_finite(result.metrics, epoch, first, steps_per_epoch)
                if not result.completed:  # a stop was requested
                    batch = first + len(result.metrics)
                    save(epoch, batch, epoch_seconds=seconds)
                    status = "interrupted"
                    message = (
                        f"Stopped at epoch {epoch + 1}, batch {batch}; checkpoint saved. Continue with: "
                        f"python -m jaxcifar.train --out {out} --resume"
                    )
                    break
                t1 = time.perf_counter()
                test = steps_lib.evaluate(steps, state, test_batches)
                rate = len(result.metrics) * config.batch_size / result.seconds  # this session's speed
                row = log.end_epoch(epoch, test, seconds, time.perf_counter() - t1, rate)
                say(epoch_line(epoch, config.epochs, row, len(result.metrics), steps_per_epoch), flush=True)
                last = epoch + 1 == config.epochs
                if last or (config.checkpoint_every and (epoch + 1) % config.checkpoint_every == 0):
                    save(epoch + 1, 0, test["accuracy"])
                elif main_process:
                    log.write(out / "metrics.json")
        except Diverged as e:
            status = "diverged"
            message = (
                f"Training diverged: {e}. The last good checkpoint is kept in {ckpt.directory}. "
                "Lower --lr-max (or run the LR range test with --lr-max auto)."
            )
            if main_process:
                log.write(out / "metrics.json")
        except KeyboardInterrupt:
            status = "interrupted"
            message = f"Interrupted; the last checkpoint is in {ckpt.directory} (resume with --resume)."
    extra = {"compile_seconds": steps.compile_seconds, "conv": conv, "batch_norm": batch_norm}
    if status == "interrupted":
        extra["stopped_by"] = stop.signal or "SIGINT"  # None: Python's own Ctrl-C, outside the main thread
    return log.summary(config, status, message, extra)


@entry_point
def main(argv: Sequence[str] | None = None) -> dict:
    """`python -m jaxcifar.train`: parse flags, train.

    Exits 1 when the run fails, 2 on bad input, 130 on Ctrl-C, 143 on SIGTERM.
    """
    startup.set_cpu_flags()  # where main is called from Python: the command line has set them
    parser = config_lib.parser(PROG, DESCRIPTION)
    args = parser.parse_args(argv)
    config = config_lib.from_args(args, parser)
    if config.distributed:
        parallel.initialize_distributed(config.coordinator, config.num_processes, config.process_id)
    steps_lib.enable_compilation_cache(config)
    if config.resume:
        config = resumed_config(config, config_lib.given_settings(args))
    summary = train_and_evaluate(config)
    if summary["status"] == "diverged":
        raise SystemExit(EXIT_FAILED)
    if summary["status"] == "interrupted":
        raise SystemExit(stop_status(summary["stopped_by"]))
    return summary


if __name__ == "__main__":
    main()
