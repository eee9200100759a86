"""What JPEG costs the recipe: the same training on the data compressed once more.

    python -m research.jpeg_quality --data ../shared/data/cifar10-jpeg.tar.gz --recipe cifar10-fast \
        --width 16 --json results/jpeg-quality-cpu-w16.json     # 3 trainings of ~35 min on 2 idle cores

The only real CIFAR-10 on the development machines is a JPEG copy (quality 75,
4:2:0 colour), and every 24-epoch run on it ends about three points under the
run published on the lossless archive. The lossless images are out of reach, so
this measures the other direction: it trains with the same settings and seeds on
the copy as it is and on the copy passed through JPEG once more (train and test
images alike, as one compressed dataset would be), and records the final test
accuracy of each against the images' PSNR to the copy. A variant `Q@S` encodes at
quality Q on a block grid shifted by S pixels, so that a second pass at quality 75
is a fresh loss of the same kind (on the copy's own grid it changes almost
nothing); `Q` alone keeps the grid. What one more pass costs is a measured hint of
what the first one cost, not a measurement of it.

    python -m research.jpeg_quality --trained RUN [RUN ...] --variants none 75 75@4 50@4 30@4

trains nothing: it tests finished runs' last networks on their test images passed
through each variant (minutes), what a network trained on the copy loses when only
its test images lose more.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import re
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from jaxcifar import checkpoint as checkpoint_lib
from jaxcifar import data, flags, gradcam, parallel, records, startup, train
from jaxcifar import seeds as seeds_lib
from jaxcifar import steps as steps_lib
from jaxcifar.config import TrainConfig
from jaxcifar.console import say
from jaxcifar.errors import entry_point
from jaxcifar.loader import load_data

# The copy as it is; a second quality-75 pass off the grid (PSNR to the copy 31.9 dB,
# results/jpeg-quality-cpu-w16.json); a quality-50 pass off the grid (29.1 dB).
VARIANTS = ("none", "75@4", "50@4")
_SPEC = re.compile(r"(?P<quality>\d+)(@(?P<shift>\d+))?")


def jpeg_recompress(images: np.ndarray, quality: int, shift: int = 0) -> np.ndarray:
    """The images JPEG-encoded once more and decoded: what one more lossy pass leaves.

    PIL's encoder with libjpeg's standard tables scaled to `quality` and 4:2:0
    chroma subsampling, as the JPEG copy of CIFAR-10 was made. With `shift` > 0 the
    image is reflect-padded by `shift` pixels first (and cropped back), which moves
    JPEG's 8x8 block grid (16x16 for the subsampled colour) off the grid of an
    earlier pass: re-encoding on the same grid at the same quality changes almost
    nothing, re-encoding off it is a fresh loss of the same kind.

    Args:
      images: uint8[N, 32, 32, 3].
      quality: 1..95, the JPEG quality factor.
      shift: 0..7 pixels of grid offset.

    Returns:
      uint8[N, 32, 32, 3].
    """
    if not 1 <= quality <= 95:
        raise ValueError(f"JPEG quality must be in 1..95 (PIL's useful range), got {quality}")
    if not 0 <= shift <= 7:
        raise ValueError(f"the block-grid shift must be 0..7 pixels (8 is the same grid again), got {shift}")
    out = np.empty_like(images)
    for i, image in enumerate(images):
        padded = np.pad(image, ((shift, shift), (shift, shift), (0, 0)), mode="reflect") if shift else image
        buffer = io.BytesIO()
        Image.fromarray(padded).save(buffer, format="JPEG", quality=quality, subsampling="4:2:0")
        with Image.open(buffer) as im:
            decoded = np.asarray(im.convert("RGB"))
        out[i] = decoded[shift : shift + 32, shift : shift + 32]
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 image arrays (MSE over all pixels; peak 255)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def parse_variant(spec: str) -> tuple[int, int] | None:
    """A variant's JPEG pass as (quality, shift): "Q" -> (Q, 0), "Q@S" -> (Q, S); "none" -> None (as it is)."""
    if spec == "none":
        return None
    match = _SPEC.fullmatch(spec)
    if match is None:
        raise ValueError(f"variant {spec!r}: expected 'none', a JPEG quality such as '75', or quality@shift as '75@4'")
    quality, shift = int(match["quality"]), int(match["shift"] or 0)
    if not 1 <= quality <= 95 or not 0 <= shift <= 7:
        raise ValueError(f"variant {spec!r}: the quality must be in 1..95 and the shift in 0..7")
    return quality, shift


def compressed(ds: data.CIFAR10, spec: str, splits: Sequence[str] = ("train", "test")) -> tuple[data.CIFAR10, dict]:
    """`ds` with the `splits`' images passed through `spec`'s JPEG pass, and each such split's PSNR to `ds`."""
    setting = parse_variant(spec)
    measured = {"quality": None, "shift": None, **{f"{split}_psnr_db": None for split in splits}}
    if setting is None:
        return ds, measured
    quality, shift = setting
    changed = {}
    for split in splits:
        before = getattr(ds, f"{split}_images")
        changed[f"{split}_images"] = jpeg_recompress(before, quality, shift)
        measured[f"{split}_psnr_db"] = psnr(before, changed[f"{split}_images"])
    source = f"{ds.source}, JPEG once more ({spec})"
    return dataclasses.replace(ds, **changed, source=source), {**measured, "quality": quality, "shift": shift}


