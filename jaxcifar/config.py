"""One configuration for a run: a frozen dataclass, its flags, and its JSON.

`TrainConfig` holds every setting of a training run and of the LR range test
that may precede it, with units in the comments. Its defaults are the recipe of
the PyTorch original (SGD momentum 0.9, weight decay 5e-3 added to the gradient,
batch 512, 24 epochs, one-cycle LR_MAX/10 -> LR_MAX -> LR_MAX/10 with LR_MAX
from an LR range test). It is validated on construction, built from the command
line by `from_args`, saved as `config.json` with every run, and varied with
`dataclasses.replace`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence
from typing import Any

from jaxcifar.augment import AUGMENTERS

DTYPES = ("auto", "float32", "bfloat16")
KERNEL_GRADS = ("auto", "xla", "taps")
LR_RULES = ("accuracy", "steepest", "min-loss")

# --quick: a first try on a laptop CPU. Each value applies only where the command
# line does not set it. On the 2-core development machine with the real images:
# LR range test 15 s, 8 epochs of 6 s, 62.6% test accuracy. Batches of 128 rather
# than 512: 4x the steps in the same time (and 1.5x the images/s on a CPU).
QUICK = {
    "n_train": 5000,
    "n_test": 1000,
    "width": 16,
    "epochs": 8,
    "peak_epoch": 2.0,
    "batch_size": 128,
    "lr_range_iters": 100,
}

# --recipe: named sets of settings, applied like --quick (flags still win).
# "original" is the PyTorch original (EVA4 S11) our defaults follow: weight decay
# 5e-3, LR_MAX from the LR range test, LR_MIN = LR_MAX / 10; it reached 93.18%.
# "cifar10-fast" is David Page's hand-tuned recipe for the same network
# (davidcpage/cifar10-fast, dawn.py), in mean-loss terms: Nesterov momentum 0.9,
# weight decay 5e-4, logits x 0.125, LR 0 -> 0.4 at epoch 5 -> 0 at epoch 24;
# 94.08% median test accuracy over 50 runs of 24 epochs on a V100.
RECIPES: dict[str, dict[str, Any]] = {
    "original": {},
    "cifar10-fast": {
        "nesterov": True,
        "weight_decay": 5e-4,
        "logit_scale": 0.125,
        "lr_max": 0.4,
        "lr_min": 0.0,
    },
}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every setting of a run. See `python -m jaxcifar.train --help`."""

    # Data
    data: str | None = None  # tfds | download | synthetic | PATH; None: $JAXCIFAR_DATA, else download
    data_dir: str | None = None  # tfds data_dir / where `download` keeps the archive
    cache_dir: str | None = None  # decoded-array cache; None: $JAXCIFAR_CACHE or ~/.cache/jaxcifar
    n_train: int | None = None  # class-stratified training subset (images); None: all 50,000
    n_test: int | None = None  # test subset (images); None: all 10,000
    # Model
    width: int = 64  # base width: stages of w, 2w, 4w, 8w channels
    dtype: str = "auto"  # compute type; auto = bfloat16 on GPU/TPU, float32 on CPU
    logit_scale: float = 1.0  # logits multiplier (cifar10-fast: 0.125)
    kernel_grad: str = "auto"  # conv kernel gradient: auto = taps on CPU, xla elsewhere
    # Optimisation
    epochs: int = 24
    batch_size: int = 512  # images per step (global, over all devices)
    lr_max: float | str = "auto"  # peak LR per step; "auto" = from the LR range test
    lr_min: float | str = "auto"  # start/end LR; "auto" = lr_max / lr_div
    lr_div: float = 10.0  # LR_MAX / LR_MIN when lr_min is auto (OneCycleLR's div_factor)
    peak_epoch: float = 5.0  # epochs until the LR peak
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-3  # L2 coefficient added to the gradient (PyTorch SGD style), all params
    label_smoothing: float = 0.0
    # Augmentation (host side)
    augment: str = "numpy"  # numpy | albumentations | device (host draws, pixel work in the step)
    flip_prob: float = 0.5  # horizontal flip probability (the PyTorch original: 0.7)
    cutout: int = 8  # Cutout hole side in pixels; 0 disables
    workers: int = 0  # augmentation threads; 0 = min(4, CPU cores)
    # LR range test (with lr_max = "auto", or `python -m jaxcifar.lr_range`)
    lr_range_start: float = 1e-4  # first LR of the sweep
    lr_range_end: float = 0.1  # last LR of the sweep
    lr_range_iters: int = 980  # sweep length in steps (10 epochs of 98 batches in the original)
    lr_range_mode: str = "exp"  # exp | linear spacing of the sweep
    lr_range_rule: str = "accuracy"  # accuracy | steepest | min-loss: how LR_MAX is picked
    lr_range_smoothing: float = 0.05  # EMA factor of the smoothed curves
    lr_range_diverge: float = 4.0  # stop when smoothed loss > this x its best
    lr_range_json: str | None = None  # reuse an earlier sweep instead of running one
    # Run
    seed: int = 0
    out: str | None = None  # run folder; None: runs/<timestamp>
    resume: bool = False  # continue the run in `out` from its latest checkpoint
    quick: bool = False  # small subset, narrow net, few epochs (see QUICK)
    recipe: str = "original"  # original | cifar10-fast: a preset of the settings above (see RECIPES)
    gradcam: bool = True  # draw Grad-CAM figures at the end of the run
    tta: bool = False  # also report test accuracy with flip test-time augmentation (2x eval cost)
    progress: bool = True  # progress bar per epoch
    # Devices and processes
    devices: int | None = None  # use the first N devices; None: all of them
    distributed: bool = False  # multi-process: call jax.distributed.initialize first
    coordinator: str | None = None  # host:port of process 0 (default: from the environment)
    num_processes: int | None = None  # (default: from the environment)
    process_id: int | None = None  # this process, 0..num_processes-1 (default: from the environment)

    def __post_init__(self) -> None:
        def positive(name: str) -> None:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name.replace('_', '-')} must be positive, got {getattr(self, name)}")

        for name in ("width", "epochs", "batch_size", "lr_div", "lr_range_start", "lr_range_end"):
            positive(name)
        for name in ("n_train", "n_test", "devices", "num_processes"):
            if getattr(self, name) is not None:
                positive(name)
        for name in ("lr_max", "lr_min"):
            value = getattr(self, name)
            if isinstance(value, str):
                if value != "auto":
                    raise ValueError(f"{name.replace('_', '-')} must be 'auto' or a number, got {value!r}")
            elif not (value > 0 if name == "lr_max" else value >= 0):  # LR_MIN 0: cifar10-fast's 0 -> 0.4 -> 0
                raise ValueError(
                    f"{name.replace('_', '-')} must be {'positive' if name == 'lr_max' else '>= 0'}, got {value}"
                )
        if not isinstance(self.lr_max, str) and not isinstance(self.lr_min, str) and self.lr_min > self.lr_max:
            raise ValueError(f"lr-min ({self.lr_min}) must not exceed lr-max ({self.lr_max})")
        if not 0 < self.peak_epoch < self.epochs:
            raise ValueError(f"peak-epoch must lie strictly between 0 and epochs={self.epochs}, got {self.peak_epoch}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0 or not 0 <= self.label_smoothing < 1:
            raise ValueError("weight-decay must be >= 0 and label-smoothing in [0, 1)")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0 (0 = automatic), got {self.workers}")
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {tuple(RECIPES)}, got {self.recipe!r}")
        if self.kernel_grad not in KERNEL_GRADS:
            raise ValueError(f"kernel-grad must be one of {KERNEL_GRADS}, got {self.kernel_grad!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.augment not in AUGMENTERS:
            raise ValueError(f"augment must be one of {AUGMENTERS}, got {self.augment!r}")
        if self.lr_range_rule not in LR_RULES:
            raise ValueError(f"lr-range rule must be one of {LR_RULES}, got {self.lr_range_rule!r}")
        if self.lr_range_mode not in ("exp", "linear"):
            raise ValueError(f"lr-range mode must be 'exp' or 'linear', got {self.lr_range_mode!r}")
        if self.lr_range_start >= self.lr_range_end:
            raise ValueError(
                "the LR range test sweeps upwards: "
                f"start-lr ({self.lr_range_start}) must be below end-lr ({self.lr_range_end})"
            )
        if self.lr_range_iters < 2:
            raise ValueError(f"the LR range test needs num-iter >= 2, got {self.lr_range_iters}")
        if not 0 < self.lr_range_smoothing <= 1:
            raise ValueError(f"smoothing must be in (0, 1], got {self.lr_range_smoothing}")
        if self.lr_range_diverge <= 1:
            raise ValueError(f"diverge-factor must exceed 1, got {self.lr_range_diverge}")
        if self.resume and self.out is None:
            raise ValueError("--resume continues the run in --out: name its folder with --out runs/NAME")

    @property
    def augment_threads(self) -> int:
        """Augmentation threads: `workers`, or min(4, CPU cores) when it is 0.

        One thread makes about 70,000 images/s (NumPy path); a 24-epoch run in
        10 s on a GPU needs 120,000 images/s.
        """
        return self.workers or min(4, os.cpu_count() or 1)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        if unknown := sorted(set(obj) - known):
            raise ValueError(f"unknown config keys {unknown}: this config.json comes from another version")
        return cls(**obj)


def _float_or_auto(text: str) -> float | str:
    if text == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser, *, lr_range_only: bool = False) -> None:
    """Adds the flags of TrainConfig (every default None: unset flags keep the config's)."""
    d = TrainConfig()
    g = parser.add_argument_group("data")
    g.add_argument("--data", help="tfds | download | synthetic | PATH (default: $JAXCIFAR_DATA, else download)")
    g.add_argument("--data-dir", help="tfds data_dir, or where --data download keeps the archive")
    g.add_argument("--cache-dir", help="decoded-array cache (default: $JAXCIFAR_CACHE or ~/.cache/jaxcifar)")
    g.add_argument("--n-train", type=int, help="class-stratified training subset size (default: all)")
    g.add_argument("--n-test", type=int, help="test subset size (default: all)")
    g = parser.add_argument_group("model")
    g.add_argument("--width", type=int, help=f"base width (default: {d.width})")
    g.add_argument("--dtype", choices=DTYPES, help="compute type (default: bfloat16 on GPU/TPU, float32 on CPU)")
    g.add_argument("--logit-scale", type=float, help=f"logit multiplier (default: {d.logit_scale})")
    g.add_argument("--kernel-grad", choices=KERNEL_GRADS, help="conv kernel gradient (default: taps on CPU, else xla)")
    g = parser.add_argument_group("optimisation")
    g.add_argument("--batch-size", type=int, help=f"global batch (default: {d.batch_size})")
    g.add_argument("--momentum", type=float, help=f"SGD momentum (default: {d.momentum})")
    g.add_argument("--nesterov", action="store_true", default=None, help="Nesterov momentum")
    g.add_argument("--weight-decay", type=float, help=f"L2 added to the gradient (default: {d.weight_decay})")
    g.add_argument("--label-smoothing", type=float, help=f"(default: {d.label_smoothing})")
    g = parser.add_argument_group("augmentation")
    g.add_argument(
        "--augment",
        choices=AUGMENTERS,
        help="numpy or albumentations on the host; device: the host draws, the step does the pixel work "
        "on uint8 batches (default: numpy)",
    )
    g.add_argument("--flip-prob", type=float, help=f"horizontal flip probability (default: {d.flip_prob})")
    g.add_argument("--cutout", type=int, help=f"Cutout hole side, 0 disables (default: {d.cutout})")
    g.add_argument("--workers", type=int, help="augmentation threads (default: 0 = min(4, CPU cores))")
    g = parser.add_argument_group("LR range test")
    g.add_argument(
        "--start-lr", dest="lr_range_start", type=float, help=f"first LR of the sweep (default: {d.lr_range_start})"
    )
    g.add_argument(
        "--end-lr", dest="lr_range_end", type=float, help=f"last LR of the sweep (default: {d.lr_range_end})"
    )
    g.add_argument("--num-iter", dest="lr_range_iters", type=int, help=f"sweep steps (default: {d.lr_range_iters})")
    g.add_argument("--lr-mode", dest="lr_range_mode", choices=("exp", "linear"), help="sweep spacing (default: exp)")
    g.add_argument("--rule", dest="lr_range_rule", choices=LR_RULES, help="how LR_MAX is picked (default: accuracy)")
    g.add_argument("--smoothing", dest="lr_range_smoothing", type=float, help="EMA factor (default: 0.05)")
    g.add_argument(
        "--diverge-factor", dest="lr_range_diverge", type=float, help="stop at this x best smoothed loss (default: 4)"
    )
    g.add_argument("--div-factor", dest="lr_div", type=float, help="LR_MIN = LR_MAX / this (default: 10)")
    g = parser.add_argument_group("run")
    g.add_argument("--seed", type=int, help="seed of initialisation, data order and augmentation (default: 0)")
    g.add_argument("--out", help="output folder (default: runs/<timestamp>)")
    g.add_argument(
        "--quick", action="store_true", default=None, help="small subset, narrow net, few epochs: minutes on a CPU"
    )
    g.add_argument(
        "--recipe",
        choices=tuple(RECIPES),
        help="preset: original (EVA4 S11, the defaults) or cifar10-fast (Page: Nesterov, wd 5e-4, "
        "logits x 0.125, LR 0 -> 0.4 -> 0); flags override it",
    )
    g.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar")
    if lr_range_only:
        return
    g = parser.add_argument_group("schedule and training")
    g.add_argument("--epochs", type=int, help=f"(default: {d.epochs})")
    g.add_argument(
        "--lr-max", type=_float_or_auto, help="peak LR, or 'auto' to run the LR range test first (default: auto)"
    )
    g.add_argument(
        "--lr-min", type=_float_or_auto, help="start/end LR, or 'auto' = LR_MAX / div-factor (default: auto)"
    )
    g.add_argument("--peak-epoch", type=float, help=f"epochs until the LR peak (default: {d.peak_epoch})")
    g.add_argument("--lr-range-json", help="reuse the LR range test in this lr_range.json instead of running one")
    g.add_argument(
        "--resume", action="store_true", default=None, help="continue the run in --out from its latest checkpoint"
    )
    g.add_argument(
        "--tta",
        action="store_true",
        default=None,
        help="also evaluate with flip test-time augmentation (mean logits of image and mirror); "
        "the plain test accuracy stays the headline",
    )
    g.add_argument("--no-gradcam", dest="gradcam", action="store_false", default=None, help="skip the Grad-CAM figures")
    g = parser.add_argument_group("devices and processes")
    g.add_argument("--devices", type=int, help="use the first N devices (default: all; the batch is split over them)")
    g.add_argument("--distributed", action="store_true", default=None, help="multi-process run (jax.distributed)")
    g.add_argument("--coordinator", help="host:port of process 0 (default: $JAX_COORDINATOR_ADDRESS or the cluster's)")
    g.add_argument("--num-processes", type=int, help="processes in the run (default: from the environment)")
    g.add_argument("--process-id", type=int, help="this process's index (default: from the environment)")


def from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> TrainConfig:
    """The config the command line asks for: its flags over --recipe and --quick over the defaults.

    Invalid combinations become argparse errors (exit status 2, message on stderr).
    """
    given = {
        k: v for k, v in vars(args).items() if v is not None and k in {f.name for f in dataclasses.fields(TrainConfig)}
    }
    recipe = RECIPES.get(given.get("recipe", "original"), {})  # an unknown name fails in TrainConfig
    values = {**(QUICK if given.get("quick") else {}), **recipe, **given}
    try:
        return TrainConfig(**values)
    except ValueError as e:
        parser.error(str(e))
        raise  # unreachable: parser.error exits


def parse(argv: Sequence[str] | None, prog: str, description: str, *, lr_range_only: bool = False) -> TrainConfig:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser, lr_range_only=lr_range_only)
    return from_args(parser.parse_args(argv), parser)
