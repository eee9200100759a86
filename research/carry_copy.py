"""A copy of the lossless CIFAR-10 small enough to carry to a GPU call, and what it costs.

    python -m research.carry_copy --png ../shared/data/cifar10-png.tar.gz \
        --out .carry/cifar10-carry.tar.gz --json results/carry-copy.json --run runs/w16-fast-png   # ~1 min

A device call carries at most 64 MiB, and the lossless set is 135 MB: its 32x32 PNGs
cost 2.2 KB each. This writes the same image folder (`<root>/{train,test}/<class>/*.jpg`,
which `--data PATH` reads) with every image as a JPEG at `--quality` without chroma
subsampling (4:4:4: the colour keeps full resolution, where the project's JPEG copy of
CIFAR-10 halves it), into a tar.gz whose gzip shares the repeated JPEG tables across
files. It records the archive's size and sha256, and the PSNR of its decoded images to
the lossless ones; it refuses a copy over `--max-mb`. Beside it, the choices (JPEG
qualities, WebP lossy and lossless, PNG) measured on 3,000 training images.

With `--run`, a network trained on the lossless images is tested on both test sets,
read back through jaxcifar's own loader, and on the test set in each of the choices: a
copy costs nothing measurable where the accuracies agree within 0.1 point (10 of 10,000
images).
"""

from __future__ import annotations

import argparse
import io
import tarfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from jaxcifar import checkpoint as checkpoint_lib
from jaxcifar import data, gradcam, records, startup
from jaxcifar import steps as steps_lib
from jaxcifar.config import TrainConfig
from jaxcifar.console import say
from jaxcifar.errors import UsageError, entry_point
from research.jpeg_quality import psnr

ROOT_NAME = "cifar10-carry"  # the archive's top folder
MAX_MB = 45.0  # the carry copy's budget: 64 MiB a call, less the code and what else travels
SURVEY_IMAGES = 3000  # training images the choices are measured on


def encode(image: np.ndarray, quality: int) -> bytes:
    """One uint8[32, 32, 3] image as a baseline JPEG at `quality`, 4:4:4 (PIL's libjpeg tables)."""
    out = io.BytesIO()
    Image.fromarray(image).save(out, "JPEG", quality=quality, subsampling=0)
    return out.getvalue()


# The choices `survey` measures: (name, PIL format, file suffix, PIL save options).
CHOICES = (
    ("JPEG 4:4:4, quality 95", "JPEG", "jpg", {"quality": 95, "subsampling": 0}),
    ("JPEG 4:4:4, quality 93", "JPEG", "jpg", {"quality": 93, "subsampling": 0}),
    ("JPEG 4:4:4, quality 92", "JPEG", "jpg", {"quality": 92, "subsampling": 0}),
    ("JPEG 4:4:4, quality 90", "JPEG", "jpg", {"quality": 90, "subsampling": 0}),
    ("WebP, quality 95", "WEBP", "webp", {"quality": 95, "method": 6}),
    ("WebP, lossless", "WEBP", "webp", {"lossless": True, "method": 6}),
    ("PNG (the lossless set's format)", "PNG", "png", {}),
)


def round_trip(images: np.ndarray, fmt: str, options: dict) -> tuple[list[bytes], np.ndarray]:
    """Each image encoded as `fmt` with PIL's `options`, and decoded again: (files, uint8[N, 32, 32, 3])."""
    blobs, decoded = [], []
    for image in images:
        out = io.BytesIO()
        Image.fromarray(image).save(out, fmt, **options)
        blobs.append(out.getvalue())
        decoded.append(np.asarray(Image.open(io.BytesIO(blobs[-1])).convert("RGB")))
    return blobs, np.stack(decoded)


def survey(images: np.ndarray, total: int = 60_000) -> list[dict]:
    """Each of CHOICES on `images`: bytes per image in a tar.gz of them, that scaled to `total` images, PSNR."""
    rows = []
    for name, fmt, suffix, options in CHOICES:
        blobs, decoded = round_trip(images, fmt, options)
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w:gz", compresslevel=9) as tar:
            for i, blob in enumerate(blobs):
                info = tarfile.TarInfo(f"{ROOT_NAME}/train/c/{i:05d}.{suffix}")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
        per_image = archive.tell() / len(images)
        rows.append({"choice": name, "bytes_per_image": per_image, "estimated_mb": per_image * total / 1e6,
                     "psnr_db": psnr(images, decoded)})  # fmt: skip
    return rows


