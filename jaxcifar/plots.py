"""Every figure jaxcifar draws, from arrays and run files.

Figures are built with matplotlib's object API (`matplotlib.figure.Figure`, no
pyplot state and no backend switch, so notebooks keep their inline backend),
written atomically as PNG, and returned so a notebook can show them. This module
never imports `train`: it draws what runs have recorded.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from jaxcifar.records import atomic_open

DPI = 120


def run_tag(width: int, n_train: int, batch_size: int, device_kind: str, epochs: int | None = None) -> str:
    """What a figure was measured on, for its title: a CPU demo must not pass for the real run."""
    ran = f", {epochs} epochs" if epochs is not None else ""
    return f"ResNet-9 width {width}, {n_train:,} train images, batch {batch_size}{ran}, {device_kind}"


def run_figures(
    out: str | os.PathLike,
    history: Mapping[str, Sequence[float]],
    step_lrs: Sequence[float],
    steps_per_epoch: int,
    tag: str,
) -> list[Path]:
    """A training run's figures in `out`: accuracy.png, loss_accuracy.png, one_cycle.png (the LR used)."""
    out = Path(out)
    paths = [out / "accuracy.png", out / "loss_accuracy.png", out / "one_cycle.png"]
    accuracy(history, paths[0], title=f"Accuracy per epoch\n{tag}")
    loss_accuracy(history, paths[1], title=tag)
    one_cycle(step_lrs, steps_per_epoch, paths[2], title=f"Learning rate used, per step\n{tag}")
    return paths


def save(fig: Figure, path: str | os.PathLike) -> Figure:
    """Writes `fig` as a PNG atomically (folders created) and returns it."""
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=DPI, bbox_inches="tight")
    return fig


def augmented_samples(
    originals: np.ndarray,
    copies: np.ndarray,
    labels: Sequence[str],
    path: str | os.PathLike,
    title: str = "",
) -> Figure:
    """One row per image: the original, then its augmented copies.

    Args:
      originals: uint8[N, 32, 32, 3].
      copies: float[N, K, 32, 32, 3] in [0, 1] (denormalised augmentations).
      labels: N class names.
    """
    n, k = copies.shape[:2]
    fig = Figure(figsize=(1.3 * (k + 1), 1.35 * n + 0.4), layout="constrained")
    axes = fig.subplots(n, k + 1, squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(originals[i])
        axes[i, 0].set_ylabel(labels[i], rotation=0, ha="right", va="center", fontsize=9)
        for j in range(k):
            axes[i, j + 1].imshow(copies[i, j])
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("original", fontsize=9)
    for j in range(k):
        axes[0, j + 1].set_title(f"augmented {j + 1}", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return save(fig, path)


def one_cycle(
    lrs: Sequence[float],
    steps_per_epoch: int,
    path: str | os.PathLike,
    title: str = "One-cycle learning rate",
) -> Figure:
    """LR against step, with epochs marked on a second axis; peak and ends labelled."""
    lrs = np.asarray(lrs, dtype=np.float64)
    steps = np.arange(len(lrs))
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    ax.plot(steps, lrs, color="tab:blue", lw=2)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_xlim(0, len(lrs))  # to the end of the last epoch
    ax.set_ylim(0, lrs.max() * 1.15)
    ax.grid(alpha=0.3)
    peak = int(np.argmax(lrs))
    for step, text, ha in (
        (0, f"start {lrs[0]:.4g}", "left"),
        (peak, f"peak {lrs[peak]:.4g}\nstep {peak} (epoch {peak / steps_per_epoch:.3g})", "center"),
        (len(lrs) - 1, f"end {lrs[-1]:.4g}", "right"),
    ):
        ax.plot([step], [lrs[step]], "o", color="tab:red")
        ax.annotate(text, (step, lrs[step]), textcoords="offset points", xytext=(0, 8), ha=ha, fontsize=9)
    top = ax.secondary_xaxis("top", functions=(lambda s: s / steps_per_epoch, lambda e: e * steps_per_epoch))
    top.set_xlabel("epoch")
    epochs = len(lrs) / steps_per_epoch
    if epochs <= 40:
        top.set_xticks(np.arange(0, int(np.floor(epochs)) + 1))
    ax.set_title(title)
    return save(fig, path)


def accuracy(history: Mapping[str, Sequence[float]], path: str | os.PathLike, title: str = "") -> Figure:
    """Train and test accuracy per epoch (history keys: train_accuracy, test_accuracy,
    and test_accuracy_tta where the run evaluated with flip TTA)."""
    epochs = np.arange(1, len(history["train_accuracy"]) + 1)
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    curves = [("train_accuracy", "train"), ("test_accuracy", "test"), ("test_accuracy_tta", "test, flip TTA")]
    for key, label in (c for c in curves if c[0] in history):
        values = 100 * np.asarray(history[key], dtype=np.float64)
        ax.plot(epochs, values, "o-", ms=3, label=f"{label} (best {np.nanmax(values):.2f}%)")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title or "Accuracy per epoch")
    return save(fig, path)


def compare_accuracy(
    curves: Mapping[str, Sequence[float]],
    path: str | os.PathLike,
    title: str = "",
    references: Collection[str] = (),
) -> Figure:
    """Test accuracy per epoch of several runs, one line each, labelled with the final value.

    Args:
      curves: {label: test accuracies in [0, 1], epoch 1 first}; a run stopped early
        has a shorter curve.
      references: labels of curves that are published figures, not our runs: drawn dashed.
    """
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    for label, accuracies in curves.items():
        values = 100 * np.asarray(accuracies, dtype=np.float64)
        epochs = np.arange(1, len(values) + 1)
        style = "o--" if label in references else "o-"
        ax.plot(epochs, values, style, ms=3, label=f"{label}: {values[-1]:.2f}% after epoch {len(values)}")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title or "Test accuracy per epoch")
    return save(fig, path)


