"""Train ResNet-9 on CIFAR-10 with the one-cycle recipe and evaluate after every epoch.

    python -m jaxcifar.train --lr-max auto            # the full recipe (24 epochs)
    python -m jaxcifar.train --quick --data synthetic # a first try: minutes on a CPU

This module is the driver only: the run folder, the learning rates (an LR range
test when `lr_max` is None), the epoch loop, Ctrl-C and SIGTERM, and `main`. The steps are
`jaxcifar.steps`', the batches `jaxcifar.loader`'s, the checkpoints
`jaxcifar.checkpoint`'s, and `jaxcifar.runlog`'s RunLog keeps what the run records; the
LR pair is `jaxcifar.lr_range.resolve`'s. The settings are settled once (`settle`).

Run folder (`--out`, default runs/<timestamp>):
  config.json     the settings (LRs and data source as used), with command, versions and hardware
  metrics.json    per epoch: train/test loss and accuracy, LR, seconds; per step: LR, loss, accuracy
  metrics.csv     metrics.json's per-epoch table, a row per epoch (spreadsheets, pandas)
  summary.json    final and best accuracies, times, images/s, status
  checkpoints/    orbax checkpoints: the latest (resumable) and the best by test accuracy
  accuracy.png, loss_accuracy.png, one_cycle.png (the LR actually used, per step): redrawn while the run
                  trains (after an epoch, at most every 30 s) and at its end
  lr_range.json, lr_range.png       the LR range test that chose LR_MAX (run or reused)
  gradcam_misclassified.png, misclassified.png   Grad-CAM of 25 misclassified test images
  .lock           the lock a run holds on its folder while it runs (the last one's process ID)

Exit status: 0 done, 1 failed during the run (diverged, data unreadable), 2 bad
usage or input (nothing was started), 130 stopped by Ctrl-C, 143 stopped by SIGTERM
(both saved a checkpoint: resumable).
"""

from __future__ import annotations

import sys

from jaxcifar import config as config_lib
from jaxcifar import flags, startup

PROG = "python -m jaxcifar.train"
DESCRIPTION = (
    "Train ResNet-9 on CIFAR-10 with the one-cycle recipe (LR range test first with --lr-max auto), "
    "evaluating after every epoch."
)

if __name__ == "__main__":  # the command line, before JAX loads: --help at once, XLA's CPU flags, huge pages
    startup.prepare("jaxcifar.train", sys.argv[1:], lambda: flags.parser(PROG, DESCRIPTION))

import contextlib
import dataclasses
import math
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxcifar import data as data_lib
from jaxcifar import gradcam, kernels, lr_range, parallel, plots, records, runlog
from jaxcifar import steps as steps_lib
from jaxcifar.checkpoint import Checkpoints, abstract_state
from jaxcifar.config import TrainConfig
from jaxcifar.console import Progress, StopRequest, say
from jaxcifar.data import CIFAR10, resolve_source, subset
from jaxcifar.errors import EXIT_FAILED, UsageError, entry_point, stop_status
from jaxcifar.loader import BatchLoader, load_data, make_train_loader
from jaxcifar.runlog import Position, RunLog, epoch_line
from jaxcifar.schedule import Schedule, one_cycle
from jaxcifar.steps import Steps, TrainState


class Diverged(RuntimeError):
    """The loss became NaN or infinite."""


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
        if jax.process_index() == 0 and not records.holds_only_the_lock(out):
            raise FileExistsError(
                f"{out} already exists and is not empty; nothing is overwritten. Pass --resume to continue "
                "the run in it, or choose another --out."
            )
        if config.lr_range_json:
            lr_range.load(config.lr_range_json, config.lr_range_partial)  # raises, naming the file and the flag
    if config.tensorboard:
        runlog.check_tensorboard()


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


def settle(config: TrainConfig, given: Iterable[str] | None = None) -> TrainConfig:
    """The run's settings, settled once: its folder (default runs/<timestamp>), a resumed run's
    own settings (`resumed_config`, with `given` the flags on the command line), and the
    kernels `kernels` picks for this platform and width, by name."""
    config = dataclasses.replace(config, out=config.out or str(default_out()))
    if config.resume:
        config = resumed_config(config, given)
    return dataclasses.replace(
        config,
        conv=kernels.conv_algorithm(config.conv, config.width),
        batch_norm=kernels.batch_norm_kind(config.batch_norm, config.width),
    )


