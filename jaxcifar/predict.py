"""A trained run on your own images: load it, and predict classes, from Python or the command line.

    python -m jaxcifar.predict --run runs/r1 photo.jpg more.png     # each image's top 3 classes
    python -m jaxcifar.predict --run runs/r1 --json photo.jpg       # the same, as JSON

From Python:

    from jaxcifar import load_run, predict
    run = load_run("runs/r1")                                # its best checkpoint (which="latest")
    probabilities = predict(run.model, run.variables, images)  # uint8 images of any size

An image of another size is resized to 32x32 whole (squashed, not cropped, as the
CIFAR-10 images were made from larger photos): `jax.image.resize`, bilinear with
antialiasing, then rounded to uint8 as an image file stores it, then normalised as in
training. Grey, palette and RGBA files are converted to RGB (an alpha channel is
dropped). The network runs in float32 whatever the run trained in.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, UnidentifiedImageError

from jaxcifar import checkpoint as checkpoint_lib
from jaxcifar import flags, records
from jaxcifar import steps as steps_lib
from jaxcifar.config import TrainConfig
from jaxcifar.data import CLASS_NAMES, IMAGE_SHAPE
from jaxcifar.errors import UsageError, entry_point
from jaxcifar.model import ResNet9


class Loaded(NamedTuple):
    """A run's network, ready to use: `model.apply(variables, images, train=False)`."""

    model: ResNet9
    variables: dict  # {"params", "batch_stats"}
    config: TrainConfig  # the run's settings, as its config.json holds them
    checkpoint: str  # "best" or "latest"


def eval_model(config: TrainConfig) -> ResNet9:
    """The run's network in float32 with Flax's layers (any run's variables fit it: the kernels differ
    only in how they compute)."""
    return ResNet9(width=config.width, dtype=jnp.float32, logit_scale=config.logit_scale)


def load_run(run: str | Path, which: str = "best") -> Loaded:
    """The network of a run folder written by `python -m jaxcifar.train`, at its best or latest checkpoint.

    Raises:
      FileNotFoundError: `run` holds no config.json, or no such checkpoint.
      ValueError: the checkpoint is damaged or does not fit the run's settings.
    """
    run = Path(run)
    if not (run / "config.json").is_file():
        raise FileNotFoundError(f"{run / 'config.json'} not found: --run must be a folder written by jaxcifar.train")
    config = TrainConfig.from_json(records.read_json(run / "config.json")["config"])
    return Loaded(
        eval_model(config), checkpoint_lib.load_variables(run, steps_lib.state_shapes(config), which), config, which
    )


def to_cifar_size(image: np.ndarray) -> np.ndarray:
    """uint8[32, 32, 3] from uint8[H, W, 3]: resized whole, bilinear with antialiasing, rounded."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"an image must be uint8[H, W, 3] (RGB), got {image.dtype}{list(image.shape)}")
    if image.shape == IMAGE_SHAPE:
        return image
    resized = jax.image.resize(jnp.asarray(image, jnp.float32), IMAGE_SHAPE, "linear", antialias=True)
    return np.asarray(jnp.clip(jnp.round(resized), 0, 255)).astype(np.uint8)


def read_image(path: str | Path) -> np.ndarray:
    """uint8[H, W, 3] of an image file (PNG, JPEG, ... as PIL reads them), converted to RGB.

    Raises:
      FileNotFoundError: no such file. UsageError: not an image, or a damaged one (the file named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image file")
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")  # grey, palette, RGBA, CMYK: as RGB (PIL drops alpha)
    except UnidentifiedImageError:
        raise UsageError(f"{path}: not an image file that PIL can read (PNG, JPEG, BMP, GIF, WebP, ...)") from None
    except (OSError, SyntaxError) as e:  # PIL reports a truncated file as OSError, a damaged header as SyntaxError
        raise UsageError(f"{path}: a damaged or truncated image ({e})") from None
    return np.asarray(rgb, dtype=np.uint8)


def cifar_batch(images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """uint8[N, 32, 32, 3] from one array of such images or a list of images of any sizes."""
    if isinstance(images, np.ndarray) and images.ndim == 4 and images.shape[1:] == IMAGE_SHAPE:
        if images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (0..255), got {images.dtype}")
        return images
    return (
        np.stack([to_cifar_size(image) for image in images]) if len(images) else np.zeros((0, *IMAGE_SHAPE), np.uint8)
    )


def predict(model: ResNet9, variables: dict, images: np.ndarray | Sequence[np.ndarray], batch: int = 500) -> np.ndarray:
    """float32[N, 10] class probabilities of uint8 images (uint8[N, 32, 32, 3], or a list of any sizes).

    The softmax of the network's logits (with the run's logit scale, as its loss saw them).
    """
    return np.asarray(jax.nn.softmax(steps_lib.logits(model, variables, cifar_batch(images), batch), axis=-1))


def top_k(probabilities: np.ndarray, k: int = 3, names: Sequence[str] = CLASS_NAMES) -> list[list[tuple[str, float]]]:
    """Per image, its k most likely classes as (name, probability), the likeliest first."""
    order = np.argsort(-probabilities, axis=-1, kind="stable")[:, :k]
    return [[(names[c], float(p[c])) for c in row] for p, row in zip(probabilities, order)]


@entry_point
def main(argv: Sequence[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m jaxcifar.predict", description=__doc__.splitlines()[0])
    flags.add_version(parser)
    parser.add_argument("images", nargs="+", type=Path, help="image files (PNG, JPEG, ...; any size)")
    parser.add_argument("--run", required=True, type=Path, help="a run folder written by jaxcifar.train (required)")
    parser.add_argument(
        "--checkpoint", choices=("best", "latest"), default="best", help="which checkpoint of the run (default: best)"
    )
    parser.add_argument("--top", type=int, default=3, help="classes shown per image, 1..10 (default: 3)")
    parser.add_argument("--json", action="store_true", help="print JSON, one object per image (default: text)")
    args = parser.parse_args(argv)
    if not 1 <= args.top <= len(CLASS_NAMES):
        parser.error(f"--top must be in 1..{len(CLASS_NAMES)}, got {args.top}")
    images = [read_image(path) for path in args.images]  # every file checked before the network loads
    loaded = load_run(args.run, args.checkpoint)
    best = top_k(predict(loaded.model, loaded.variables, images), args.top)
    rows = [
        {"image": str(path), "size": list(image.shape[:2]), "top": [{"class": c, "probability": p} for c, p in row]}
        for path, image, row in zip(args.images, images, best)
    ]
    for row in rows:
        if args.json:
            print(json.dumps(row))
        else:
            shown = ", ".join(f"{t['class']} {100 * t['probability']:.1f}%" for t in row["top"])
            print(f"{row['image']}: {shown}")
    return rows


if __name__ == "__main__":
    main()
