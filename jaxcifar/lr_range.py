"""The LR range test: sweep the learning rate up, watch loss and accuracy, pick LR_MAX and LR_MIN.

    python -m jaxcifar.lr_range --data PATH --out runs/lr-range     # the original's sweep
    python -m jaxcifar.train --lr-max auto                          # sweep, then train

The recipe's LR_MIN and LR_MAX were "FIND": the PyTorch original ran
torch-lr-finder with SGD (momentum 0.9, weight decay 5e-3), LR from 1e-4 to 0.1
exponentially over 980 iterations of augmented batches of 512, took LR_MAX at the
best training accuracy (0.0444) and LR_MIN = LR_MAX / 10. This module does the
same with the training run's own jitted step, model, optimizer and augmentation,
on a freshly initialised model whose weights are thrown away afterwards.

Smoothing (fastai's and torch-lr-finder's exponential moving average, with
fastai's bias correction): with factor a (0.05),
    m_0 = 0,  m_i = (1 - a) * m_{i-1} + a * x_i,  smoothed_i = m_i / (1 - (1 - a)^(i+1)),
so the first smoothed value is x_0 itself rather than a * x_0.

The sweep stops early when the smoothed loss exceeds `diverge_factor` (4) times
its lowest value so far, or a loss is NaN/inf. Ctrl-C or SIGTERM stops it after
the step under way: what it swept is written, then `Stopped` is raised (exit
status 130 or 143), so no training starts from a partial sweep.

Rules for LR_MAX (`--lr-range-rule`), over the records without the first 10 and
last 5 iterations (torch-lr-finder's skip_start/skip_end), where they are noisy:
  accuracy      the LR of the highest smoothed batch accuracy (the default until issue 46).
  accuracy-raw  the LR of the highest single-batch (unsmoothed) accuracy over the
                whole sweep: exactly the PyTorch original's pick (0.0444, iteration
                864 of 980, in its modified torch-lr-finder).
  steepest      the LR where the smoothed loss falls fastest against log(LR)
                (torch-lr-finder's and fastai's "steep" suggestion).
  min-loss      the LR of the lowest smoothed loss, divided by 10 (fastai's "minimum").
  valley        fastai's default suggestion (fastai.callback.schedule.valley, fastai
                2.5): the longest run of falling smoothed losses (the longest strictly
                decreasing subsequence of the curve, start to end), and the LR half way
                into it (index start + int(d / 3) + int(d / 6) for a valley d long).
  plateau       (the default) the geometric middle of the accuracy plateau: the LRs whose smoothed
                accuracy is at least PLATEAU_FRACTION (0.95) of its peak. On a flat top
                the highest point is decided by the noise of single batches (the full
                CPU sweep: 0.0087 to 0.097, a factor of 11, within 5% of the peak); the
                middle keeps away from both edges: the lower, where the accuracy has
                only just risen, and the upper, where training begins to fall apart
                (or the sweep ends, as on that sweep).

Rules for LR_MIN (`--lr-min-rule`, when --lr-min is auto):
  div           LR_MAX / `--lr-div` (10): the original's OneCycleLR div_factor, and
                Leslie Smith's advice for a single cycle (a 10th to a 20th of the maximum).
  rise          Smith's lower bound (Cyclical Learning Rates, 2017): the LR "when the
                accuracy starts to increase", made robust: the first LR at which the
                smoothed accuracy has risen by `--lr-min-fraction` (0.1) of its rise from
                the start of the sweep to LR_MAX.
  min-loss      the LR of the lowest smoothed loss, divided by 10.
A LR_MIN rule that cannot decide (an accuracy that hardly rises, a bound at or above
LR_MAX) says why, and LR_MIN falls back to `div` with a warning.
"""

from __future__ import annotations

import sys

from jaxcifar import flags, startup

PROG = "python -m jaxcifar.lr_range"
DESCRIPTION = "Sweep the learning rate up on a fresh model, record loss and accuracy, and suggest LR_MAX and LR_MIN."

