"""Tests for jaxcifar.augment: each step checked numerically, both paths agree."""

import numpy as np
import pytest

from jaxcifar import augment as aug
from jaxcifar.augment import AugmentConfig

CFG = AugmentConfig()


def coordinate_images(n):
    """uint8 images whose pixel (r, c) holds (8r, 8c, 200): each value names its source.

    Normalised values are never exactly 0 (0 would need x/255 == mean), so a 0
    in an output can only be a Cutout hole.
    """
    r, c = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    image = np.stack([8 * r, 8 * c, np.full_like(r, 200)], axis=-1).astype(np.uint8)
    return np.repeat(image[None], n, axis=0)


def to_uint8(normalised):
    """Inverts the normalisation exactly (to the nearest level)."""
    return np.rint((normalised - CFG.shift) / CFG.scale).astype(int)


def holes(out):
    """bool[N, 32, 32]: pixels where every channel is exactly 0."""
    return np.all(out == 0.0, axis=-1)


def crop_parameters(out_u8):
    """(dy, dx, flip) recovered from augmented coordinate images (Cutout off).

    Output column 16 comes from source column 16 + dx - 4 (or 15 - (dx - 4) when
    flipped); no reflection reaches the middle columns and rows.
    """
    rows = out_u8[:, 16, 16, 0] // 8
    dy = rows - 16 + 4
    a, b = out_u8[:, 16, 15, 1] // 8, out_u8[:, 16, 16, 1] // 8
    flip = b < a
    dx = np.where(flip, 15 - b + 4, b - 16 + 4)
    return dy, dx, flip


# --- one step at a time -----------------------------------------------------------


@pytest.mark.parametrize("flip_prob", [0.0, 1.0])
def test_pad_crop_flip_match_numpy_reflect_pad(flip_prob):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    config = AugmentConfig(flip_prob=flip_prob, cutout=0)
    out = to_uint8(aug.augment_numpy(images, np.random.default_rng(1), config))
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)), mode="reflect")
    for i in range(len(images)):
        # The output is exactly one of the 81 crops of the reflect-padded image.
        matches = [
            (y, x)
            for y in range(9)
            for x in range(9)
            if np.array_equal(
                out[i],
                (padded[i, y : y + 32, x : x + 32, :][:, ::-1] if flip_prob else padded[i, y : y + 32, x : x + 32]),
            )
        ]
        assert len(matches) >= 1, f"image {i} is not a crop of the reflect-padded image"