def encode_png(image: np.ndarray) -> bytes:
    """One uint8[32, 32, 3] image as a PNG (lossless)."""
    out = io.BytesIO()
    Image.fromarray(image).save(out, "PNG", optimize=True)
    return out.getvalue()


def write_copy(ds: data.CIFAR10, path: Path, quality: int, lossless_test: bool = False) -> None:
    """`ds` as an image-folder tar.gz of JPEGs at `quality` (written atomically); with `lossless_test`
    the test images as PNGs, the pixels the accuracy is measured on."""
    with records.atomic_open(path, "wb") as f, tarfile.open(fileobj=f, mode="w:gz", compresslevel=9) as tar:
        for split in ("train", "test"):
            images, labels = getattr(ds, f"{split}_images"), getattr(ds, f"{split}_labels")
            png = lossless_test and split == "test"
            for i, (image, label) in enumerate(zip(images, labels)):
                blob = encode_png(image) if png else encode(image, quality)
                info = tarfile.TarInfo(f"{ROOT_NAME}/{split}/{ds.class_names[label]}/{i:05d}.{'png' if png else 'jpg'}")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))


def same_order(lossless: data.CIFAR10, copy: data.CIFAR10) -> data.CIFAR10:
    """`copy`'s images in `lossless`'s order (the loader reads files by class and name)."""
    out = {}
    for split in ("train", "test"):
        labels = getattr(lossless, f"{split}_labels")
        # write_copy numbered each image by its index in `lossless`; within a class the loader
        # reads the names in order, so its images come class by class, each class in index order
        order = np.concatenate([np.flatnonzero(labels == c) for c in range(len(lossless.class_names))])
        images = np.empty_like(getattr(copy, f"{split}_images"))
        images[order] = getattr(copy, f"{split}_images")
        if not np.array_equal(getattr(copy, f"{split}_labels"), labels[order]):
            raise RuntimeError(f"the copy's {split} labels are not the lossless set's: the archive was not read back")
        out[f"{split}_images"], out[f"{split}_labels"] = images, labels
    return data.CIFAR10(**out, class_names=lossless.class_names, source=copy.source)


def last_network(run: Path) -> tuple:
    """(model, variables) of a run's last checkpoint, the model as the run trained it."""
    config = TrainConfig.from_json(records.read_json(run / "config.json")["config"])
    return steps_lib.make_model(config), checkpoint_lib.load_variables(run, steps_lib.state_shapes(config), "latest")


def test_accuracy(network: tuple, images: np.ndarray, labels: np.ndarray) -> float:
    """The test accuracy of `network` (`last_network`) on `images`."""
    predicted = gradcam.predict_classes(*network, images)
    return float(np.mean(predicted == labels))