if __name__ == "__main__":  # the command line, before JAX loads: --help at once, XLA's CPU flags, huge pages
    startup.prepare("jaxcifar.lr_range", sys.argv[1:], lambda: flags.parser(PROG, DESCRIPTION, lr_range_only=True))

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxcifar import data as data_lib
from jaxcifar import parallel, plots, records
from jaxcifar import steps as steps_lib
from jaxcifar.config import TrainConfig
from jaxcifar.console import Progress, StopRequest, say
from jaxcifar.data import CIFAR10
from jaxcifar.errors import Stopped, UsageError, entry_point
from jaxcifar.loader import load_data, make_train_loader

SKIP_START, SKIP_END = 10, 5
# Host reads of the loss, for the divergence check, lag the device by a few
# steps and happen every CHECK_EVERY steps, so the device never waits.
CHECK_EVERY = 16


def sweep_schedule(start: float, end: float, num_iter: int, mode: str = "exp"):
    """step -> the sweep's LR at that step, from `start` (step 0) to `end` (step num_iter - 1).

    exp: start * (end / start) ** (i / (num_iter - 1)), a constant ratio per step.
    linear: start + (end - start) * i / (num_iter - 1).
    One definition for the jitted step (a traced step) and the record (NumPy steps).
    """
    if not 0 < start < end:
        raise ValueError(f"the sweep needs 0 < lr-range-start < lr-range-end, got start={start}, end={end}")
    if num_iter < 2:
        raise ValueError(f"the sweep needs lr-range-iters >= 2, got {num_iter}")
    if mode == "exp":
        return lambda step: start * (end / start) ** (step / (num_iter - 1))
    if mode == "linear":
        return lambda step: start + (end - start) * step / (num_iter - 1)
    raise ValueError(f"mode must be 'exp' or 'linear', got {mode!r}")


def lr_sequence(start: float, end: float, num_iter: int, mode: str = "exp") -> np.ndarray:
    """float64[num_iter]: the sweep's LRs, `sweep_schedule` at steps 0..num_iter-1."""
    return np.asarray(sweep_schedule(start, end, num_iter, mode)(np.arange(num_iter, dtype=np.float64)))


def smooth(values: Sequence[float], factor: float = 0.05) -> np.ndarray:
    """Bias-corrected exponential moving average (see the module docstring)."""
    if not 0 < factor <= 1:
        raise ValueError(f"smoothing factor must be in (0, 1], got {factor}")
    out = np.empty(len(values))
    m = 0.0
    for i, x in enumerate(values):
        m = (1 - factor) * m + factor * x
        out[i] = m / (1 - (1 - factor) ** (i + 1))
    return out


def divergence(smoothed_loss: np.ndarray, factor: float) -> int | None:
    """Index of the first iteration whose smoothed loss exceeds `factor` x its best so far."""
    best = np.minimum.accumulate(smoothed_loss)
    bad = np.flatnonzero((smoothed_loss > factor * best) | ~np.isfinite(smoothed_loss))
    return int(bad[0]) if len(bad) else None


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A sweep's records: float64[iterations] each, the LR planned for the step and what it measured."""

    lr: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray  # of each training batch, augmented
    smoothed_loss: np.ndarray
    smoothed_accuracy: np.ndarray

    FIELDS = ("lr", "loss", "accuracy", "smoothed_loss", "smoothed_accuracy")

    @classmethod
    def of(cls, records: Mapping[str, Sequence[float]] | Sweep) -> Sweep:
        """The sweep of lr_range.json's "records" (lists), or of arrays under the same names."""
        if isinstance(records, Sweep):
            return records
        return cls(**{k: np.asarray(records[k], dtype=np.float64) for k in cls.FIELDS})

    @classmethod
    def measured(cls, lr: np.ndarray, loss: np.ndarray, accuracy: np.ndarray, smoothing: float) -> Sweep:
        return cls(lr, loss, accuracy, smooth(loss, smoothing), smooth(accuracy, smoothing))

    def to_json(self) -> dict[str, list[float]]:
        return {k: getattr(self, k).tolist() for k in self.FIELDS}

    def __len__(self) -> int:
        return len(self.lr)

    def read(self) -> Sweep:
        """The iterations the rules read: without the noisy first and last ones, when enough remain."""
        w = _window(len(self))
        return Sweep(*(getattr(self, k)[w] for k in self.FIELDS))

    def until(self, iterations: int) -> Sweep:
        return Sweep(*(getattr(self, k)[:iterations] for k in self.FIELDS))