def test_reflection_values_at_the_border():
    # With the crop at the top-left corner (dy = dx = 0), output row 0 is source
    # row 4 (reflection without repeating the edge: -4 -> 4) and row 4 is row 0.
    images = coordinate_images(400)
    out = to_uint8(aug.augment_numpy(images, np.random.default_rng(0), AugmentConfig(flip_prob=0, cutout=0)))
    dy, dx, _ = crop_parameters(out)
    corner = np.flatnonzero((dy == 0) & (dx == 0))
    assert len(corner) > 0
    i = corner[0]
    np.testing.assert_array_equal(out[i, :5, 0, 0] // 8, [4, 3, 2, 1, 0])
    np.testing.assert_array_equal(out[i, 0, :5, 1] // 8, [4, 3, 2, 1, 0])
    far = np.flatnonzero((dy == 8) & (dx == 8))[0]
    np.testing.assert_array_equal(out[far, -5:, 31, 0] // 8, [31, 30, 29, 28, 27])


def test_crop_offsets_are_uniform_and_inside():
    images = coordinate_images(9000)
    out = to_uint8(aug.augment_numpy(images, np.random.default_rng(1), AugmentConfig(cutout=0)))
    dy, dx, _ = crop_parameters(out)
    for d in (dy, dx):
        counts = np.bincount(d, minlength=9)
        assert d.min() >= 0 and d.max() <= 8 and len(counts) == 9
        # 9000 / 9 = 1000 per offset; 5 sigma of a binomial is about 150.
        assert np.abs(counts - 1000).max() < 150


@pytest.mark.parametrize("p", [0.5, 0.7])
def test_flip_frequency(p):
    images = coordinate_images(8000)
    out = to_uint8(aug.augment_numpy(images, np.random.default_rng(2), AugmentConfig(flip_prob=p, cutout=0)))
    _, _, flip = crop_parameters(out)
    # Binomial standard deviation sqrt(p(1-p)/n) ~ 0.0056; allow 5 sigma.
    assert abs(flip.mean() - p) < 0.028


def test_normalisation_uses_the_cifar_statistics():
    images = np.full((1, 32, 32, 3), 200, np.uint8)
    out = aug.normalize(images)
    expected = (200 / 255 - np.array(aug.CIFAR10_MEAN)) / np.array(aug.CIFAR10_STD)
    np.testing.assert_allclose(out[0, 0, 0], expected, rtol=1e-6)
    assert out.dtype == np.float32
    np.testing.assert_allclose(aug.denormalize(out)[0, 0, 0], 200 / 255, rtol=1e-6)


def test_exactly_one_8x8_hole_of_zeros():
    images = coordinate_images(2000)
    out = aug.augment_numpy(images, np.random.default_rng(3))
    zeros = holes(out)
    assert (zeros.sum(axis=(1, 2)) == 64).all()
    rows_per_image = zeros.any(axis=2).sum(axis=1)
    cols_per_image = zeros.any(axis=1).sum(axis=1)
    assert (rows_per_image == 8).all() and (cols_per_image == 8).all()  # 64 pixels in 8 rows x 8 cols: a square
    # Top-left corner uniform over 0..24: every position is reached, means near 12.
    top = zeros.any(axis=2).argmax(axis=1)
    left = zeros.any(axis=1).argmax(axis=1)
    assert set(top) == set(range(25)) and set(left) == set(range(25))
    assert abs(top.mean() - 12) < 0.5 and abs(left.mean() - 12) < 0.5


def test_the_default_draws_are_those_of_earlier_versions():
    # Runs resume and reproduce across versions: the default recipe draws crop, flip
    # and hole in this order from the batch's generator, and nothing more.
    draws = aug.draw(512, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    expected = [rng.integers(0, 9, 512), rng.integers(0, 9, 512), rng.random(512) < 0.5]
    expected += [rng.integers(0, 25, 512), rng.integers(0, 25, 512)]
    for got, want in zip((draws.dy, draws.dx, draws.flip, draws.hole_y, draws.hole_x), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_clipped_holes_follow_albumentations_0_1_12s_cutout():
    # albumentations 0.1.12's Cutout (what the original's Colab likely ran): centre c uniform in 0..32 on each
    # axis, rows max(c-4, 0) .. min(c+4, 32): 4, 5, 6, 7 rows for c = 0..3 and 29..32,
    # 8 rows for the 25 centres between; the top row is 0 for c = 0..4, c-4 above.
    n = 6600
    out = aug.augment_numpy(coordinate_images(n), np.random.default_rng(5), AugmentConfig(cutout_placement="clip"))
    zeros = holes(out)
    rows, cols = zeros.any(axis=2), zeros.any(axis=1)
    assert (zeros.sum(axis=(1, 2)) == rows.sum(1) * cols.sum(1)).all()  # one rectangle each
    expected_sides = np.array([0, 0, 0, 0, 2, 2, 2, 2, 25]) / 33  # 0..8 rows
    for side in (rows.sum(axis=1), cols.sum(axis=1)):
        # each 1/33 of 6600 = 200 images +- 14: allow 5 sigma
        np.testing.assert_allclose(np.bincount(side, minlength=9) / n, expected_sides, atol=0.011)
    top = rows.argmax(axis=1)
    expected_tops = np.array([5] + [1] * 28) / 33  # rows 0..28
    np.testing.assert_allclose(np.bincount(top, minlength=29) / n, expected_tops, atol=0.011)
    # 54.7 pixels on average (7.39 rows x 7.39 columns) rather than 64
    assert abs(zeros.sum(axis=(1, 2)).mean() - (244 / 33) ** 2) < 0.6


@pytest.mark.parametrize("p", [0.0, 0.5])
def test_cutout_prob_is_the_share_of_images_with_a_hole(p):
    out = aug.augment_numpy(coordinate_images(4000), np.random.default_rng(6), AugmentConfig(cutout_prob=p))
    cut = holes(out).sum(axis=(1, 2))
    assert set(np.unique(cut)) <= {0, 64}
    assert abs((cut > 0).mean() - p) < 0.04  # 5 sigma of a binomial of 4000: 0.04


def test_cutout_zero_disables_the_hole():
    out = aug.augment_numpy(coordinate_images(100), np.random.default_rng(0), AugmentConfig(cutout=0))
    assert not holes(out).any()


# --- numpy and albumentations -----------------------------------------------------


def test_numpy_and_albumentations_agree_in_distribution():
    pytest.importorskip("albumentations")
    n = 3000
    images = coordinate_images(n)
    outs = {
        "numpy": aug.augment_numpy(images, np.random.default_rng(4)),
        "albumentations": aug.augment_albumentations(images, np.random.default_rng(4)),
    }
    stats = {}
    for name, out in outs.items():
        assert out.shape == (n, 32, 32, 3) and out.dtype == np.float32
        zeros = holes(out)
        assert (zeros.sum(axis=(1, 2)) == 64).all(), name
        # Crop and flip are read at pixels (16, 15) and (16, 16): use the images
        # whose hole does not cover them.
        u8 = to_uint8(out)
        clear = ~zeros[:, 16, 15] & ~zeros[:, 16, 16]
        dy, dx, flip = crop_parameters(u8[clear])
        stats[name] = {
            "flip": flip.mean(),
            "dx": np.bincount(dx, minlength=9) / clear.sum(),
            "dy": np.bincount(dy, minlength=9) / clear.sum(),
            "hole_top": np.bincount(zeros.any(axis=2).argmax(axis=1), minlength=25) / n,
            "hole_left": np.bincount(zeros.any(axis=1).argmax(axis=1), minlength=25) / n,
            "mean_image": np.where(zeros[..., None], np.nan, u8).astype(float),
        }
    a, b = stats["numpy"], stats["albumentations"]
    assert abs(a["flip"] - b["flip"]) < 0.06
    np.testing.assert_allclose(a["dx"], b["dx"], atol=0.035)  # each ~0.111 +- 0.006
    np.testing.assert_allclose(a["dy"], b["dy"], atol=0.035)
    np.testing.assert_allclose(a["hole_top"], b["hole_top"], atol=0.025)  # each 0.04 +- 0.0036
    np.testing.assert_allclose(a["hole_left"], b["hole_left"], atol=0.025)
    # The average augmented image (blue channel: constant 200) and the reflection
    # borders agree: mean pixel value per position within a few levels.
    ma = np.nanmean(a["mean_image"], axis=0)
    mb = np.nanmean(b["mean_image"], axis=0)
    np.testing.assert_allclose(ma, mb, atol=6)
    np.testing.assert_allclose(ma[..., 2], 200, atol=0.5)


def test_numpy_and_albumentations_agree_on_clipped_cutout_on_half_the_images():
    pytest.importorskip("albumentations")
    n, config = 4000, AugmentConfig(cutout_prob=0.5, cutout_placement="clip")
    images = coordinate_images(n)
    sides = {}
    for name in aug.HOST_AUGMENTERS:
        zeros = holes(aug.make_augment(name, config)(images, np.random.default_rng(9)))
        rows = zeros.any(axis=2)
        # share of images with a hole of 0, 4, 5, 6, 7, 8 rows; hand-computed: 0.5, 4 x 1/66, 25/66
        sides[name] = np.bincount(rows.sum(axis=1), minlength=9)[[0, 4, 5, 6, 7, 8]] / n
        np.testing.assert_allclose(sides[name], [0.5, 1 / 66, 1 / 66, 1 / 66, 1 / 66, 25 / 66], atol=0.04)
    np.testing.assert_allclose(sides["numpy"], sides["albumentations"], atol=0.04)


def test_albumentations_pipeline_is_the_recipe():
    A = pytest.importorskip("albumentations")
    import cv2

    pipeline = aug.albumentations_pipeline(AugmentConfig(flip_prob=0.7))
    kinds = [type(t) for t in pipeline.transforms]
    assert kinds == [A.PadIfNeeded, A.RandomCrop, A.HorizontalFlip, A.Normalize, A.CoarseDropout]
    pad = pipeline.transforms[0]
    assert (pad.min_height, pad.min_width, pad.border_mode) == (40, 40, cv2.BORDER_REFLECT_101)
    assert pipeline.transforms[2].p == 0.7
    drop = pipeline.transforms[4]
    assert drop.num_holes_range == (1, 1) and drop.hole_height_range == (8, 8) and drop.fill == 0 and drop.p == 1
    # The clipped Cutout: a whole hole in the image padded by 4 with zeros, then cropped back.
    clipped = aug.albumentations_pipeline(AugmentConfig(cutout_prob=0.5, cutout_placement="clip")).transforms[4:]
    assert [type(t) for t in clipped] == [A.PadIfNeeded, A.CoarseDropout, A.CenterCrop]
    assert (clipped[0].min_height, clipped[0].border_mode, clipped[0].fill) == (40, cv2.BORDER_CONSTANT, 0)
    assert clipped[1].p == 0.5 and (clipped[2].height, clipped[2].width) == (32, 32)


@pytest.mark.parametrize("name", aug.HOST_AUGMENTERS)
def test_seeded_augmentation_is_reproducible(name):
    images = coordinate_images(16)
    fn = aug.make_augment(name)
    a = fn(images, np.random.default_rng(7))
    b = fn(images, np.random.default_rng(7))
    c = fn(images, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bad_config_and_inputs():
    with pytest.raises(ValueError, match=r"flip_prob must be a probability in \[0, 1\], got 1.5"):
        AugmentConfig(flip_prob=1.5)
    with pytest.raises(ValueError, match=r"cutout must be a hole side in 0..32 pixels, got 40"):
        AugmentConfig(cutout=40)
    with pytest.raises(ValueError, match=r"cutout_prob must be a probability in \[0, 1\], got 2"):
        AugmentConfig(cutout_prob=2)
    with pytest.raises(ValueError, match=r"cutout_placement must be one of \('inside', 'clip'\), got 'edge'"):
        AugmentConfig(cutout_placement="edge")
    with pytest.raises(ValueError, match=r"expected uint8 images \[N, H, W, 3\], got float32\[2, 32, 32, 3\]"):
        aug.augment_numpy(np.zeros((2, 32, 32, 3), np.float32), np.random.default_rng(0))
    with pytest.raises(
        ValueError, match=r"host augmentation must be one of \('numpy', 'albumentations'\), got 'torch'"
    ):
        aug.make_augment("torch")


# --- the loader -----------------------------------------------------------------
