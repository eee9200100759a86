"""The LR range test: sweep the learning rate up, watch loss and accuracy, pick LR_MAX.

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
its lowest value so far, or a loss is NaN/inf.

Rules for LR_MAX (`--rule`), each over the smoothed curves, leaving out the first
10 and last 5 iterations (torch-lr-finder's skip_start/skip_end) where they are noisy:
  accuracy   the LR of the highest smoothed batch accuracy (the original's choice).
  steepest   the LR where the smoothed loss falls fastest against log(LR)
             (torch-lr-finder's and fastai's "steep" suggestion).
  min-loss   the LR of the lowest smoothed loss, divided by 10 (fastai's "minimum").
LR_MIN = LR_MAX / `--div-factor` (10).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np

from jaxcifar import config as config_lib
from jaxcifar import parallel, plots, records
from jaxcifar import steps as steps_lib
from jaxcifar.config import LR_RULES, TrainConfig
from jaxcifar.console import Progress, say
from jaxcifar.data import CIFAR10
from jaxcifar.errors import entry_point
from jaxcifar.loader import load_data, make_train_loader

DESCRIPTION = "Sweep the learning rate up on a fresh model, record loss and accuracy, and suggest LR_MAX and LR_MIN."
SKIP_START, SKIP_END = 10, 5
# Host reads of the loss, for the divergence check, lag the device by a few
# steps and happen every CHECK_EVERY steps, so the device never waits.
CHECK_EVERY = 16


def lr_sequence(start: float, end: float, num_iter: int, mode: str = "exp") -> np.ndarray:
    """float64[num_iter]: the sweep's LRs, from `start` to `end` inclusive.

    exp: start * (end / start) ** (i / (num_iter - 1)), a constant ratio per step.
    linear: start + (end - start) * i / (num_iter - 1).
    """
    if not 0 < start < end:
        raise ValueError(f"the sweep needs 0 < start-lr < end-lr, got start={start}, end={end}")
    if num_iter < 2:
        raise ValueError(f"the sweep needs num-iter >= 2, got {num_iter}")
    t = np.arange(num_iter) / (num_iter - 1)
    if mode == "exp":
        return start * (end / start) ** t
    if mode == "linear":
        return start + (end - start) * t
    raise ValueError(f"mode must be 'exp' or 'linear', got {mode!r}")


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


def suggest(lrs: np.ndarray, smoothed_loss: np.ndarray, smoothed_acc: np.ndarray) -> dict[str, float]:
    """LR_MAX by each rule (see the module docstring), from the smoothed curves."""
    n = len(lrs)
    lo, hi = (SKIP_START, n - SKIP_END) if n - SKIP_START - SKIP_END >= 3 else (0, n)
    lr, loss, acc = lrs[lo:hi], smoothed_loss[lo:hi], smoothed_acc[lo:hi]
    finite = np.isfinite(loss)
    slope = np.gradient(np.where(finite, loss, np.nan), np.log(lr)) if len(lr) > 1 else np.zeros(1)
    return {
        "accuracy": float(lr[int(np.nanargmax(acc))]),
        "steepest": float(lr[int(np.nanargmin(slope))]),
        "min-loss": float(lr[int(np.nanargmin(np.where(finite, loss, np.nan)))] / 10),
    }


def sweep(config: TrainConfig, ds: CIFAR10, mesh=None) -> dict:
    """Runs the sweep; returns its records, why it stopped, and timings.

    The model, optimizer, augmentation and batch size are those of the training
    run (`config`), the step is `steps.train_step`, the LR follows `lr_sequence`.
    """
    mesh = mesh if mesh is not None else parallel.make_mesh(config.devices)
    lrs = lr_sequence(config.lr_range_start, config.lr_range_end, config.lr_range_iters, config.lr_range_mode)
    start, end, n = config.lr_range_start, config.lr_range_end, config.lr_range_iters

    def schedule(step):  # lr_sequence, evaluated on the device
        if config.lr_range_mode == "exp":
            return start * (end / start) ** (step / (n - 1))
        return start + (end - start) * step / (n - 1)

    state = parallel.put_replicated(steps_lib.initial_state(config, schedule), mesh)
    steps = steps_lib.compile_run_steps(config, state, mesh, schedule, with_eval=False)
    loader = make_train_loader(config, ds, rows=parallel.process_slice(config.batch_size))
    metrics, stopped_at, reason = [], None, "completed"
    loss_host: list[float] = []
    bar = Progress(config.progress, n, "LR range test")
    t0 = time.perf_counter()
    epoch = 0
    while len(metrics) < n and stopped_at is None:
        batches = loader.epoch(epoch)
        try:
            for batch in batches:
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
    used_lr = np.array([float(m["lr"]) for m in fetched])
    s_loss = smooth(loss, config.lr_range_smoothing)
    stop = divergence(s_loss, config.lr_range_diverge)
    if stop is not None:  # cut the records at the first diverging iteration
        keep = stop + 1
        raw = loss[stop]
        reason = f"diverged at iteration {stop} (LR {lrs[stop]:.4g}): " + (
            f"loss {raw}"
            if not math.isfinite(raw)
            else f"smoothed loss {s_loss[stop]:.4g} > {config.lr_range_diverge:g} x best {np.min(s_loss[:keep]):.4g}"
        )
        loss, acc, used_lr, s_loss = loss[:keep], acc[:keep], used_lr[:keep], s_loss[:keep]
    np.testing.assert_allclose(used_lr, lrs[: len(used_lr)], rtol=1e-5)  # the device ran the planned LRs
    return {
        "records": {
            "lr": lrs[: len(loss)].tolist(),
            "loss": loss.tolist(),
            "accuracy": acc.tolist(),
            "smoothed_loss": s_loss.tolist(),
            "smoothed_accuracy": smooth(acc, config.lr_range_smoothing).tolist(),
        },
        "iterations": len(loss),
        "stopped": reason,
        "seconds": seconds,
        "compile_seconds": steps.compile_seconds,
    }


def run(config: TrainConfig, ds: CIFAR10, out: str | Path, mesh=None) -> dict:
    """Sweeps, suggests, and writes `lr_range.json` and `lr_range.png` into `out`."""
    out = Path(out)
    result = sweep(config, ds, mesh)
    rec = {k: np.asarray(v) for k, v in result["records"].items()}
    suggestions = suggest(rec["lr"], rec["smoothed_loss"], rec["smoothed_accuracy"])
    lr_max = suggestions[config.lr_range_rule]
    result = {
        "settings": {
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
        },
        **result,
        "suggestions": suggestions,
        "rule": config.lr_range_rule,
        "lr_max": lr_max,
        "lr_min": lr_max / config.lr_div,
        **records.provenance(),
    }
    if jax.process_index() == 0:
        records.write_json(out / "lr_range.json", result)
        plot(result, out / "lr_range.png")
    summary = ", ".join(f"{rule} {lr:.4g}" for rule, lr in suggestions.items())
    say(
        f"LR range test: {result['iterations']} iterations in {result['seconds']:.1f} s ({result['stopped']}); "
        f"suggestions: {summary}; "
        f"chosen ({config.lr_range_rule}): LR_MAX {lr_max:.4g}, LR_MIN {lr_max / config.lr_div:.4g}"
    )
    return result


def plot(result: dict, path: str | Path):
    """The figure of a sweep: loss and accuracy against LR, LR_MIN and LR_MAX marked."""
    rec = {k: np.asarray(v) for k, v in result["records"].items()}
    return plots.lr_range(
        rec["lr"],
        rec["loss"],
        rec["smoothed_loss"],
        rec["accuracy"],
        rec["smoothed_accuracy"],
        lr_min=result["lr_min"],
        lr_max=result["lr_max"],
        suggestions=result["suggestions"],
        rule=result["rule"],
        title=f"LR range test: {result['iterations']} iterations ({result['stopped']}); " + _tag(result),
        path=path,
    )


def _tag(result: dict) -> str:
    s = result["settings"]
    return plots.run_tag(s["width"], s["n_train"], s["batch_size"], result.get("device_kind", "?"))


def load(path: str | Path) -> dict:
    """A saved lr_range.json, checked for what `--lr-range-json` needs."""
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
    missing = [k for k in ("suggestions", "records", "settings") if not isinstance(result, dict) or k not in result]
    if missing or not set(LR_RULES) <= set(result.get("suggestions", {})):
        raise ValueError(
            f"--lr-range-json {path} is not an lr_range.json of jaxcifar "
            f"(missing {missing or 'a suggestion per rule'}); it is written by python -m jaxcifar.lr_range"
        )
    return result


@entry_point
def main(argv: Sequence[str] | None = None) -> dict:
    """`python -m jaxcifar.lr_range`: run the sweep and write lr_range.json/png into --out."""
    config = config_lib.parse(argv, "python -m jaxcifar.lr_range", DESCRIPTION, lr_range_only=True)
    out = Path(config.out) if config.out else Path("runs") / time.strftime("lr-range-%Y%m%d-%H%M%S")
    if taken := [str(p) for p in (out / "lr_range.json", out / "lr_range.png") if p.exists()]:
        raise FileExistsError(f"{', '.join(taken)} exists; nothing is overwritten. Choose another --out.")
    records.check_writable(out)
    config = dataclasses.replace(config, out=str(out))
    steps_lib.enable_compilation_cache(config)
    return run(config, load_data(config), out)


if __name__ == "__main__":
    main()