# The smallest rise of the smoothed batch accuracy (absolute) that `rise` reads as a rise.
MIN_RISE = 0.05


def _window(n: int) -> slice:
    """The iterations the rules read: without the noisy first and last ones, when enough remain."""
    return slice(SKIP_START, n - SKIP_END) if not too_short(n) else slice(0, n)


def too_short(n: int) -> str | None:
    """Why a sweep of `n` iterations is too short for the rules' trimming (they then read all of it), or None."""
    if n - SKIP_START - SKIP_END >= 3:
        return None
    return f"{n} iterations, too few for the rules to drop the first {SKIP_START} and last {SKIP_END}"


# The share of its peak that the smoothed accuracy keeps on the `plateau` rule's plateau.
PLATEAU_FRACTION = 0.95


def accuracy_plateau(sweep: Sweep | Mapping, fraction: float = PLATEAU_FRACTION) -> tuple[float, float, float]:
    """(lowest LR, highest LR, peak) where the smoothed accuracy is at least `fraction` of its
    peak, over the iterations the rules read: the stretch of LRs among which the peak is noise."""
    read = Sweep.of(sweep).read()
    peak = float(np.nanmax(read.smoothed_accuracy))
    on = np.flatnonzero(read.smoothed_accuracy >= fraction * peak)
    return float(read.lr[on[0]]), float(read.lr[on[-1]]), peak


def _finite(values: np.ndarray, fill: float = np.nan) -> np.ndarray:
    return np.where(np.isfinite(values), values, fill)


# LR_MAX rules (see the module docstring): each a function of the sweep.
def rule_accuracy(sweep: Sweep) -> float:
    read = sweep.read()
    return float(read.lr[int(np.nanargmax(read.smoothed_accuracy))])


def rule_accuracy_raw(sweep: Sweep) -> float:  # the whole sweep, unsmoothed: the PyTorch original's pick
    return float(sweep.lr[int(np.nanargmax(sweep.accuracy))])


def rule_steepest(sweep: Sweep) -> float:
    read = sweep.read()
    loss = _finite(read.smoothed_loss)
    slope = np.gradient(loss, np.log(read.lr)) if len(read) > 1 else np.zeros(1)
    return float(read.lr[int(np.nanargmin(slope))])


def rule_min_loss(sweep: Sweep) -> float:
    read = sweep.read()
    return float(read.lr[int(np.nanargmin(_finite(read.smoothed_loss)))] / 10)


def rule_valley(sweep: Sweep) -> float:
    read = sweep.read()
    return float(read.lr[valley_index(_finite(read.smoothed_loss, np.inf))])


def rule_plateau(sweep: Sweep) -> float:
    low, high, _ = accuracy_plateau(sweep)
    return float(np.sqrt(low * high))


LR_MAX_RULES = {
    "accuracy": rule_accuracy,
    "accuracy-raw": rule_accuracy_raw,
    "steepest": rule_steepest,
    "min-loss": rule_min_loss,
    "valley": rule_valley,
    "plateau": rule_plateau,
}


def valley_index(loss: np.ndarray) -> int:
    """fastai's valley: half way into the longest strictly decreasing subsequence of `loss`."""
    n = len(loss)
    length = np.ones(n, dtype=int)  # length[i]: the longest decreasing subsequence ending at i
    for i in range(1, n):
        before = length[:i][loss[:i] > loss[i]]
        if before.size:
            length[i] = before.max() + 1
    end = int(np.argmax(length))  # the first longest, as fastai's running maximum keeps it
    if length[end] == 1:  # nothing falls: fastai's (start, end) stay (0, 0)
        return 0
    start = end - int(length[end])  # fastai's arithmetic: one before the run's first point
    third = (end - start) / 3
    return max(0, start + int(third) + int(third / 2))  # (fastai would wrap -1 round to the last LR)


def suggest(sweep: Sweep | Mapping) -> dict[str, float]:
    """LR_MAX by each rule, from a sweep (or its records)."""
    sweep = Sweep.of(sweep)
    return {name: rule(sweep) for name, rule in LR_MAX_RULES.items()}