def loss_accuracy(history: Mapping[str, Sequence[float]], path: str | os.PathLike, title: str = "") -> Figure:
    """The 2x2 figure: train loss, train accuracy, test loss, test accuracy per epoch."""
    epochs = np.arange(1, len(history["train_loss"]) + 1)
    fig = Figure(figsize=(11, 7.5), layout="constrained")
    axes = fig.subplots(2, 2)
    panels = (
        ("train_loss", "Training loss", 1.0),
        ("train_accuracy", "Training accuracy (%)", 100.0),
        ("test_loss", "Test loss", 1.0),
        ("test_accuracy", "Test accuracy (%)", 100.0),
    )
    for ax, (key, name, scale) in zip(axes.flat, panels):
        ax.plot(epochs, scale * np.asarray(history[key], dtype=np.float64), "o-", ms=3)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return save(fig, path)


def lr_range(
    lrs: np.ndarray,
    loss: np.ndarray,
    smoothed_loss: np.ndarray,
    acc: np.ndarray,
    smoothed_acc: np.ndarray,
    *,
    lr_min: float,
    lr_max: float,
    suggestions: Mapping[str, float],
    rule: str,
    path: str | os.PathLike,
    title: str = "",
    min_suggestions: Mapping[str, float | None] | None = None,
    min_rule: str = "div",
) -> Figure:
    """Loss and accuracy against LR (log axis), raw and smoothed.

    The chosen LR_MIN and LR_MAX are dashed lines in colour; every other rule's
    LR_MAX is a grey dotted line labelled at the bottom, and every other rule's
    LR_MIN (`min_suggestions`; None where a rule could not decide) a green dotted
    one labelled "min: rule".
    """
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    panels = (
        (ax_loss, loss, smoothed_loss, "training loss", 1.0),
        (ax_acc, acc, smoothed_acc, "training accuracy (%)", 100.0),
    )
    for ax, raw, smoothed, name, scale in panels:
        ax.plot(lrs, scale * raw, color="tab:blue", alpha=0.25, lw=1, label="per batch")
        ax.plot(lrs, scale * smoothed, color="tab:blue", lw=2, label="smoothed")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3, which="both")
        for value, text, color in ((lr_min, "LR_MIN", "tab:green"), (lr_max, "LR_MAX", "tab:red")):
            ax.axvline(value, color=color, ls="--", lw=1.5)
            ax.annotate(
                f"{text}\n{value:.4g}",
                (value, 0.97),
                xycoords=("data", "axes fraction"),
                color=color,
                ha="right",
                va="top",
                fontsize=9,
                xytext=(-3, 0),
                textcoords="offset points",
                bbox={"facecolor": "white", "alpha": 0.8, "lw": 0},
            )
        others = [(n, v, "gray", n) for n, v in suggestions.items() if n != rule]
        others += [(n, v, "tab:green", f"min: {n}") for n, v in (min_suggestions or {}).items() if n != min_rule]
        for _, value, color, label in others:
            if value is None:
                continue
            ax.axvline(value, color=color, ls=":", lw=1)
            ax.annotate(
                label,
                (value, 0.02),
                xycoords=("data", "axes fraction"),
                color=color,
                rotation=90,
                ha="right",
                va="bottom",
                fontsize=8,
            )
        ax.legend(loc="center left", fontsize=8)
    # Divergence makes the last losses huge: keep the interesting part in view.
    finite = smoothed_loss[np.isfinite(smoothed_loss)]
    if finite.size:
        ax_loss.set_ylim(0, min(float(np.nanmax(loss[np.isfinite(loss)])), 2.5 * float(finite[0])) * 1.05)
    ax_loss.set_title("Loss against learning rate")
    ax_acc.set_title(f"Accuracy against learning rate (LR_MAX: {rule}, LR_MIN: {min_rule})")
    if title:
        fig.suptitle(title, fontsize=10)
    return save(fig, path)