FIGURES_EVERY_S = 30.0  # while a run trains, its figures are redrawn after an epoch at most this often


def draw_figures(out: Path, log: RunLog, tag: str) -> None:
    """accuracy.png, loss_accuracy.png and one_cycle.png of the epochs done (each written atomically)."""
    plots.run_figures(out, log.history, log.steps["lr"], log.steps_per_epoch, tag)


class RunResult(dict):
    """What `train_and_evaluate` returns: the run's summary (summary.json's fields) with the trained state.

    `result["final_test_accuracy"]` and the other fields as in summary.json; `result.state`
    is the TrainState after the last step trained (None for a run found complete, which
    trained nothing: `jaxcifar.load_run` reads its network), and `result.variables` its
    {"params", "batch_stats"}, which `model.apply` and `jaxcifar.predict.predict` take.
    """

    def __init__(self, summary: dict, state: TrainState | None) -> None:
        super().__init__(summary)
        self.state = state

    @property
    def variables(self) -> dict | None:
        return None if self.state is None else {"params": self.state.params, "batch_stats": self.state.batch_stats}


def train_and_evaluate(config: TrainConfig, ds: CIFAR10 | None = None, given: Iterable[str] | None = None) -> RunResult:
    """Trains and evaluates as `config` says; returns the summary (also in summary.json) with the trained
    state (`RunResult`: `result["final_test_accuracy"]`, `result.state`, `result.variables`).

    Args:
      config: the run's settings.
      ds: the data, if already loaded (else loaded as config.data says).
      given: with `config.resume`, the settings given on the command line (see `resumed_config`).

    Raises:
      FileExistsError: `config.out` holds another run and resume is off.
      FileNotFoundError, UsageError: a missing or bad input, found before the run folder is made.
    """
    config = settle(config, given)
    out = Path(config.out)
    main_process = jax.process_index() == 0
    # Only process 0 writes, so it alone locks the folder; the inputs are checked under the lock, where
    # no other run can start writing meanwhile (a folder made for a run that then fails is removed).
    with records.folder_lock(out) if main_process else contextlib.nullcontext():
        check_inputs(config)
        restart = False  # a resumed run with no finished checkpoint starts again from its first step
        saved = records.read_json(out / "config.json") if config.resume else {}
        if config.resume:
            with Checkpoints(out, read_only=True) as ckpt:
                damaged = {step for step, _ in ckpt.damaged()}
                intact = [step for step in sorted(ckpt.steps(), reverse=True) if step not in damaged]
                done = ckpt.meta(intact[0])["epoch"] if intact else None
            restart = done is None
            if restart:
                why = (
                    "every checkpoint is damaged"
                    if damaged
                    else ("a run stopped before its first was written, or a save was cut short")
                )
                say(
                    f"{out} has no intact finished checkpoint ({why}): starting it again from its first step, "
                    "which its seed makes the same."
                )
            elif done >= config.epochs and (out / "summary.json").exists():
                say(f"{out} is complete ({done} of {config.epochs} epochs); nothing to resume, nothing changed.")
                return RunResult(records.read_json(out / "summary.json"), None)
            elif done >= config.epochs:  # stopped after its last checkpoint, before the summary was written
                left = "its summary, figures and Grad-CAM" if config.gradcam else "its summary and figures"
                say(f"{out} trained its {done} epochs but stopped before writing {left}: writing them now.")
        if ds is None:
            say(f"Loading CIFAR-10 ({resolve_source(config.data)}) ...", flush=True)
            try:
                ds = load_data(config)
            except FileNotFoundError as e:
                if not config.resume:
                    raise
                raise FileNotFoundError(
                    f"--resume: the run's data is not there ({e}). If it moved, pass --data NEW_PATH: a copy with "
                    "the same images is accepted (the run checks their fingerprint)."
                ) from None
        elif config.n_train or config.n_test:
            ds = subset(ds, config.n_train, config.n_test, seed=config.seed)
        fingerprint = ds.fingerprint()
        if config.resume:
            check_same_data(out, saved["data"], fingerprint)
        mesh = parallel.make_mesh(config.devices)
        parallel.check_batch_size(config.batch_size, mesh)
        if main_process:
            out.mkdir(parents=True, exist_ok=True)
        train_loader = make_train_loader(config, ds, rows=parallel.process_slice(config.batch_size))
        steps_per_epoch = len(train_loader)

        lr_min, lr_max, lr_info = lr_range.resolve(config, ds, out, mesh)
        if config.resume:  # the saved config holds the numbers; keep the record of where they came from
            lr_info = saved.get("lr", lr_info)
        config = dataclasses.replace(config, lr_min=lr_min, lr_max=lr_max, data=resolve_source(config.data))
        schedule = one_cycle(lr_min, lr_max, steps_per_epoch, config.epochs, config.peak)
        state = steps_lib.initial_state(config, schedule)
        env = records.provenance()
        if main_process and not config.resume:
            records.write_json(
                out / "config.json",
                {"config": config.to_json(), "lr": lr_info, "data_source": ds.source, "data": fingerprint, **env},
            )

        with Checkpoints(out) as ckpt:
            if config.resume and main_process:
                for line in ckpt.set_aside_damaged():  # moved, not deleted: the newest intact one is resumed
                    say(line)
            if config.resume and not restart:
                state, meta = ckpt.restore(abstract_state(state, mesh))
                position = Position(meta["epoch"], meta["batch"], meta["step"])
                carried = float(meta.get("epoch_seconds", 0.0)) if position.batch else 0.0
                log = _read_log(out, position, steps_per_epoch, config.tta)
                if position.epoch < config.epochs:
                    say(f"Resuming {out} at epoch {position.epoch + 1}, batch {position.batch} (step {position.step}).")
            else:
                state = parallel.put_replicated(state, mesh)
                position = Position(0, 0, 0)
                log = RunLog(steps_per_epoch, config.tta)
                carried = 0.0
                if main_process:  # the log a resume starts with, written first as before every checkpoint: a
                    log.write(out / "metrics.json")  # save that fails (a full disk) leaves the run's record whole
                ckpt.save(state, position)  # a last good checkpoint exists from the start
            tag = plots.run_tag(
                config.width, len(ds.train_labels), config.batch_size, env["device_kind"], config.epochs
            )
            run = Run(config, ds, out, mesh, schedule, train_loader, ckpt, log, tag)
            trained = _train(run, state, position, carried)
        summary = {**trained, "lr": lr_info, "data_source": ds.source, **env}
        if main_process:
            records.write_json(out / "summary.json", summary)
            if log.epochs_done:
                draw_figures(out, log, run.tag)
            if summary["status"] == "completed" and config.gradcam:
                # A seeded random 25 rather than the first 25: image-folder test sets
                # are sorted by class, and the first 25 mistakes would all be airplanes.
                gradcam.run_on(out, ds, seed=config.seed)
        if summary["status"] == "completed":
            say(
                f"Done: final test accuracy {100 * summary['final_test_accuracy']:.2f}%, best "
                f"{100 * summary['best_test_accuracy']:.2f}% (epoch {summary['best_epoch']}) on "
                f"{len(ds.test_labels):,} test images"
                + (" (a --quick run: a smoke test, not a result)" if config.quick else "")
                + f"; results in {out}"
            )
        else:
            say(summary["message"], file=sys.stderr)
        return RunResult(summary, trained.state)