def suggest_min(sweep: Sweep | Mapping, lr_max: float, div: float, fraction: float) -> dict[str, dict]:
    """LR_MIN by each rule, for a given LR_MAX: {rule: {"lr": value or None, "note": why}}.

    A rule that cannot decide gives lr None and says why in its note.
    """
    read = Sweep.of(sweep).read()
    lr, loss, acc = read.lr, read.smoothed_loss, read.smoothed_accuracy
    out = {"div": {"lr": lr_max / div, "note": f"LR_MAX / {div:g}"}}
    top = int(np.searchsorted(lr, lr_max, side="right"))  # the sweep up to LR_MAX
    rise = float(np.max(acc[:top]) - acc[0]) if top else 0.0
    if rise < MIN_RISE:
        out["rise"] = {"lr": None, "note": f"the smoothed accuracy rises by only {rise:.3f} up to LR_MAX"}
    else:
        first = int(np.argmax(acc[:top] >= acc[0] + fraction * rise))
        out["rise"] = {
            "lr": float(lr[first]),
            "note": f"accuracy {acc[first]:.3f}: {fraction:g} of its rise from {acc[0]:.3f} to {acc[0] + rise:.3f}",
        }
    finite = np.where(np.isfinite(loss), loss, np.nan)
    best = int(np.nanargmin(finite))
    out["min-loss"] = {"lr": float(lr[best] / 10), "note": f"lowest smoothed loss {finite[best]:.4g} at {lr[best]:.4g}"}
    for rule, found in out.items():
        if found["lr"] is not None and found["lr"] >= lr_max:
            out[rule] = {"lr": None, "note": f"{found['lr']:.4g} is not below LR_MAX {lr_max:.4g} ({found['note']})"}
    return out


def choose(result: dict, rule: str, min_rule: str, div: float, fraction: float) -> dict:
    """The LR pair a sweep gives by the named rules: {"lr_max", "lr_min", "lr_min_rule", "fallback"}.

    "lr_min_rule" is the rule that gave LR_MIN: `min_rule`, or "div" when that could
    not decide; "fallback" then says why (else None).
    """
    sweep = Sweep.of(result["records"])
    lr_max = LR_MAX_RULES[rule](sweep)
    return {"lr_max": lr_max, **pick_min(sweep, lr_max, min_rule, div, fraction)}


def pick_min(sweep: Sweep | Mapping, lr_max: float, min_rule: str, div: float, fraction: float) -> dict:
    """LR_MIN for `lr_max` by `min_rule`, or by div where that rule cannot decide.

    Returns {"lr_min", "lr_min_rule" (the rule that gave it), "fallback" (why not
    `min_rule`, else None)}.
    """
    found = suggest_min(sweep, lr_max, div, fraction)
    chosen = found[min_rule]
    if chosen["lr"] is None:
        return {
            "lr_min": found["div"]["lr"],
            "lr_min_rule": "div",
            "fallback": f"the {min_rule} rule cannot decide: {chosen['note']}; LR_MIN = LR_MAX / {div:g}",
        }
    return {"lr_min": chosen["lr"], "lr_min_rule": min_rule, "fallback": None}