def image_grid(
    images: np.ndarray, titles: Sequence[str], path: str | os.PathLike, title: str = "", columns: int = 5
) -> Figure:
    """A grid of images (float [0, 1] or uint8, [N, H, W, 3]) with a title each."""
    n = len(images)
    rows = -(-n // columns)
    fig = Figure(figsize=(2.1 * columns, 2.3 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, text in zip(axes.flat, images, titles):
        ax.imshow(image)
        ax.set_title(text, fontsize=9)
    if title:
        fig.suptitle(title)
    return save(fig, path)


def gradcam_grid(
    images: np.ndarray,
    maps: Mapping[str, np.ndarray],
    titles: Sequence[str],
    layer_titles: Sequence[str],
    path: str | os.PathLike,
    title: str = "",
    alpha: float = 0.5,
) -> Figure:
    """One row per image: the image, then each layer's Grad-CAM over it (jet, alpha 0.5).

    Args:
      images: float[N, H, W, 3] in [0, 1].
      maps: {layer: float[N, H, W]} in [0, 1], in column order.
      titles: N row titles ("predicted / actual").
      layer_titles: a column title per layer.
    """
    n, k = len(images), len(maps)
    fig = Figure(figsize=(1.9 * (k + 1), 1.95 * n + 0.5), layout="constrained")
    axes = fig.subplots(n, k + 1, squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(images[i])
        axes[i, 0].set_title(titles[i], fontsize=8)
        for j, cams in enumerate(maps.values()):
            axes[i, j + 1].imshow(images[i])
            axes[i, j + 1].imshow(cams[i], cmap="jet", alpha=alpha, vmin=0.0, vmax=1.0)
            if i == 0:
                axes[i, j + 1].set_title(layer_titles[j], fontsize=9)
        for ax in axes[i]:
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return save(fig, path)


def gradcam_layer_grid(
    images: np.ndarray,
    maps: np.ndarray,
    titles: Sequence[str],
    layer_title: str,
    path: str | os.PathLike,
    title: str = "",
    columns: int = 5,
    alpha: float = 0.5,
) -> Figure:
    """One layer's Grad-CAM over each image, in a grid that fits a screen, with a colour bar.

    Args:
      images: float[N, H, W, 3] in [0, 1].
      maps: float[N, H, W] in [0, 1], the layer's maps.
      titles: N image titles ("predicted / actual").
      layer_title: the layer's name, for the colour bar.
    """
    n = len(images)
    rows = -(-n // columns)
    fig = Figure(figsize=(2.0 * columns + 0.9, 2.15 * rows + 0.5), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    shown = None
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, cam, text in zip(axes.flat, images, maps, titles):
        ax.imshow(image)
        shown = ax.imshow(cam, cmap="jet", alpha=alpha, vmin=0.0, vmax=1.0)
        ax.set_title(text, fontsize=8)
    if shown is not None:
        fig.colorbar(shown, ax=axes, shrink=0.6, label=f"Grad-CAM, {layer_title}")
    if title:
        fig.suptitle(title, fontsize=10)
    return save(fig, path)