def check_same_data(out: Path, saved: dict, fingerprint: dict) -> None:
    """Raises UsageError if the run in `out` recorded (`saved`, its config.json's "data") other data than
    `fingerprint`."""
    if saved["sha256"] == fingerprint["sha256"]:
        return

    def name(f: dict) -> str:
        counts = f"{f['train']:,} train / {f['test']:,} test images"
        return f"{f['source'] or 'arrays given'} ({counts}, sha256 {f['sha256'][:12]})"

    raise UsageError(
        f"--resume: {out} was trained on {name(saved)}, but the data now is {name(fingerprint)}: other images. "
        "Pass the run's own data with --data, or start a new run with another --out."
    )


def _read_log(out: Path, position: Position, steps_per_epoch: int, tta: bool) -> RunLog:
    """The run's metrics.json at `position`; at the very start, where a run stopped while compiling may have
    written none, an empty log."""
    path = out / "metrics.json"
    if not path.exists() and position.step == 0:
        return RunLog(steps_per_epoch, tta)
    if not path.exists():
        raise FileNotFoundError(
            f"--resume: {path} is missing, so {out} cannot continue with its record; start a new run with another --out"
        )
    try:
        return RunLog.read(path, position, tta)
    except UsageError as e:
        raise UsageError(
            f"--resume: {e}; {out} cannot continue with its record: start a new run with another --out"
        ) from None


