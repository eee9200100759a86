"""One configuration for a run: a frozen dataclass, its presets, and its JSON.

`TrainConfig` holds every setting of a training run and of the LR range test
that may precede it; each field carries its flag's help (jaxcifar.flags makes the
command line from them; this module knows nothing of command lines). Its defaults are
the recipe of the PyTorch original (SGD momentum 0.9, weight decay 5e-3 added to the
gradient, batch 512, 24 epochs, one-cycle LR_MAX/10 -> LR_MAX at epoch 5 -> LR_MAX/10
with LR_MAX from an LR range test). It is validated on construction, saved as
`config.json` with every run, and varied with `dataclasses.replace`.

Presets (`recipe`, `quick`) are applied by `TrainConfig.create`, and a config checks
that it holds the values of the presets it names: settings given beside a preset win
over it and are listed in `overrides`, so config.json says exactly what ran.

    TrainConfig.create(recipe="cifar10-fast")                 # Page's settings
    TrainConfig.create(quick=True, epochs=4)                  # --quick --epochs 4

`None` means "decide at run time": `lr_max=None` runs the LR range test, `lr_min=None`
is LR_MAX / lr_div, `dtype=None` is bfloat16 on GPU/TPU and float32 on CPU,
`peak_epoch=None` is 5/24 of the epochs.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

from jaxcifar.augment import AUGMENTERS, CUTOUT_PLACEMENTS, AugmentConfig

DTYPES = ("float32", "bfloat16")
CONVS = ("xla", "winograd")
BATCH_NORMS = ("flax", "matvec")
LR_RULES = ("accuracy", "accuracy-raw", "steepest", "min-loss", "valley", "plateau")  # LR_MAX, see jaxcifar.lr_range
LR_MIN_RULES = ("div", "rise", "min-loss")  # LR_MIN when lr_min is None
LR_RANGE_MODES = ("exp", "linear")
# The peak's place in the run when --peak-epoch is not given: epoch 5 of 24, as
# the recipe has it (OneCycleLR's pct_start scales the same way with the run).
PEAK_FRACTION = 5 / 24

# --quick: a first try on a laptop CPU (5,000 images, width 16, 8 epochs of batch
# 128, peak at 5/24 of the run = epoch 1.67, a 100-step LR range test): minutes on a
# CPU. Batches of 128 rather than 512 give 4x the steps in the same time.
QUICK: dict[str, Any] = {
    "n_train": 5000,
    "n_test": 1000,
    "width": 16,
    "epochs": 8,
    "batch_size": 128,
    "lr_range_iters": 100,
}

# --recipe: named sets of settings. "original" is the PyTorch original (EVA4 S11)
# our defaults follow: weight decay 5e-3, LR_MAX from the LR range test, LR_MIN =
# LR_MAX / 10; it reached 93.18%. "cifar10-fast" is David Page's hand-tuned recipe
# for the same network (davidcpage/cifar10-fast, dawn.py), in mean-loss terms:
# Nesterov momentum 0.9, weight decay 5e-4, logits x 0.125, LR 0 -> 0.4 at epoch 5
# -> 0 at epoch 24; 94.08% median test accuracy over 50 runs of 24 epochs on a V100.
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

# Settings that say where and how a run is shown, not what it computes: they may
# differ when a run is resumed (python -m jaxcifar.train --out RUN --resume ...).
# Those of the machine (MACHINE) are this command's, given or by default; the
# others stay the run's unless given (a run on --data PATH resumes on PATH).
MACHINE = (
    "progress",
    "devices",
    "distributed",
    "coordinator",
    "num_processes",
    "process_id",
    "workers",
    "cache_dir",
)
RESUMABLE = (*MACHINE, "data", "data_dir", "gradcam", "checkpoint_every", "tensorboard")
# The settings that take one of a few values (a None one: "auto" on the command line).
CHOICES: dict[str, tuple[str, ...]] = {
    "dtype": DTYPES,
    "conv": CONVS,
    "batch_norm": BATCH_NORMS,
    "augment": AUGMENTERS,
    "cutout_placement": CUTOUT_PLACEMENTS,
    "lr_range_rule": LR_RULES,
    "lr_min_rule": LR_MIN_RULES,
    "lr_range_mode": LR_RANGE_MODES,
    "recipe": tuple(RECIPES),
}


def setting(default: Any, group: str | None, help: str = "", *, aliases: Sequence[str] = (), shown: str | None = None):
    """A TrainConfig field and its flag: `--NAME` (and `aliases`), in `group` of --help, saying `help` and
    its default (`shown`, else the default's value). A field with group None has no flag."""
    return dataclasses.field(
        default=default, metadata={"group": group, "help": help, "aliases": tuple(aliases), "shown": shown}
    )


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Every setting of a run: each field is a flag of the same name (`python -m jaxcifar.train --help`)."""

    # Data
    data: str | None = setting(
        None, "data", "tfds | download | synthetic | PATH", shown="$JAXCIFAR_DATA, else download"
    )
    data_dir: str | None = setting(
        None, "data", "tfds data_dir, or where --data download keeps the archive", shown="the cache folder"
    )
    cache_dir: str | None = setting(
        None, "data", "decoded-array and compilation cache", shown="$JAXCIFAR_CACHE or ~/.cache/jaxcifar"
    )
    n_train: int | None = setting(None, "data", "class-stratified training subset size", shown="all 50,000")
    n_test: int | None = setting(None, "data", "test subset size", shown="all 10,000")
    # Model
    width: int = setting(64, "model", "base width: stages of w, 2w, 4w, 8w channels")
    dtype: str | None = setting(
        None, "model", "compute type", shown="auto = bfloat16 on TPUs and GPUs from Ampere on, else float32"
    )
    logit_scale: float = setting(1.0, "model", "logit multiplier (cifar10-fast: 0.125)")
    conv: str | None = setting(
        None,
        "model",
        "convolutions after the first: XLA's, or Winograd's F(4x4, 3x3)",
        shown="auto = winograd on CPU from width 32 on, else xla",
    )
    batch_norm: str | None = setting(
        None,
        "model",
        "BatchNorm's batch sums: Flax's layer, or matrix-vector products with their own gradient (the same "
        "numbers to float rounding)",
        shown="auto = matvec on CPU from width 32 on, else flax",
    )
    # Optimisation
    epochs: int = setting(24, "schedule and training", "length of the run in epochs")
    batch_size: int = setting(512, "optimisation", "global batch, split over the devices")
    lr_max: float | None = setting(
        None, "schedule and training", "peak LR per step, or auto to run the LR range test first", shown="auto"
    )
    lr_min: float | None = setting(
        None, "schedule and training", "LR at the first and last step, or auto = by --lr-min-rule", shown="auto"
    )
    lr_min_rule: str = setting(
        "div", "LR range test", "how LR_MIN is picked when --lr-min is auto; div = LR_MAX / --lr-div"
    )
    lr_div: float = setting(
        10.0,
        "LR range test",
        "the div rule: LR_MIN = LR_MAX / this (OneCycleLR's div_factor)",
    )
    lr_min_fraction: float = setting(
        0.1, "LR range test", "the rise rule: LR_MIN where the accuracy has made this share of its rise"
    )
    peak_epoch: float | None = setting(
        None, "schedule and training", "epochs until the LR peak", shown="5/24 of --epochs: epoch 5 of 24, and so on"
    )
    momentum: float = setting(0.9, "optimisation", "SGD momentum")
    nesterov: bool = setting(False, "optimisation", "Nesterov momentum")
    weight_decay: float = setting(
        5e-3, "optimisation", "L2 coefficient added to the gradient of every parameter (PyTorch SGD style)"
    )
    label_smoothing: float = setting(0.0, "optimisation", "label smoothing of the loss")
    # Augmentation
    augment: str = setting(
        "numpy",
        "augmentation",
        "numpy or albumentations on the host; device: the host draws, the step does the pixel work on uint8 batches",
    )
    flip_prob: float = setting(0.5, "augmentation", "horizontal flip probability (the PyTorch original: 0.7)")
    cutout: int = setting(8, "augmentation", "Cutout hole side in pixels, 0 disables")
    cutout_prob: float = setting(1.0, "augmentation", "share of images that get a hole (the original: 1, every image)")
    cutout_placement: str = setting(
        "inside",
        "augmentation",
        "inside: the hole whole inside the image; clip: its centre anywhere, clipped at every border, as "
        "albumentations 0.1.12's Cutout placed it (the original's version is not recorded)",
    )
    workers: int = setting(0, "augmentation", "augmentation threads", shown="0 = min(4, CPU cores)")
    # LR range test (with lr_max None, or `python -m jaxcifar.lr_range`)
    lr_range_start: float = setting(1e-4, "LR range test", "first LR of the sweep")
    lr_range_end: float = setting(0.1, "LR range test", "last LR of the sweep")
    lr_range_iters: int = setting(
        980, "LR range test", "sweep length in steps (10 epochs of 98 batches in the original)"
    )
    lr_range_mode: str = setting("exp", "LR range test", "spacing of the sweep's LRs")
    lr_range_rule: str = setting(
        "plateau",
        "LR range test",
        "how LR_MAX is picked from the sweep; plateau: the geometric middle of the LRs whose smoothed accuracy is "
        "within 5% of its peak, the pick that moves least from one CPU to another (docs/lr_range.md)",
    )
    lr_range_smoothing: float = setting(0.05, "LR range test", "EMA factor of the smoothed curves")
    lr_range_diverge: float = setting(4.0, "LR range test", "stop when the smoothed loss exceeds this x its best")
    lr_range_json: str | None = setting(
        None, "schedule and training", "reuse the LR range test in this lr_range.json instead of running one",
        shown="none",
    )  # fmt: skip
    lr_range_partial: bool = setting(
        False, "schedule and training", "accept an --lr-range-json sweep that was stopped early or is too short "
        "for the rules' trimming (refused otherwise)",
    )  # fmt: skip
    # Run
    seed: int = setting(0, "run", "seed of initialisation, data order and augmentation")
    out: str | None = setting(None, "run", "output folder", shown="runs/<timestamp>")
    resume: bool = setting(
        False,
        "schedule and training",
        "continue the run in --out from its latest checkpoint; only these may differ from the run's settings: "
        + ", ".join("--" + k.replace("_", "-") for k in RESUMABLE),
    )
    checkpoint_every: int = setting(
        1, "schedule and training", "epochs between checkpoints, 0 = only the last (and on Ctrl-C)"
    )
    gradcam: bool = setting(True, "schedule and training", "draw the Grad-CAM figures at the end of the run")
    tta: bool = setting(
        False,
        "schedule and training",
        "also evaluate with flip test-time augmentation (2x eval cost); the plain accuracy stays the headline",
    )
    progress: bool = setting(True, "run", "a progress bar per epoch")
    tensorboard: bool = setting(
        False,
        "run",
        "also write TensorBoard event files to OUT/tensorboard (per epoch: metrics.json's columns; per step: "
        "loss, accuracy, LR), through tensorboardX (pip install 'jaxcifar[tensorboard]')",
    )
    # Presets
    recipe: str = setting(
        "original",
        "run",
        "preset: original (EVA4 S11, the defaults) or cifar10-fast (Page: Nesterov, weight decay 5e-4, "
        "logits x 0.125, LR 0 -> 0.4 -> 0); flags given beside it win",
    )
    quick: bool = setting(
        False,
        "run",
        "a first try in minutes on a CPU: "
        + ", ".join(f"{k.replace('_', '-')} {v}" for k, v in QUICK.items())
        + f", peak at epoch {QUICK['epochs'] * PEAK_FRACTION:.3g} (so it tests on {QUICK['n_test']:,} of the "
        "10,000 test images: a smoke test, not a result); flags given beside it win",
    )
    overrides: tuple[str, ...] = setting((), None)  # preset settings this config changes (given beside the preset)
    from_config: str | None = setting(
        None,
        "run",
        "repeat a run: start a new one with the settings of its config.json (RUN/config.json), the flags given "
        "beside it winning; devices, threads and --out are this run's own",
        aliases=("--config",),
        shown="none",
    )
    changed: tuple[str, ...] = setting((), None)  # with from_config: the settings given over that run's
    # Devices and processes
    devices: int | None = setting(
        None, "devices and processes", "use the first N devices", shown="all; the batch is split over them"
    )
    distributed: bool = setting(False, "devices and processes", "multi-process run with jax.distributed")
    coordinator: str | None = setting(
        None, "devices and processes", "host:port of process 0", shown="$JAX_COORDINATOR_ADDRESS or the cluster's"
    )
    num_processes: int | None = setting(
        None, "devices and processes", "processes in the run", shown="from the environment"
    )
    process_id: int | None = setting(
        None, "devices and processes", "this process's index, 0..num_processes-1", shown="from the environment"
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "overrides", tuple(self.overrides))
        object.__setattr__(self, "changed", tuple(self.changed))
        self._check_numbers()
        self._check_choices()
        self._check_presets()
        if self.lr_max is not None and self.lr_min is None and self.lr_min_rule != "div" and not self.lr_range_json:
            raise ValueError(
                f"lr-min-rule {self.lr_min_rule} reads an LR range test: use --lr-max auto or --lr-range-json, "
                "or give --lr-min"
            )
        if self.resume and self.out is None:
            raise ValueError("--resume continues the run in --out: name its folder with --out runs/NAME")

    def _check_numbers(self) -> None:
        def flag(name: str) -> str:
            return name.replace("_", "-")

        for name in ("width", "epochs", "batch_size", "lr_range_start", "lr_range_end", "logit_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{flag(name)} must be positive, got {getattr(self, name)}")
        for name in ("n_train", "n_test", "devices", "num_processes"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise ValueError(f"{flag(name)} must be positive, got {getattr(self, name)}")
        for name in ("seed", "workers", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{flag(name)} must be >= 0, got {getattr(self, name)}")
        if self.process_id is not None and self.process_id < 0:
            raise ValueError(f"process-id must be >= 0, got {self.process_id}")
        if self.lr_max is not None and not self.lr_max > 0:
            raise ValueError(f"lr-max must be positive, got {self.lr_max}")
        if self.lr_min is not None and not self.lr_min >= 0:  # LR_MIN 0: cifar10-fast's 0 -> 0.4 -> 0
            raise ValueError(f"lr-min must be >= 0, got {self.lr_min}")
        if self.lr_max is not None and self.lr_min is not None and self.lr_min > self.lr_max:
            raise ValueError(f"lr-min ({self.lr_min}) must not exceed lr-max ({self.lr_max})")
        if not 0 < self.peak < self.epochs:
            raise ValueError(f"peak-epoch must lie strictly between 0 and epochs={self.epochs}, got {self.peak}")
        if not self.lr_div > 1:
            raise ValueError(f"lr-div must exceed 1 (LR_MIN = LR_MAX / lr-div), got {self.lr_div}")
        if not 0 < self.lr_min_fraction < 1:
            raise ValueError(f"lr-min-fraction must be in (0, 1), got {self.lr_min_fraction}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ValueError(f"weight-decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label-smoothing must be in [0, 1), got {self.label_smoothing}")
        try:
            _ = self.augmentation
        except ValueError as e:  # flip-prob outside [0, 1], cutout outside 0..32, ...
            message = str(e)
            for name in ("flip_prob", "cutout_prob", "cutout_placement"):  # as the flags spell them
                message = message.replace(name, name.replace("_", "-"))
            raise ValueError(message) from None
        if self.lr_range_start >= self.lr_range_end:
            raise ValueError(
                "the LR range test sweeps upwards: "
                f"lr-range-start ({self.lr_range_start}) must be below lr-range-end ({self.lr_range_end})"
            )
        if self.lr_range_iters < 2:
            raise ValueError(f"the LR range test needs lr-range-iters >= 2, got {self.lr_range_iters}")
        if not 0 < self.lr_range_smoothing <= 1:
            raise ValueError(f"lr-range-smoothing must be in (0, 1], got {self.lr_range_smoothing}")
        if self.lr_range_diverge <= 1:
            raise ValueError(f"lr-range-diverge must exceed 1, got {self.lr_range_diverge}")

    def _check_choices(self) -> None:
        for name, choices in CHOICES.items():
            value = getattr(self, name)
            if value is not None and value not in choices:
                raise ValueError(f"{name.replace('_', '-')} must be one of {choices}, got {value!r}")

    def _check_presets(self) -> None:
        preset = presets(self.recipe, self.quick)
        if stray := sorted(set(self.overrides) - set(preset)):
            raise ValueError(f"overrides {stray} are not settings of recipe {self.recipe!r} or quick={self.quick}")
        for name, value in preset.items():
            if name not in self.overrides and getattr(self, name) != value:
                raise ValueError(
                    f"{'--quick' if name in QUICK and self.quick else f'recipe {self.recipe!r}'} sets "
                    f"{name}={value!r}, but this config has {name}={getattr(self, name)!r}. Build presets with "
                    f"TrainConfig.create(recipe=..., quick=..., {name}=...): settings given there win and are "
                    "recorded in overrides."
                )

    @classmethod
    def create(cls, recipe: str = "original", quick: bool = False, **settings: Any) -> TrainConfig:
        """A config from presets and settings: `settings` over `recipe` over `quick` over the defaults.

        Settings that change a preset's value are recorded in `overrides`.
        """
        if recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {tuple(RECIPES)}, got {recipe!r}")
        preset = presets(recipe, quick)
        overrides = sorted(k for k, v in settings.items() if k in preset and v != preset[k])
        return cls(**{**preset, **settings, "recipe": recipe, "quick": quick, "overrides": tuple(overrides)})

    @property
    def peak(self) -> float:
        """Epochs until the LR peak: `peak_epoch`, or 5/24 of the run when it is None."""
        return self.peak_epoch if self.peak_epoch is not None else self.epochs * PEAK_FRACTION

    @property
    def augmentation(self) -> AugmentConfig:
        """The augmentation recipe of the run."""
        return AugmentConfig(
            flip_prob=self.flip_prob,
            cutout=self.cutout,
            cutout_prob=self.cutout_prob,
            cutout_placement=self.cutout_placement,
        )

    @property
    def augment_threads(self) -> int:
        """Augmentation threads: `workers`, or min(4, CPU cores) when it is 0.

        One thread makes about 70,000 images/s (NumPy path); a 24-epoch run in
        10 s on a GPU needs 120,000 images/s.
        """
        return self.workers or min(4, os.cpu_count() or 1)

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "overrides": list(self.overrides), "changed": list(self.changed)}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> TrainConfig:
        """The config of a config.json written by jaxcifar at commit 507796b or later (the oldest run folders
        this version reads: the delivered width-64 runs among them).

        Raises:
          ValueError: a key this version does not know, or one it needs that the file lacks.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        if unknown := sorted(set(obj) - known):
            raise ValueError(f"unknown config keys {unknown}: this config.json comes from another version")
        if missing := sorted(known - set(obj)):
            raise ValueError(
                f"config keys {missing} are missing: this config.json was written before commit 507796b (the "
                "oldest runs this version reads) or edited; continue that run with the version that started it"
            )
        return cls(**obj)


def presets(recipe: str, quick: bool) -> dict[str, Any]:
    """The settings a recipe (and --quick) give, the recipe winning where both set one."""
    return {**(QUICK if quick else {}), **RECIPES.get(recipe, {})}