def sweep(config: TrainConfig, ds: CIFAR10, mesh=None) -> dict:
    """Runs the sweep; returns its records, why it stopped, and timings.

    The model, optimizer, augmentation and batch size are those of the training
    run (`config`), the step is `steps.train_step`, the LR follows `lr_sequence`.
    Ctrl-C or SIGTERM ends it after the step under way, with what was swept and
    `stopped_by` (the signal's name) in the result.
    """
    mesh = mesh if mesh is not None else parallel.make_mesh(config.devices)
    n = config.lr_range_iters
    schedule = sweep_schedule(config.lr_range_start, config.lr_range_end, n, config.lr_range_mode)
    lrs = lr_sequence(config.lr_range_start, config.lr_range_end, n, config.lr_range_mode)  # the same, on the host

    state = parallel.put_replicated(steps_lib.initial_state(config, schedule), mesh)
    steps = steps_lib.compile_run_steps(config, state, mesh, schedule, with_eval=False)
    loader = make_train_loader(config, ds, rows=parallel.process_slice(config.batch_size))
    metrics, stopped_at, reason = [], None, "completed"
    loss_host: list[float] = []
    bar = Progress(config.progress, n, "LR range test")
    t0 = time.perf_counter()
    epoch = 0
    with StopRequest("stopping the sweep after this step; what it swept is written") as request:
        while len(metrics) < n and stopped_at is None and not request.requested:
            batches = loader.epoch(epoch)
            try:
                for batch in batches:
                    if request.requested:  # Ctrl-C or SIGTERM: keep what was swept
                        break
                    state, m = steps.train(state, parallel.put_batch(batch, mesh))
                    metrics.append(m)
                    bar.update(1)
                    if len(metrics) % CHECK_EVERY == 0 or len(metrics) == n:
                        ready = len(metrics) - (2 if len(metrics) < n else 0)
                        loss_host += [float(x["loss"]) for x in parallel.to_host(metrics[len(loss_host) : ready])]
                        smoothed = smooth(loss_host, config.lr_range_smoothing)
                        if len(smoothed):
                            bar.update(0, lr=f"{lrs[len(smoothed) - 1]:.3g}", smoothed_loss=f"{smoothed[-1]:.3f}")
                        stop = divergence(smoothed, config.lr_range_diverge)
                        if stop is not None:
                            stopped_at = stop
                            break
                    if len(metrics) == n:
                        break
            finally:
                batches.close()
            epoch += 1
    bar.close()
    fetched = parallel.to_host(metrics)  # one transfer for the whole sweep
    seconds = time.perf_counter() - t0
    loss = np.array([float(m["loss"]) for m in fetched])
    acc = np.array([float(m["accuracy"]) for m in fetched])
    swept = Sweep.measured(lrs[: len(loss)], loss, acc, config.lr_range_smoothing)
    stop = divergence(swept.smoothed_loss, config.lr_range_diverge)
    if stop is not None:  # cut the records at the first diverging iteration
        raw, s_loss = loss[stop], swept.smoothed_loss
        best = np.min(s_loss[: stop + 1])
        reason = f"diverged at iteration {stop} (LR {lrs[stop]:.4g}): " + (
            f"loss {raw}"
            if not math.isfinite(raw)
            else f"smoothed loss {s_loss[stop]:.4g} > {config.lr_range_diverge:g} x best {best:.4g}"
        )
        swept = swept.until(stop + 1)
    elif request.requested:
        reason = f"stopped by {request.who} after {len(loss)} of {n} iterations" + (
            f", at LR {lrs[len(loss) - 1]:.4g}" if len(loss) else ""
        )
    return {
        "records": swept.to_json(),
        "iterations": len(swept),
        "stopped": reason,
        "seconds": seconds,
        "compile_seconds": steps.compile_seconds,
        **({"stopped_by": request.signal} if request.requested else {}),
    }


def run(config: TrainConfig, ds: CIFAR10, out: str | Path, mesh=None) -> dict:
    """Sweeps, suggests both bounds, and writes `lr_range.json` and `lr_range.png` into `out`.

    Raises:
      Stopped: Ctrl-C or SIGTERM stopped the sweep; what it swept is written first.
    """
    out = Path(out)
    result = sweep(config, ds, mesh)
    if result.get("stopped_by") and not result["iterations"]:
        raise Stopped(result["stopped_by"], f"LR range test {result['stopped']}; nothing was written.")
    result = {"settings": settings(config, ds), **result}
    result.update(suggestions_of(result, config))
    result.update(records.provenance())
    if jax.process_index() == 0:
        records.write_json(out / "lr_range.json", result)
        plot(result, out / "lr_range.png")
    if result.get("stopped_by"):  # its suggestions only know the LRs swept: no run may start from them
        raise Stopped(
            result["stopped_by"],
            f"LR range test {result['stopped']}; what it swept is in {out / 'lr_range.json'} and "
            f"{out / 'lr_range.png'}. A sweep starts from the beginning: run the command again (with another "
            "--out), or pass --lr-max and --lr-min read from the figure.",
        )
    say(
        f"LR range test: {result['iterations']} iterations in {result['seconds']:.1f} s ({result['stopped']}); "
        f"LR_MAX suggestions: {', '.join(f'{r} {v:.4g}' for r, v in result['suggestions'].items())}"
    )
    return result