@dataclasses.dataclass(frozen=True)
class Run:
    """What the epoch loop works with, settled before it starts."""

    config: TrainConfig  # settled: resume resolved, LRs found, kernels named
    ds: CIFAR10
    out: Path
    mesh: Any
    schedule: Schedule
    train_loader: BatchLoader
    ckpt: Checkpoints
    log: RunLog
    tag: str  # the figures' line: width, images, batch, device, epochs


def _train(run: Run, state: TrainState, position: Position, carried: float) -> RunResult:
    """The epoch loop from `position`; returns the summary without provenance.

    `carried`: seconds spent on `position`'s epoch by earlier sessions of the run.
    """
    config, ds, out, mesh, ckpt, log = run.config, run.ds, run.out, run.mesh, run.ckpt, run.log
    main_process = jax.process_index() == 0
    steps_per_epoch = log.steps_per_epoch
    test_loader = BatchLoader(ds.test_images, ds.test_labels, config.batch_size, train=False)
    steps = steps_lib.compile_run_steps(config, state, mesh, run.schedule)
    test_batches = steps_lib.device_eval_batches(test_loader.epoch(0), config.batch_size, mesh)
    say(
        f"{ds.source}: {len(ds.train_labels):,} train / {len(ds.test_labels):,} test images; "
        f"ResNet-9 width {config.width}, {np.dtype(steps_lib.compute_dtype(config.dtype)).name}, "
        f"{kernels.CONV_NAMES[config.conv]} convolutions, {kernels.BATCH_NORM_NAMES[config.batch_norm]} BatchNorm "
        f"sums; {jax.devices()[0].device_kind} x{mesh.devices.size}; "
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

    board = runlog.TensorBoard(out / runlog.TENSORBOARD) if config.tensorboard and main_process else None
    status, message = "completed", ""
    drawn = time.perf_counter()  # when the figures were last drawn: none in the first FIGURES_EVERY_S
    with StopRequest() as stop:
        try:
            for epoch in range(position.epoch, config.epochs):
                first = position.batch if epoch == position.epoch else 0
                estimate = config.epochs * steps_per_epoch - position.step if epoch == position.epoch else None
                progress = Progress(config.progress, steps_per_epoch, f"epoch {epoch + 1}/{config.epochs}", first)
                result = run_epoch(steps, state, run.train_loader.epoch(epoch, start=first), stop, progress, estimate)
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
                if board is not None:
                    board.epoch(log, epoch)
                last = epoch + 1 == config.epochs
                if last or (config.checkpoint_every and (epoch + 1) % config.checkpoint_every == 0):
                    save(epoch + 1, 0, test["accuracy"])
                elif main_process:
                    log.write(out / "metrics.json")
                # A long run can be watched: its figures after an epoch, at most every FIGURES_EVERY_S (a
                # redraw takes about a second: every epoch would slow a GPU run's 24 epochs noticeably).
                if main_process and not last and time.perf_counter() - drawn >= FIGURES_EVERY_S:
                    draw_figures(out, log, run.tag)
                    drawn = time.perf_counter()
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
    if board is not None:
        board.close()
    extra = {"compile_seconds": steps.compile_seconds, "conv": config.conv, "batch_norm": config.batch_norm}
    if status == "interrupted":
        extra["stopped_by"] = stop.signal or "SIGINT"  # None: Python's own Ctrl-C, outside the main thread
    return RunResult(log.summary(config, status, message, extra), state)


@entry_point
def main(argv: Sequence[str] | None = None) -> dict:
    """`python -m jaxcifar.train`: parse flags, train.

    Exits 1 when the run fails, 2 on bad input, 130 on Ctrl-C, 143 on SIGTERM.
    """
    startup.set_cpu_flags()  # where main is called from Python: the command line has set them
    parser = flags.parser(PROG, DESCRIPTION)
    args = parser.parse_args(argv)
    config = flags.from_args(args, parser)
    if config.distributed:
        parallel.initialize_distributed(config.coordinator, config.num_processes, config.process_id)
    parallel.enable_compilation_cache(data_lib.compile_cache_folder(config.cache_dir))
    summary = train_and_evaluate(config, given=flags.given_settings(args))
    if summary["status"] == "diverged":
        raise SystemExit(EXIT_FAILED)
    if summary["status"] == "interrupted":
        raise SystemExit(stop_status(summary["stopped_by"]))
    return summary


if __name__ == "__main__":
    main()