def make(
    png: Path,
    out: Path,
    quality: int,
    max_mb: float,
    run: Path | None,
    cache_dir: Path | None,
    survey_images: int = SURVEY_IMAGES,
    lossless_test: bool = False,
) -> dict:
    """Writes the copy, measures it, tests `run` on both test sets; returns the record."""
    lossless = data.load_cifar10(png, cache_dir=cache_dir)
    write_copy(lossless, out, quality, lossless_test)
    size = out.stat().st_size
    if size > max_mb * 1e6:
        out.unlink()
        raise UsageError(
            f"the copy at quality {quality} is {size / 1e6:.1f} MB, over --max-mb {max_mb:g}: lower --quality"
        )  # noqa: E501
    copy = same_order(lossless, data.load_cifar10(out, cache_dir=cache_dir))
    result = {
        "png": {"file": str(png), "bytes": png.stat().st_size, "sha256": data.file_digest(png, "sha256")},
        "copy": {"file": str(out), "bytes": size, "sha256": data.file_digest(out, "sha256")},
        "format": f"JPEG quality {quality}, 4:4:4 (PIL, libjpeg tables)"
        + (", the test set as PNG (lossless)" if lossless_test else "")
        + ", tar.gz",
        "quality": quality,
        "lossless_test": lossless_test,
        "psnr_db": {"train": psnr(lossless.train_images, copy.train_images)},
    }
    if lossless_test:
        if not np.array_equal(lossless.test_images, copy.test_images):
            raise RuntimeError("the copy's PNG test images are not the lossless ones in order")
    else:
        result["psnr_db"]["test"] = psnr(lossless.test_images, copy.test_images)
    if result["psnr_db"]["train"] < 25:  # JPEG at quality 50 and up stays over 25 dB: images out of order
        where = f"PSNR {result['psnr_db']['train']:.1f} dB"
        raise RuntimeError(f"the copy's images are not the lossless ones in order ({where})")
    test = "lossless" if lossless_test else f"{result['psnr_db']['test']:.1f} dB"
    say(f"{out}: {size / 1e6:.1f} MB, PSNR to the lossless images {result['psnr_db']['train']:.1f} dB (train), "
        f"{test} (test)")  # fmt: skip
    n = min(survey_images, len(lossless.train_labels))
    sample = np.sort(np.random.default_rng(0).choice(len(lossless.train_labels), n, replace=False))
    result["survey"] = {"images": n, "rows": survey(lossless.train_images[sample])}
    if run is not None:
        network = last_network(run)  # read once, tested on the lossless, the copy's and each choice's test set
        on_png = test_accuracy(network, lossless.test_images, lossless.test_labels)
        on_copy = test_accuracy(network, copy.test_images, copy.test_labels)
        result["network"] = {"run": str(run), "test_accuracy_png": on_png, "test_accuracy_copy": on_copy,
                             "points": 100 * (on_copy - on_png)}  # fmt: skip
        say(f"{run}'s network: {100 * on_png:.2f}% on the lossless test images, {100 * on_copy:.2f}% on the copy's")
        for row, (_, fmt, _, options) in zip(result["survey"]["rows"], CHOICES):  # the test set in each choice
            _, decoded = round_trip(lossless.test_images, fmt, options)
            row["test_accuracy"] = test_accuracy(network, decoded, lossless.test_labels)
            row["points"] = 100 * (row["test_accuracy"] - on_png)
    return {**result, **records.provenance()}


@entry_point
def main(argv: Sequence[str] | None = None) -> dict:
    startup.set_cpu_flags()
    parser = argparse.ArgumentParser(prog="python -m research.carry_copy", description=__doc__.splitlines()[0])
    parser.add_argument("--png", type=Path, required=True, help="the lossless image-folder archive (required)")
    parser.add_argument("--out", type=Path, required=True, help="the copy's tar.gz, in an ignored folder (required)")
    parser.add_argument("--quality", type=int, default=92, help="JPEG quality, 4:4:4 (default: 92)")
    parser.add_argument("--max-mb", type=float, default=MAX_MB, help=f"refuse a larger copy (default: {MAX_MB:g})")
    parser.add_argument("--run", type=Path, help="a run trained on --png to test on both test sets (default: none)")
    parser.add_argument("--json", type=Path, help="write the record here (default: print it only)")
    parser.add_argument("--cache-dir", type=Path, help="decoded-array cache (default: jaxcifar's)")
    parser.add_argument(
        "--survey-images", type=int, default=SURVEY_IMAGES, help=f"training images the choices are measured on "
        f"(default: {SURVEY_IMAGES:,})",
    )  # fmt: skip
    parser.add_argument(
        "--lossless-test", action="store_true", help="the test images as PNG, the training images as JPEG "
        "(default: all JPEG)",
    )  # fmt: skip
    parser.add_argument("--force", action="store_true", help="replace --out and --json (default: refuse)")
    args = parser.parse_args(argv)
    if not 1 <= args.quality <= 95:
        parser.error(f"--quality must be in 1..95 (PIL's useful range), got {args.quality}")
    if args.run is not None and not (args.run / "config.json").exists():
        parser.error(f"--run {args.run}: no config.json there; give a folder written by jaxcifar.train")
    records.refuse_overwrite(*(p for p in (args.out, args.json) if p), force=args.force)
    result = make(
        args.png, args.out, args.quality, args.max_mb, args.run, args.cache_dir, args.survey_images, args.lossless_test
    )
    result["command"] = records.command_line()
    if args.json:
        records.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