def settings(config: TrainConfig, ds: CIFAR10) -> dict:
    """What a sweep was run with, for its record."""
    return {
        "start_lr": config.lr_range_start,
        "end_lr": config.lr_range_end,
        "num_iter": config.lr_range_iters,
        "mode": config.lr_range_mode,
        "smoothing": config.lr_range_smoothing,
        "diverge_factor": config.lr_range_diverge,
        "div_factor": config.lr_div,
        "skip_start": SKIP_START,
        "skip_end": SKIP_END,
        "batch_size": config.batch_size,
        "momentum": config.momentum,
        "nesterov": config.nesterov,
        "weight_decay": config.weight_decay,
        "width": config.width,
        "dtype": config.dtype,
        "augment": config.augment,
        "seed": config.seed,
        "data": ds.source,
        "n_train": len(ds.train_labels),
    }


def suggestions_of(result: dict, config: TrainConfig) -> dict:
    """Every rule's suggestions for both bounds, and the pair `config`'s rules choose."""
    sweep = Sweep.of(result["records"])
    suggestions = suggest(sweep)
    lr_max = suggestions[config.lr_range_rule]
    picked = {"lr_max": lr_max, **pick_min(sweep, lr_max, config.lr_min_rule, config.lr_div, config.lr_min_fraction)}
    return {
        "suggestions": suggestions,
        "lr_min_suggestions": suggest_min(sweep, picked["lr_max"], config.lr_div, config.lr_min_fraction),
        "rule": config.lr_range_rule,
        "lr_min_rule": picked["lr_min_rule"],
        "lr_min_fraction": config.lr_min_fraction,
        "lr_min_fallback": picked["fallback"],
        "lr_max": picked["lr_max"],
        "lr_min": picked["lr_min"],
    }


def warn_if_short(result: dict) -> None:
    """Warns (stderr) when a sweep is too short for the rules' trimming, so they read its noisy ends too."""
    if short := too_short(len(result["records"]["lr"])):
        say(f"warning: the sweep has {short}: they read every iteration, the noisy ones too", file=sys.stderr)


def announce(result: dict) -> None:
    """Prints the chosen pair and the rules that chose it; a fallback, or a sweep too short to trim, as a warning."""
    warn_if_short(result)
    if result.get("lr_min_fallback"):
        say(f"warning: {result['lr_min_fallback']}", file=sys.stderr)
    say(
        f"LR range test: LR_MAX {result['lr_max']:.4g} ({result['rule']} rule), "
        f"LR_MIN {result['lr_min']:.4g} ({result['lr_min_rule']} rule)"
    )


def plot(result: dict, path: str | Path):
    """The figure of a sweep: loss and accuracy against LR, every rule's bounds marked, the chosen pair in colour."""
    sweep = Sweep.of(result["records"])
    return plots.lr_range(
        sweep.lr,
        sweep.loss,
        sweep.smoothed_loss,
        sweep.accuracy,
        sweep.smoothed_accuracy,
        lr_min=result["lr_min"],
        lr_max=result["lr_max"],
        suggestions=result["suggestions"],
        rule=result["rule"],
        min_suggestions={r: v["lr"] for r, v in result.get("lr_min_suggestions", {}).items()},
        min_rule=result.get("lr_min_rule", "div"),
        title=f"LR range test: {result['iterations']} iterations ({result['stopped']}); " + _tag(result),
        path=path,
    )


def _tag(result: dict) -> str:
    s = result["settings"]
    return plots.run_tag(s["width"], s["n_train"], s["batch_size"], result.get("device_kind", "?"))


