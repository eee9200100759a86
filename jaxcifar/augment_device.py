"""The augmentation recipe's pixel work on the device, from choices drawn on the host.

With `--augment device` the host only shuffles and draws the random choices
(`augment.draw`: the very numbers the NumPy path draws for the same seed, epoch
and batch) and sends uint8 images, 4x fewer bytes than float32, with an
int32[B, 5] array of those choices. `apply` then pads, crops, flips, normalises
and cuts the hole inside the jitted training step, so no host thread touches a
pixel. It computes what `augment.apply_numpy` computes (tests/test_augment_device.py
compares every pixel), so a run sees the same augmented images whichever side
does the work; on a GPU the gather is a few microseconds per batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxcifar.augment import AugmentConfig, source_indices

DEFAULT = AugmentConfig()  # the seed recipe


def apply(images: jax.Array, draws: jax.Array, config: AugmentConfig = DEFAULT) -> jax.Array:
    """The recipe with given random choices, on the device.

    Args:
      images: uint8[N, H, W, 3], not yet augmented.
      draws: int32[N, 5], `augment.Draws.packed()`: crop offsets dy, dx in the
        padded image, flip (0/1), and the Cutout hole's top-left corner.
      config: the recipe (padding, Cutout size, normalisation).

    Returns:
      float32[N, H, W, 3], normalised, with one `cutout`-sized zero hole each.
    """
    if images.dtype != jnp.uint8 or images.ndim != 4 or draws.shape != (images.shape[0], 5):
        raise ValueError(
            f"expected uint8 images [N, H, W, 3] and draws [N, 5], got {images.dtype}"
            f"{list(images.shape)} and {list(draws.shape)}"
        )
    n, h, w, _ = images.shape
    rows, cols = source_indices(draws[:, 0], draws[:, 1], draws[:, 2], config.pad, h, w, xp=jnp)
    out = images[jnp.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    out = out.astype(jnp.float32) * jnp.asarray(config.scale) + jnp.asarray(config.shift)
    if config.cutout:
        k = config.cutout
        r, c = jnp.arange(h)[None], jnp.arange(w)[None]
        hole_y, hole_x = draws[:, 3, None], draws[:, 4, None]
        in_rows = (r >= hole_y) & (r < hole_y + k)  # [N, H]
        in_cols = (c >= hole_x) & (c < hole_x + k)  # [N, W]
        out = jnp.where((in_rows[:, :, None] & in_cols[:, None, :])[..., None], 0.0, out)
    return out
