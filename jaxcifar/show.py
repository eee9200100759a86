"""`python -m jaxcifar.show`: the recipe's pieces, one at a time, without training.

    python -m jaxcifar.show model [--width W]                      # the layer table and parameter count
    python -m jaxcifar.show schedule --lr-min 0.00444 --lr-max 0.0444 --out one_cycle.png
    python -m jaxcifar.show samples --data PATH --out augmented_samples.png

The computing modules (model, schedule, augment) know nothing of command lines or
figures; this command draws and prints them.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxcifar import augment as augment_lib
from jaxcifar import data as data_lib
from jaxcifar import model as model_lib
from jaxcifar import plots, records
from jaxcifar import schedule as schedule_lib
from jaxcifar.errors import entry_point

PROG = "python -m jaxcifar.show"


def show_model(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if args.width < 1:
        parser.error(f"--width must be a positive integer, got {args.width}")
    print(model_lib.summary(model_lib.ResNet9(width=args.width)))


def show_schedule(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    try:
        schedule = schedule_lib.one_cycle(args.lr_min, args.lr_max, args.steps_per_epoch, args.epochs, args.peak_epoch)
        records.refuse_overwrite(args.out, force=args.force)
    except (ValueError, FileExistsError) as e:
        parser.error(str(e))
    lrs = schedule_lib.values(schedule, args.epochs * args.steps_per_epoch)
    plots.one_cycle(lrs, args.steps_per_epoch, args.out)
    print(f"wrote {args.out}: {args.lr_min:g} -> {args.lr_max:g} at epoch {args.peak_epoch:g} -> {args.lr_min:g}")


def show_samples(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if not 1 <= args.images <= 50 or not 1 <= args.copies <= 12:
        parser.error("--images must be in 1..50 and --copies in 1..12")
    try:
        config = augment_lib.AugmentConfig(
            flip_prob=args.flip_prob, cutout_prob=args.cutout_prob, cutout_placement=args.cutout_placement
        )
        records.refuse_overwrite(args.out, force=args.force)
    except (ValueError, FileExistsError) as e:
        parser.error(str(e))
    ds = data_lib.load_cifar10(args.data, data_dir=args.data_dir)
    rng = np.random.default_rng(args.seed)
    # One image per class first, in class order, so the grid shows every class.
    firsts = [int(np.flatnonzero(ds.train_labels == c)[0]) for c in range(len(ds.class_names))]
    picks = (firsts + list(rng.choice(len(ds.train_labels), size=args.images, replace=False)))[: args.images]
    originals = ds.train_images[picks]
    augment = augment_lib.make_augment(args.augment, config)
    copies = np.stack([augment_lib.denormalize(augment(originals, rng), config) for _ in range(args.copies)], axis=1)
    labels = [ds.class_names[ds.train_labels[i]] for i in picks]
    source = ds.source.replace(args.data, Path(args.data).name) if args.data else ds.source  # no machine's folders
    plots.augmented_samples(originals, copies, labels, args.out, title=f"{args.augment} augmentation, {source}")
    print(f"wrote {args.out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Show the recipe's pieces: the network, the LR triangle, "
                                     "augmented samples.")  # fmt: skip
    commands = parser.add_subparsers(
        dest="what", required=True, metavar="{model,schedule,samples}", help="what to show (required)"
    )

    model = commands.add_parser("model", help="the layer table and parameter count", description="Print ResNet-9's "
                                "layers and parameter count.")  # fmt: skip
    model.add_argument(
        "--width", type=int, default=model_lib.DEFAULT_WIDTH, help="base width (default: 64, the original network)"
    )
    model.set_defaults(show=show_model, parser=model)

    schedule = commands.add_parser("schedule", help="draw the one-cycle LR triangle", description="Draw the "
                                   "one-cycle LR triangle.")  # fmt: skip
    schedule.add_argument("--lr-min", type=float, required=True, help="LR at the first and the last step (required)")
    schedule.add_argument("--lr-max", type=float, required=True, help="LR at the peak (required)")
    schedule.add_argument(
        "--steps-per-epoch", type=int, default=50_000 // 512, help="optimizer steps per epoch (default: 97 = "
        "50,000 images / 512)"
    )  # fmt: skip
    schedule.add_argument("--epochs", type=int, default=24, help="length of the run (default: 24)")
    schedule.add_argument("--peak-epoch", type=float, default=5.0, help="epochs until the peak (default: 5)")
    schedule.add_argument("--out", default="one_cycle.png", help="output PNG (default: one_cycle.png)")
    schedule.add_argument("--force", action="store_true", help="replace --out if it exists (default: off)")
    schedule.set_defaults(show=show_schedule, parser=schedule)

    samples = commands.add_parser("samples", help="training images beside augmented copies", description="Draw "
                                  "training images beside augmented copies of them.")  # fmt: skip
    samples.add_argument(
        "--data", default=None, help="tfds | download | synthetic | PATH (default: $JAXCIFAR_DATA, else download)"
    )
    samples.add_argument(
        "--data-dir", default=None, help="tfds data_dir, or where --data download keeps the archive (default: the "
        "cache folder)"
    )  # fmt: skip
    samples.add_argument(
        "--augment", choices=augment_lib.HOST_AUGMENTERS, default="numpy", help="implementation (default: numpy)"
    )
    d = augment_lib.AugmentConfig()
    samples.add_argument(
        "--flip-prob", type=float, default=d.flip_prob, help=f"horizontal flip probability (default: {d.flip_prob})"
    )
    samples.add_argument(
        "--cutout-prob", type=float, default=d.cutout_prob, help=f"share of images with a hole (default: "
        f"{d.cutout_prob})"
    )  # fmt: skip
    samples.add_argument(
        "--cutout-placement", choices=augment_lib.CUTOUT_PLACEMENTS, default=d.cutout_placement,
        help=f"hole whole inside the image, or centre anywhere and clipped (default: {d.cutout_placement})",
    )  # fmt: skip
    samples.add_argument(
        "--images", type=int, default=10, help="rows: one training image each, one per class first (default: 10)"
    )
    samples.add_argument("--copies", type=int, default=5, help="augmented copies per image (default: 5)")
    samples.add_argument("--seed", type=int, default=0, help="seed of the choice and the augmentation (default: 0)")
    samples.add_argument("--out", default="augmented_samples.png", help="output PNG (default: augmented_samples.png)")
    samples.add_argument("--force", action="store_true", help="replace --out if it exists (default: off)")
    samples.set_defaults(show=show_samples, parser=samples)
    return parser


@entry_point
def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.show(args, args.parser)  # the subcommand's parser: its errors name the subcommand


if __name__ == "__main__":
    main()
