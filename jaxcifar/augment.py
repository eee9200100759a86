"""The augmentation recipe: uint8 images and random choices in, normalised float batches out.

The recipe of the PyTorch original, per image and freshly random each epoch:

  1. pad 4 pixels on each side by reflection (40x40; edge pixels not repeated,
     OpenCV's BORDER_REFLECT_101 = NumPy's "reflect" = torchvision's "reflect");
  2. random crop 32x32 (offsets uniform in 0..8 on each axis; the original's
     albumentations drew 0..7 under 0.1.12, and its version is not recorded);
  3. horizontal flip with probability `flip_prob` (0.5; the original used 0.7);
  4. normalise per channel with the CIFAR-10 train mean and std (the original: 0.5, 0.5);
  5. Cutout: one 8x8 hole, filled with 0 after normalisation, in every image
     (`cutout_prob` 1, as the original's `Cutout(num_holes=1, max_h_size=8,
     max_w_size=8, p=1)`), whole inside it (`cutout_placement` "inside": top-left
     corner uniform in 0..24 on each axis, as albumentations 2's CoarseDropout and
     Page's cifar10-fast place it). "clip" draws the centre anywhere in 0..32 and
     clips the hole at every border, as albumentations 0.1.12's `Cutout` did (54.7
     pixels on average rather than 64; 0.4.6 clipped only at the bottom and right).

Test images are only normalised. Three implementations with the same distribution:

  numpy           (default) whole batches at once: pad, crop and flip are one
                  gather through precomputed indices, then one normalise pass.
                  About 80,000 images/s on one core of a 2-core CPU
                  (research/benchmark_augment.py), 5-6x albumentations.
  albumentations  an `A.Compose` of exactly the transforms above, image by image,
                  for users who know that library.
  device          the host draws what the numpy path draws and sends uint8
                  images with the draws; `augment_device.apply` does the pixel
                  work inside the jitted step (same images as numpy, bit for bit
                  up to float rounding of the normalisation).

Randomness is explicit: every function that draws takes an `np.random.Generator`
(`jaxcifar.loader` seeds one per batch). The crop's index arithmetic,
`source_indices`, serves both the NumPy and the device path.

This module imports no JAX.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Literal

import numpy as np

# Per-channel mean and std of the official CIFAR-10 training images (0..1 scale).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

Augmenter = Literal["numpy", "albumentations", "device"]
AUGMENTERS = ("numpy", "albumentations", "device")
CUTOUT_PLACEMENTS = ("inside", "clip")
HOST_AUGMENTERS = ("numpy", "albumentations")  # those that make float32 batches here


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """The augmentation recipe. Defaults are the seed recipe."""

    pad: int = 4  # pixels of reflection padding on each side
    flip_prob: float = 0.5  # probability of a horizontal flip
    cutout: int = 8  # side of the square hole; 0 disables Cutout
    cutout_prob: float = 1.0  # share of images that get a hole (the original: p=1, every image)
    cutout_placement: str = "inside"  # inside: whole in the image | clip: centre anywhere, clipped (see above)
    mean: tuple[float, float, float] = CIFAR10_MEAN  # per channel, 0..1 scale
    std: tuple[float, float, float] = CIFAR10_STD

    def __post_init__(self) -> None:
        if not 0 <= self.pad <= 16:
            raise ValueError(f"pad must be in 0..16 pixels, got {self.pad}")
        if not 0.0 <= self.flip_prob <= 1.0:
            raise ValueError(f"flip_prob must be a probability in [0, 1], got {self.flip_prob}")
        if not 0 <= self.cutout <= 32:
            raise ValueError(f"cutout must be a hole side in 0..32 pixels, got {self.cutout}")
        if not 0.0 <= self.cutout_prob <= 1.0:
            raise ValueError(f"cutout_prob must be a probability in [0, 1], got {self.cutout_prob}")
        if self.cutout_placement not in CUTOUT_PLACEMENTS:
            raise ValueError(f"cutout_placement must be one of {CUTOUT_PLACEMENTS}, got {self.cutout_placement!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std need 3 values each, std > 0; got {self.mean}, {self.std}")

    @property
    def scale(self) -> np.ndarray:
        """float32[3]: normalised = uint8 * scale + shift."""
        return (1.0 / (255.0 * np.asarray(self.std))).astype(np.float32)

    @property
    def shift(self) -> np.ndarray:
        return (-np.asarray(self.mean) / np.asarray(self.std)).astype(np.float32)


def normalize(images: np.ndarray, config: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """uint8[N, H, W, 3] -> float32[N, H, W, 3], (x / 255 - mean) / std."""
    _check_images(images)
    out = np.empty(images.shape, np.float32)
    np.multiply(images, config.scale, out=out)
    out += config.shift
    return out


def denormalize(images: np.ndarray, config: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """Inverse of `normalize`, for display: float32 -> float32 in [0, 1] (clipped)."""
    return np.clip(images * np.asarray(config.std) + np.asarray(config.mean), 0.0, 1.0).astype(np.float32)


def _reflect(index, size: int, xp=np):
    """Maps out-of-range indices back inside by reflection without repeating the edge."""
    period = 2 * (size - 1)
    index = xp.abs(index) % period
    return xp.where(index >= size, period - index, index)


def source_indices(dy, dx, flip, pad: int, height: int, width: int, xp=np):
    """Where each output pixel of pad-reflect, crop and flip comes from in the source image.

    Output pixel (r, c) of image i comes from padded (dy + r, dx + c'), with c' = c,
    or width-1-c when flipped; padded index q is source index reflect(q - pad).
    Shared by the NumPy path and `augment_device` (`xp` = numpy or jax.numpy).

    Args:
      dy, dx: int[N] crop offsets in the padded image; flip: bool or 0/1 [N].

    Returns:
      (rows int[N, height], cols int[N, width]): source row and column indices.
    """
    r, c = xp.arange(height)[None, :], xp.arange(width)[None, :]
    rows = _reflect(dy[:, None] + r - pad, height, xp)
    cols = _reflect(dx[:, None] + xp.where(flip[:, None] > 0, width - 1 - c, c) - pad, width, xp)
    return rows, cols


@dataclasses.dataclass(frozen=True)
class Draws:
    """The random choices of the recipe for a batch of N images (int arrays [N])."""

    dy: np.ndarray  # crop offset in the padded image, 0..2*pad
    dx: np.ndarray
    flip: np.ndarray  # bool
    # Cutout top-left corner: 0..32-cutout ("inside"), -(cutout//2)..32-cutout+cutout//2
    # ("clip": the part inside the image is cut), or -cutout (no hole: cutout_prob).
    hole_y: np.ndarray
    hole_x: np.ndarray

    def __getitem__(self, rows: slice) -> Draws:
        """The draws of some images of the batch (a process's share of it)."""
        return Draws(*(getattr(self, f.name)[rows] for f in dataclasses.fields(self)))

    def packed(self) -> np.ndarray:
        """int32[N, 5]: columns dy, dx, flip (0/1), hole_y, hole_x (for augment_device.apply)."""
        return np.stack([getattr(self, f.name) for f in dataclasses.fields(self)], axis=1).astype(np.int32)


def draw(n: int, rng: np.random.Generator, config: AugmentConfig = AugmentConfig(), size: int = 32) -> Draws:
    """Every random choice for a batch of n images of size x size, from `rng`.

    The defaults draw what earlier versions drew, number for number (runs resume
    and reproduce across versions); the Cutout options only add draws after them.
    """
    p, k = config.pad, config.cutout
    # "clip" places the hole whole inside the image padded by k // 2 on each side,
    # then keeps what lies inside the image: for k = 8 the centre is uniform in 0..32.
    margin = k // 2 if config.cutout_placement == "clip" else 0
    draws = Draws(
        dy=rng.integers(0, 2 * p + 1, size=n),
        dx=rng.integers(0, 2 * p + 1, size=n),
        flip=rng.random(n) < config.flip_prob,
        hole_y=rng.integers(0, size + 2 * margin - k + 1, size=n) - margin,
        hole_x=rng.integers(0, size + 2 * margin - k + 1, size=n) - margin,
    )
    if config.cutout_prob < 1.0:
        uncut = rng.random(n) >= config.cutout_prob
        draws.hole_y[uncut] = draws.hole_x[uncut] = -k  # a hole just above and left of the image
    return draws


def apply_numpy(images: np.ndarray, draws: Draws, config: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """The recipe with given random choices, on a whole batch at once.

    Args:
      images: uint8[N, H, W, 3].
      draws: the random choices for these N images.
      config: the recipe.

    Returns:
      float32[N, H, W, 3], normalised, each with the part of its `cutout`-sized
      zero hole that lies inside it.
    """
    _check_images(images)
    n, h, w, _ = images.shape
    rows, cols = source_indices(draws.dy, draws.dx, draws.flip, config.pad, h, w)
    # Viewing each RGB pixel as one 3-byte item makes the gather 2x faster.
    pixels = np.ascontiguousarray(images).reshape(n, h, w * 3).view("V3")
    out_u8 = pixels[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    out = normalize(out_u8.view(np.uint8).reshape(n, h, w, 3), config)
    if config.cutout:
        k, ys, xs = config.cutout, draws.hole_y, draws.hole_x
        for i in range(n):  # 512 slice assignments: ~0.3 ms, faster than a mask
            y, x = ys[i], xs[i]  # may lie above or left of the image ("clip", or no hole)
            out[i, max(y, 0) : max(y + k, 0), max(x, 0) : max(x + k, 0)] = 0.0
    return out


def augment_numpy(images: np.ndarray, rng: np.random.Generator, config: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """The recipe on a whole batch, vectorised: uint8[N, H, W, 3] -> float32[N, H, W, 3]."""
    _check_images(images)
    return apply_numpy(images, draw(len(images), rng, config, images.shape[1]), config)


def albumentations_pipeline(config: AugmentConfig = AugmentConfig(), seed: int | None = None):
    """The recipe as an albumentations 2 `A.Compose`, applied image by image."""
    # albumentations 2 checks online for a newer version when imported, unless told
    # not to: no network calls from a training run (offline nodes wait on them).
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations as A  # here: only this path needs it (and OpenCV)
    import cv2

    transforms = [
        A.PadIfNeeded(32 + 2 * config.pad, 32 + 2 * config.pad, border_mode=cv2.BORDER_REFLECT_101),
        A.RandomCrop(32, 32),
        A.HorizontalFlip(p=config.flip_prob),
        A.Normalize(mean=config.mean, std=config.std, max_pixel_value=255.0),
    ]
    if config.cutout:
        k = config.cutout
        drop = A.CoarseDropout(
            num_holes_range=(1, 1), hole_height_range=(k, k), hole_width_range=(k, k), fill=0, p=config.cutout_prob
        )
        if config.cutout_placement == "inside":
            transforms.append(drop)
        else:  # "clip": a whole hole in the image padded by k // 2, then the image cropped back out
            side = 32 + 2 * (k // 2)
            transforms += [
                A.PadIfNeeded(side, side, border_mode=cv2.BORDER_CONSTANT, fill=0),
                drop,
                A.CenterCrop(32, 32),
            ]
    return A.Compose(transforms, seed=seed)


def augment_albumentations(
    images: np.ndarray, rng: np.random.Generator, config: AugmentConfig = AugmentConfig(), pipeline=None
) -> np.ndarray:
    """The recipe through albumentations: float32[N, H, W, 3] from uint8[N, H, W, 3].

    The pipeline is re-seeded from `rng`, so the result depends only on `rng`.
    """
    _check_images(images)
    if images.shape[1:3] != (32, 32):
        raise ValueError(f"the albumentations pipeline crops to 32x32; got images of {images.shape[1:3]}")
    pipeline = pipeline or albumentations_pipeline(config)
    pipeline.set_random_seed(int(rng.integers(2**31)))
    out = np.empty(images.shape, np.float32)
    for i, image in enumerate(images):
        out[i] = pipeline(image=image)["image"]
    return out


def make_augment(name: Augmenter, config: AugmentConfig = AugmentConfig()) -> Callable:
    """`fn(images uint8, rng) -> float32` for a host implementation name."""
    if name == "numpy":
        return lambda images, rng: augment_numpy(images, rng, config)
    if name == "albumentations":
        # A pipeline per batch (~0.1 ms): re-seeding a shared one from two
        # worker threads would race.
        return lambda images, rng: augment_albumentations(images, rng, config)
    raise ValueError(f"host augmentation must be one of {HOST_AUGMENTERS}, got {name!r}")


def _check_images(images: np.ndarray) -> None:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 images [N, H, W, 3], got {images.dtype}{list(images.shape)}")
