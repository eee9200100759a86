"""Grad-CAM with jax.grad, and the figures of misclassified test images.

    python -m jaxcifar.gradcam --run runs/NAME                     # 25 misclassified test images
    python -m jaxcifar.gradcam --run runs/NAME --image photo.jpg   # your own image, its predicted class
    python -m jaxcifar.gradcam --run runs/NAME --image a.png --class cat   # ... or the class named

Grad-CAM (Selvaraju et al., 2017, arXiv:1610.02391): for a target class c and
a layer's activations A (H x W x K), the channel weights are the spatial means
of the gradient, w_k = mean_{h,w} dy_c / dA_{h,w,k}; the map is
ReLU(sum_k w_k A_k), upsampled bilinearly to the input size and min-max scaled
to [0, 1] per image (an all-zero map stays zero).

The gradient is taken with `jax.grad` through the model in eval mode, with
respect to the zero "perturbations" that ResNet9 adds at its named activations
(layer1_out, res1_out, layer3_out, res2_out): d(score)/d(perturbation) equals
d(score)/d(activation), and without the perturbations collection the forward
pass is unchanged. No hooks, so nothing leaks, and every image in a batch can
have its own target. Summing the target scores over the batch gives each image
its own gradient, since in eval mode images do not interact.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

from jaxcifar import flags, plots, records, startup
from jaxcifar import steps as steps_lib
from jaxcifar.augment import AugmentConfig, denormalize, normalize
from jaxcifar.data import CIFAR10, CLASS_NAMES
from jaxcifar.errors import UsageError, entry_point
from jaxcifar.loader import load_data
from jaxcifar.model import GRADCAM_LAYERS, LAYER_TITLES, ResNet9
from jaxcifar.predict import load_run, predict, read_image, to_cifar_size

CHUNK = 256  # images per Grad-CAM call: bounds memory on any device


@dataclasses.dataclass(frozen=True)
class GradCAM:
    """Grad-CAM of a batch of N images.

    Attributes:
      maps: {layer: float32[N, 32, 32]} in [0, 1].
      weights: {layer: float32[N, K]} the channel weights w_k.
      raw: {layer: float32[N, H, W]} ReLU(sum_k w_k A_k) at the layer's resolution.
      logits: float32[N, classes].
      targets: int32[N] the class each map explains.
    """

    maps: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]
    raw: dict[str, np.ndarray]
    logits: np.ndarray
    targets: np.ndarray


def _scale01(cam: jax.Array) -> jax.Array:
    """Min-max to [0, 1] per image; a constant map (e.g. all zero) becomes zeros."""
    lo = cam.min(axis=(1, 2), keepdims=True)
    hi = cam.max(axis=(1, 2), keepdims=True)
    span = hi - lo
    return jnp.where(span > 1e-12, (cam - lo) / jnp.where(span > 1e-12, span, 1.0), 0.0)


@functools.partial(jax.jit, static_argnames=("model", "use_targets"))
def _gradcam(model: ResNet9, variables: dict, images: jax.Array, targets: jax.Array, use_targets: bool):
    shapes = jax.eval_shape(
        lambda: model.apply(variables, images, train=False, mutable=["intermediates"])[1]["intermediates"]
    )
    zeros = {name: jnp.zeros(s.shape, jnp.float32) for name, s in shapes.items()}

    def score(perturbations):
        logits, state = model.apply(
            {**variables, "perturbations": perturbations}, images, train=False, mutable=["intermediates"]
        )
        chosen = targets if use_targets else jnp.argmax(jax.lax.stop_gradient(logits), axis=-1)
        total = jnp.take_along_axis(logits, chosen[:, None], axis=1).sum()
        return total, (logits, chosen, state["intermediates"])

    grads, (logits, chosen, acts) = jax.grad(score, has_aux=True)(zeros)
    out_size = images.shape[1:3]
    maps, weights, raw = {}, {}, {}
    for name in GRADCAM_LAYERS:
        a = acts[name].astype(jnp.float32)
        w = grads[name].mean(axis=(1, 2))  # [N, K]
        cam = jax.nn.relu(jnp.einsum("nhwk,nk->nhw", a, w))
        up = jax.image.resize(cam, (cam.shape[0], *out_size), method="bilinear")
        maps[name], weights[name], raw[name] = _scale01(up), w, cam
    return maps, weights, raw, logits, chosen


def gradcam(
    model: ResNet9,
    variables: dict,
    images: np.ndarray | jax.Array,
    targets: np.ndarray | None = None,
) -> GradCAM:
    """Grad-CAM of every named layer for a batch of normalised images.

    Args:
      model: the network (use float32 compute for exact maps).
      variables: {'params', 'batch_stats'}.
      images: float32[N, 32, 32, 3], normalised as for training.
      targets: int[N] classes to explain; None explains the predicted classes.

    Returns:
      A GradCAM with maps {layer: float32[N, 32, 32]} in [0, 1].
    """
    images = jnp.asarray(images, jnp.float32)
    n = images.shape[0]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"gradcam expects images float32[N, H, W, 3], got shape {images.shape}")
    use_targets = targets is not None
    t = jnp.zeros(n, jnp.int32) if targets is None else jnp.asarray(targets, jnp.int32)
    if use_targets and t.shape != (n,):
        raise ValueError(f"targets must have shape ({n},), got {t.shape}")
    variables = {"params": variables["params"], "batch_stats": variables["batch_stats"]}
    parts = [
        jax.device_get(_gradcam(model, variables, images[i : i + CHUNK], t[i : i + CHUNK], use_targets))
        for i in range(0, n, CHUNK)
    ]
    joined = jax.tree.map(lambda *x: np.concatenate(x), *parts)
    maps, weights, raw, logits, chosen = joined
    # Pytrees come back with sorted keys: restore the layer order of the figures.
    maps, weights, raw = ({name: d[name] for name in GRADCAM_LAYERS} for d in (maps, weights, raw))
    return GradCAM(maps, weights, raw, logits, chosen)


def predict_classes(model: ResNet9, variables: dict, images: np.ndarray, batch: int = 500) -> np.ndarray:
    """int[N] predicted classes of uint8 images (normalised here), in batches."""
    return np.argmax(steps_lib.logits(model, variables, images, batch), axis=-1)


def pick_misclassified(
    predicted: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator | None
) -> np.ndarray:
    """Indices of up to `count` misclassified images: the first ones, or random ones with `rng`."""
    wrong = np.flatnonzero(predicted != labels)
    if rng is not None and len(wrong) > count:
        return np.sort(rng.choice(wrong, size=count, replace=False))
    return wrong[:count]


def run_on(
    run: str | Path,
    ds: CIFAR10 | None = None,
    *,
    out: str | Path | None = None,
    checkpoint: str = "best",
    count: int = 25,
    seed: int | None = None,
    target: str = "predicted",
    data: str | None = None,
    layer: str = "layer1_out",
) -> dict:
    """Grad-CAM figures for a run folder: gradcam_misclassified.png, misclassified.png, gradcam_grid.png.

    Args:
      run: a folder written by `python -m jaxcifar.train`.
      ds: the data (default: loaded as the run's config.json says).
      out: where the figures go (default: the run folder).
      checkpoint: "best" or "latest".
      count: how many misclassified test images (the first ones, or random with `seed`).
      target: "predicted" or "true": the class each map explains.
      data: a data source to use instead of the run's (same test subset).
      layer: the layer of gradcam_grid.png, the compact figure (one of GRADCAM_LAYERS).

    Returns:
      {"indices", "predicted", "labels", "paths"} of what was drawn.
    """
    run = Path(run)
    # float32 compute whatever the run used: Grad-CAM maps are small differences of large numbers.
    model, variables, config, _ = load_run(run, checkpoint)
    saved = records.read_json(run / "config.json")
    if ds is None:
        ds = load_data(dataclasses.replace(config, data=data or config.data))
    predicted = predict_classes(model, variables, ds.test_images)
    rng = np.random.default_rng(seed) if seed is not None else None
    idx = pick_misclassified(predicted, ds.test_labels, count, rng)
    out = Path(out) if out else run
    if len(idx) == 0:
        print(f"Grad-CAM: no misclassified test images among {len(ds.test_labels)}; no figures drawn.")
        return {"indices": [], "predicted": [], "labels": [], "paths": []}
    augment = AugmentConfig()
    normalised = normalize(ds.test_images[idx], augment)
    result = gradcam(model, variables, normalised, ds.test_labels[idx] if target == "true" else None)
    names = ds.class_names
    titles = [f"{names[p]} / {names[a]}" for p, a in zip(predicted[idx], ds.test_labels[idx])]
    shown = denormalize(normalised, augment)
    paths = [out / "gradcam_misclassified.png", out / "misclassified.png", out / "gradcam_grid.png"]
    tag = plots.run_tag(
        config.width, len(ds.train_labels), config.batch_size, saved.get("device_kind", "?"), config.epochs
    )
    plots.gradcam_grid(
        shown,
        result.maps,
        titles,
        [LAYER_TITLES[n] for n in GRADCAM_LAYERS],
        paths[0],
        title=f"Grad-CAM of the {target} class (predicted / actual), {checkpoint} checkpoint\n{tag}",
    )
    plots.image_grid(shown, titles, paths[1], title=f"Misclassified test images (predicted / actual)\n{tag}")
    plots.gradcam_layer_grid(
        shown,
        result.maps[layer],
        titles,
        LAYER_TITLES[layer],
        paths[2],
        title=f"Grad-CAM of the {target} class after {LAYER_TITLES[layer]} (predicted / actual)\n{tag}",
    )
    print(f"Grad-CAM: wrote {', '.join(str(p) for p in paths)} ({len(idx)} misclassified images)")
    return {
        "indices": idx.tolist(),
        "predicted": predicted[idx].tolist(),
        "labels": ds.test_labels[idx].tolist(),
        "paths": [str(p) for p in paths],
    }


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """uint8[H, W, 3]: a Grad-CAM map (float[H, W] in [0, 1]) in matplotlib's jet over an image (uint8[H, W, 3]),
    `alpha` of the colour from the map; to show in a notebook (`plt.imshow`) or save."""
    colour = matplotlib.colormaps["jet"](np.clip(cam, 0.0, 1.0))[..., :3]
    mixed = (1 - alpha) * np.asarray(image, np.float64) / 255 + alpha * colour
    return np.round(255 * mixed).astype(np.uint8)


def run_on_images(
    run: str | Path,
    paths: Sequence[str | Path],
    *,
    out: str | Path | None = None,
    checkpoint: str = "best",
    target: str | None = None,
) -> dict:
    """Grad-CAM of your own image files, for the predicted class or the class named `target`.

    Each image (any size; grey or RGBA converted) is resized to 32x32 as `jaxcifar.predict`
    does; the figure gradcam_<file name>.png in `out` (default: the run folder) shows it and
    each layer's map over it.

    Returns:
      {"images", "predicted", "probabilities", "target", "paths"}.
    """
    if target is not None and target not in CLASS_NAMES:
        raise UsageError(f"--class {target}: not a CIFAR-10 class; one of {', '.join(CLASS_NAMES)}")
    images = np.stack([to_cifar_size(read_image(p)) for p in paths])  # every file checked before the network
    model, variables, config, _ = load_run(run, checkpoint)
    probabilities = predict(model, variables, images)
    predicted = probabilities.argmax(-1)
    targets = predicted if target is None else np.full(len(images), CLASS_NAMES.index(target))
    result = gradcam(model, variables, normalize(images), targets)
    out = Path(out) if out else Path(run)
    written = []
    for i, path in enumerate(paths):
        name = CLASS_NAMES[targets[i]]
        seen = f"{CLASS_NAMES[predicted[i]]} {100 * probabilities[i, predicted[i]]:.0f}%"
        figure = out / f"gradcam_{Path(path).stem}.png"
        plots.gradcam_grid(
            images[i : i + 1] / 255.0,
            {layer: maps[i : i + 1] for layer, maps in result.maps.items()},
            [f"{Path(path).name}: {seen}"],
            [LAYER_TITLES[n] for n in GRADCAM_LAYERS],
            figure,
            title=f"Grad-CAM of the class {name} ({checkpoint} checkpoint of {Path(run).name})",
        )
        written.append(str(figure))
    print(f"Grad-CAM: wrote {', '.join(written)}")
    return {
        "images": [str(p) for p in paths],
        "predicted": [CLASS_NAMES[c] for c in predicted],
        "probabilities": probabilities.tolist(),
        "target": [CLASS_NAMES[c] for c in targets],
        "paths": written,
    }


@entry_point
def main(argv: Sequence[str] | None = None) -> dict:
    """`python -m jaxcifar.gradcam --run runs/NAME`: Grad-CAM of misclassified test images."""
    startup.set_cpu_flags()  # XLA as the training command has it: YNNPACK off on the CPU
    parser = argparse.ArgumentParser(
        prog="python -m jaxcifar.gradcam",
        description="Draw Grad-CAM heat maps of misclassified test images for a finished training run.",
    )
    flags.add_version(parser)
    parser.add_argument("--run", required=True, help="a run folder written by python -m jaxcifar.train (required)")
    parser.add_argument("--out", help="folder for the figures (default: the run folder)")
    parser.add_argument(
        "--checkpoint", choices=("best", "latest"), default="best", help="which checkpoint of the run (default: best)"
    )
    parser.add_argument("--count", type=int, default=25, help="misclassified images to show (default: 25)")
    parser.add_argument(
        "--random",
        action="store_true",
        help="a seeded random choice of misclassified images instead of the first ones (default: off)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --random (default: 0)")
    parser.add_argument(
        "--target",
        choices=("predicted", "true"),
        default="predicted",
        help="the class each map explains (default: predicted)",
    )
    parser.add_argument("--data", help="the data source: tfds | download | PATH (default: the run's)")
    parser.add_argument(
        "--layer",
        choices=GRADCAM_LAYERS,
        default="layer1_out",
        help="the layer of the compact 5x5 figure gradcam_grid.png (default: layer1_out)",
    )
    parser.add_argument(
        "--image",
        nargs="+",
        type=Path,
        help="your own image files instead of the test set (any size; default: the misclassified test images)",
    )
    parser.add_argument(
        "--class",
        dest="target_class",
        choices=CLASS_NAMES,
        help="with --image: the class the maps explain (default: the predicted one)",
    )
    parser.add_argument("--force", action="store_true", help="replace the figures where they exist (default: off)")
    args = parser.parse_args(argv)
    if not 1 <= args.count <= 100:
        parser.error(f"--count must be in 1..100, got {args.count}")
    if args.target_class and not args.image:
        parser.error("--class applies to --image; for the test set, --target predicted|true")

    out = Path(args.out or args.run)
    if args.out:  # before the network is loaded: a file there, or a folder that cannot be written
        records.check_writable(out)
    names = [f"gradcam_{p.stem}.png" for p in args.image] if args.image else [
        "gradcam_misclassified.png", "misclassified.png", "gradcam_grid.png"
    ]  # fmt: skip
    try:
        records.refuse_overwrite(*(out / f for f in names), force=args.force)
    except FileExistsError as e:
        parser.error(str(e))
    if args.image:
        return run_on_images(args.run, args.image, out=args.out, checkpoint=args.checkpoint, target=args.target_class)
    return run_on(
        args.run,
        out=args.out,
        checkpoint=args.checkpoint,
        count=args.count,
        seed=args.seed if args.random else None,
        target=args.target,
        data=args.data,
        layer=args.layer,
    )


if __name__ == "__main__":
    main()