def evaluate_network(run: Path, variants: Sequence[str]) -> dict:
    """A finished run's last network tested on its test images as they are and through each JPEG pass.

    What a network trained on the copy loses when only its test images lose more
    detail; with the run's own data, variant "none" gives back the run's final
    test accuracy (one check that the right network and data were read).
    """
    saved = records.read_json(run / "config.json")
    config = TrainConfig.from_json(saved["config"])
    model = steps_lib.make_model(config)
    variables = checkpoint_lib.load_variables(run, steps_lib.state_shapes(config), "latest")
    ds = load_data(config)
    rows = []
    for spec in variants:
        variant_ds, measured = compressed(ds, spec, splits=("test",))
        predicted = gradcam.predict_classes(model, variables, variant_ds.test_images)
        rows.append({"variant": spec, **measured, "test_accuracy": float(np.mean(predicted == ds.test_labels))})
        say(f"{run} on {spec}: test accuracy {100 * rows[-1]['test_accuracy']:.2f}%", flush=True)
    summary = records.read_json(run / "summary.json") if (run / "summary.json").exists() else {}
    return {
        "run": str(run),
        "config": config.to_json(),
        "data_source": ds.source,
        "run_final_test_accuracy": summary.get("final_test_accuracy"),
        "variants": rows,
    }


def study(config: TrainConfig, out: Path, variants: Sequence[str], seeds: int) -> dict:
    """Trains `config` with seeds 0..seeds-1 on each variant of its data; returns the record."""
    t0 = time.perf_counter()
    ds = load_data(config)
    rows = []
    for spec in variants:
        variant_ds, measured = compressed(ds, spec)
        runs = []
        for seed in range(seeds):
            run = dataclasses.replace(config, seed=seed, out=str(out / f"{spec.replace('@', '-at-')}-seed-{seed}"))
            summary = train.train_and_evaluate(run, variant_ds)
            runs.append(
                {
                    "seed": seed,
                    "status": summary["status"],
                    "final_test_accuracy": summary["final_test_accuracy"],
                    "final_train_accuracy": summary["final_train_accuracy"],
                    "train_seconds": summary["train_seconds"],
                }
            )
        finals = np.array([r["final_test_accuracy"] or 0.0 for r in runs])
        rows.append(
            {
                "variant": spec,
                **measured,
                "runs": runs,
                **seeds_lib.mean_std("final_test_accuracy", finals),
            }
        )
        psnr = "" if measured["test_psnr_db"] is None else f" (test images {measured['test_psnr_db']:.1f} dB)"
        say(f"{spec}{psnr}: final test accuracy {100 * finals.mean():.2f}% over {seeds} seed(s)", flush=True)
    return {
        "config": config.to_json(),
        "data_source": ds.source,
        "seeds": seeds,
        "variants": rows,
        "seconds": time.perf_counter() - t0,
        **records.provenance(),
    }


@entry_point
def main(argv: Sequence[str] | None = None) -> dict:
    startup.set_cpu_flags()  # XLA as the training command has it: YNNPACK off on the CPU
    parser = argparse.ArgumentParser(
        prog="python -m research.jpeg_quality",
        description="Train the same settings on the data as it is and compressed once more with JPEG.",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=list(VARIANTS),
        help="'none' (as it is, first: the others are compared with it), a JPEG quality 'Q', or 'Q@S' on a grid "
        f"shifted by S pixels (default: {' '.join(VARIANTS)})",
    )
    parser.add_argument("--seeds", type=int, default=1, help="training seeds per variant (default: 1)")
    parser.add_argument(
        "--trained",
        type=Path,
        nargs="+",
        default=None,
        help="train nothing: test each of these finished runs' last network on its test images through each "
        "variant (default: train)",
    )
    parser.add_argument("--json", default=None, help="write the record here too (default: OUT/jpeg-quality.json only)")
    parser.add_argument("--force", action="store_true", help="replace --json if it exists (default: off)")
    flags.add_arguments(parser)
    args = parser.parse_args(argv)
    for spec in args.variants:
        try:
            parse_variant(spec)
        except ValueError as e:
            parser.error(str(e))
    if args.variants[0] != "none":  # the README's tables and sentences measure every change against it
        parser.error(
            f"--variants must start with 'none' (the data as it is, which the others are compared with), "
            f"got {' '.join(args.variants)}; put none first"
        )
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")
    if args.trained is not None:
        for run in args.trained:
            if not (run / "config.json").exists():
                parser.error(f"--trained {run}: no config.json there; give folders written by jaxcifar.train")
        if args.json:
            records.refuse_overwrite(args.json, force=args.force)
        result = {"networks": [evaluate_network(run, args.variants) for run in args.trained], **records.provenance()}
        if args.json:
            records.write_json(args.json, result)
        return result
    # Only the last epoch's checkpoint, no Grad-CAM figures to wait for.
    settings = {"progress": False, "gradcam": False, "checkpoint_every": 0}
    config = TrainConfig.create(**{**settings, **flags.given_settings(args)})
    out = Path(config.out or "runs/jpeg-quality")
    records.check_new_folder(out)
    if args.json:
        records.refuse_overwrite(args.json, force=args.force)
    parallel.enable_compilation_cache(data.compile_cache_folder(config.cache_dir))
    result = study(config, out, args.variants, args.seeds)
    records.write_json(out / "jpeg-quality.json", result)
    if args.json:
        records.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
