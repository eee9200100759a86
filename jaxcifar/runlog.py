"""What a run records while it trains: the per-step log, one row per epoch, the summary.

`RunLog` is written to a run's metrics.json after every epoch (and before every
checkpoint) and read back on resume, cut to the checkpoint's position, so that a
resumed run records exactly what an uninterrupted one would. `epoch_line` is the line
the driver prints per epoch.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxcifar import records
from jaxcifar.config import TrainConfig
from jaxcifar.errors import UsageError

STEP_KEYS = ("lr", "loss", "accuracy")
CSV = "metrics.csv"  # beside metrics.json: its per-epoch table


@dataclasses.dataclass(frozen=True)
class Position:
    """Where training stands: `epoch` epochs done, then `batch` batches of the next."""

    epoch: int
    batch: int
    step: int  # the global step: epoch * steps_per_epoch + batch


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
        """metrics.json at `path`, and beside it metrics.csv: a row per finished epoch, metrics.json's epoch
        columns after the epoch's number (from 1), for spreadsheets and pandas."""
        records.write_json(path, {"epochs": self.history, "steps": self.steps, "steps_per_epoch": self.steps_per_epoch})
        table = io.StringIO()
        writer = csv.writer(table, lineterminator="\n")
        writer.writerow(["epoch", *self.history])
        writer.writerows([k + 1, *row] for k, row in enumerate(zip(*self.history.values())))
        with records.atomic_open(path.with_name(CSV), "w") as f:
            f.write(table.getvalue())

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
            "seed": config.seed,
            "train_seconds": train_seconds,
            "eval_seconds": float(np.sum(h["eval_seconds"])),
            "images_per_second": images / train_seconds if train_seconds else None,
            **extra,
        }


TENSORBOARD = "tensorboard"  # in the run folder, with --tensorboard: the event files


class TensorBoard:
    """A run's TensorBoard event files (OUT/tensorboard), written by tensorboardX.

    tensorboardX writes the event format without TensorFlow (flax.metrics.tensorboard and clu's
    writers import TensorFlow, a 500 MB dependency for a few scalars; torch.utils.tensorboard needs
    torch), is maintained, and is what TensorBoard itself reads. Per finished epoch, each of
    metrics.json's columns as `epoch/<name>` at the epoch's number; per step, `step/loss`,
    `step/accuracy` and `step/lr` at the global step. A resumed run adds a file from where it resumed.
    """

    def __init__(self, folder: Path) -> None:
        from tensorboardX import SummaryWriter  # here: only --tensorboard needs it (checked before the run)

        self.writer = SummaryWriter(logdir=str(folder), flush_secs=30)

    def epoch(self, log: RunLog, epoch: int) -> None:
        """Epoch `epoch` (from 0, finished) of `log`: its row, and its steps."""
        for k, v in log.epoch_steps(epoch).items():
            for i, value in enumerate(v):
                self.writer.add_scalar(f"step/{k}", value, epoch * log.steps_per_epoch + i + 1)
        for k, column in log.history.items():
            self.writer.add_scalar(f"epoch/{k}", column[epoch], epoch + 1)
        self.writer.flush()  # a long run can be watched as it trains

    def close(self) -> None:
        self.writer.close()


def check_tensorboard() -> None:
    """Raises UsageError where tensorboardX is not installed (before a run starts)."""
    if importlib.util.find_spec("tensorboardX") is None:
        raise UsageError("--tensorboard needs tensorboardX: pip install 'jaxcifar[tensorboard]' (or tensorboardX)")


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