def load(path: str | Path, partial: bool = False) -> dict:
    """A saved lr_range.json, checked for what `--lr-range-json` needs.

    A sweep stopped before its end (Ctrl-C, SIGTERM) or too short for the rules to drop its noisy
    first and last iterations knows only part of the LRs: its suggestions would start a run from
    wherever it stopped. It is refused unless `partial` (--lr-range-partial).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"--lr-range-json {path}: no such file (it is written by python -m jaxcifar.lr_range)")
    try:
        result = records.read_json(path)
    except (ValueError, UnicodeDecodeError) as e:  # json.JSONDecodeError is a ValueError
        raise ValueError(
            f"--lr-range-json {path}: not readable JSON ({e}); the file may be truncated. "
            "Run the sweep again (python -m jaxcifar.lr_range) or use --lr-max."
        ) from None
    missing = [k for k in ("records", "settings") if not isinstance(result, dict) or k not in result]
    if missing or not {"lr", "loss", "accuracy", "smoothed_loss", "smoothed_accuracy"} <= set(result["records"]):
        raise ValueError(
            f"--lr-range-json {path} is not an lr_range.json of jaxcifar "
            f"(missing {missing or 'records of the sweep'}); it is written by python -m jaxcifar.lr_range"
        )
    short = too_short(len(result["records"]["lr"]))
    if (result.get("stopped_by") or short) and not partial:
        why = result.get("stopped", "") if result.get("stopped_by") else short
        raise UsageError(
            f"--lr-range-json {path}: that sweep is partial ({why}), so its suggestions only know the LRs it "
            "reached. Run the sweep again, or pass --lr-range-partial to use it anyway."
        )
    return result


def resolve(config: TrainConfig, ds: CIFAR10, out: Path, mesh) -> tuple[float, float, dict]:
    """A training run's (LR_MIN, LR_MAX, how they were found): given, or by the rules from a new
    or a saved sweep (`run` or `--lr-range-json`).

    A sweep, new or reused, ends up in the run folder as lr_range.json and
    lr_range.png, with every rule's suggestions and the pair this run's rules chose.
    """
    info: dict[str, Any] = {}
    sweep = None
    if config.lr_range_json:
        sweep = load(config.lr_range_json, config.lr_range_partial)
        sweep = {**sweep, **suggestions_of(sweep, config), "reused_from": str(config.lr_range_json)}
        if jax.process_index() == 0:
            records.write_json(out / "lr_range.json", sweep)
            plot(sweep, out / "lr_range.png")
        info["source"] = f"LR range test {config.lr_range_json}"
    elif config.lr_max is None:
        sweep = run(config, ds, out, mesh=mesh)
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
        picked = pick_min(Sweep.of(sweep["records"]), lr_max, config.lr_min_rule, config.lr_div, config.lr_min_fraction)
        lr_min = picked["lr_min"]
        info["lr_min_rule"] = picked["lr_min_rule"]
        if picked["fallback"]:
            info["lr_min_fallback"] = picked["fallback"]
            say(f"warning: {picked['fallback']}", file=sys.stderr)
    if lr_min > lr_max:
        raise UsageError(f"LR_MIN {lr_min:g} exceeds LR_MAX {lr_max:g}; lower --lr-min")
    if sweep is not None:
        warn_if_short(sweep)
        say(
            f"LR_MAX {lr_max:.4g} ({info.get('rule', 'given')}), "
            f"LR_MIN {lr_min:.4g} ({info.get('lr_min_rule', 'given')})"
        )
    return lr_min, lr_max, info


@entry_point
def main(argv: Sequence[str] | None = None) -> dict:
    """`python -m jaxcifar.lr_range`: run the sweep and write lr_range.json/png into --out."""
    startup.set_cpu_flags()  # where main is called from Python: the command line has set them
    config = flags.parse(argv, PROG, DESCRIPTION, lr_range_only=True)
    out = Path(config.out) if config.out else Path("runs") / time.strftime("lr-range-%Y%m%d-%H%M%S")
    if taken := [str(p) for p in (out / "lr_range.json", out / "lr_range.png") if p.exists()]:
        raise FileExistsError(f"{', '.join(taken)} exists; nothing is overwritten. Choose another --out.")
    if (out / "config.json").exists() or (out / "checkpoints").exists():  # a training run's folder
        raise FileExistsError(
            f"{out} holds a training run, which would seem to have used this sweep. Choose another --out "
            "(a run reuses a sweep with --lr-range-json)."
        )
    records.check_writable(out)
    config = dataclasses.replace(config, out=str(out))
    parallel.enable_compilation_cache(data_lib.compile_cache_folder(config.cache_dir))
    result = run(config, load_data(config), out)
    announce(result)
    return result


if __name__ == "__main__":
    main()
