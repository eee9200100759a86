"""A finished run's results and figures, brought into the repository.

    python -m research.collect_run runs/NAME --name NAME [--suffix=-cpu-quick] [--machine "..."]

results/NAME.json holds the command, hardware, versions, settings, per-epoch
metrics, final and best accuracies and times (config.json + summary.json +
metrics.json of the run, without the per-step log, and the LR range test's
suggestions when there was one), and the data the run read (kind, size and
sha256 of the file, and which CIFAR-10 it is where the file is one of the known
archives). The run's figures are copied to figures/<figure><suffix>.png. A run made
before runs recorded their CPU (or on another machine) is given its machine with
--machine, as its maker described it. Nothing is overwritten unless --force.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from jaxcifar import records
from jaxcifar.data import file_digest
from jaxcifar.errors import entry_point

FIGURES = (
    "accuracy",
    "loss_accuracy",
    "one_cycle",
    "lr_range",
    "gradcam_misclassified",
    "gradcam_grid",
    "misclassified",
)


# The archives of ../shared/data/README.md, by sha256: the name every number is reported under.
KNOWN_DATA = {
    "81e53ff6ac7fd165c5d183b39aec0dcd9b2886f6cf127ed248cd308f52926f58": "official CIFAR-10 (lossless PNG)",
    "1fab6e733a06cc26af0ccd8cfea06054bfe6fe3f0a1a296b26aac44a058c45ac": "the JPEG copy (quality 75)",
}


def data_file(data: str | None, where: Path = Path(".")) -> dict | None:
    """Name, size and sha256 of the file a run read its images from (`data` as given, relative
    to `where`); None for tfds, the download, synthetic data or an extracted folder."""
    path = where / data if data else None
    if path is None or not path.is_file():
        return None
    digest = file_digest(path, "sha256")
    found = {"file": path.name, "bytes": path.stat().st_size, "sha256": digest}
    return found | ({"label": KNOWN_DATA[digest]} if digest in KNOWN_DATA else {})


def collect(
    run: Path, name: str, suffix: str = "", force: bool = False, root: Path = Path("."), machine: str | None = None
) -> Path:
    for required in ("config.json", "summary.json", "metrics.json"):
        if not (run / required).exists():
            raise FileNotFoundError(f"{run / required} not found: is {run} a finished jaxcifar run?")
    out = root / "results" / f"{name}.json"
    targets = [
        (run / f"{f}.png", root / "figures" / f"{f}{suffix}.png") for f in FIGURES if (run / f"{f}.png").exists()
    ]
    records.refuse_overwrite(out, *(t for _, t in targets), force=force)
    config, summary = records.read_json(run / "config.json"), records.read_json(run / "summary.json")
    metrics = records.read_json(run / "metrics.json")
    result = {
        "run": str(run),
        **summary,
        "config": config["config"],
        "started_with": config.get("command", summary.get("command")),  # the summary's is the last resume's
        "epochs": metrics["epochs"],
        "steps_per_epoch": metrics["steps_per_epoch"],
    }
    if found := data_file(config["config"].get("data")):
        result["data_file"] = found
    if machine:
        result["host"] = {**result.get("host", {}), "described": machine}
    if (run / "lr_range.json").exists():
        sweep = records.read_json(run / "lr_range.json")
        result["lr_range"] = {
            k: sweep[k]
            for k in ("settings", "iterations", "stopped", "suggestions", "rule", "lr_max", "lr_min", "seconds")
        }
    records.write_json(out, result)
    for src, dst in targets:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    return out


@entry_point
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m research.collect_run",
        description="Copy a finished run's results and figures into results/ and figures/ of the repository.",
    )
    parser.add_argument("run", type=Path, help="the run folder")
    parser.add_argument("--name", required=True, help="write results/NAME.json (required)")
    parser.add_argument("--suffix", default="", help="appended to each figure's name, e.g. -cpu-quick (default: none)")
    parser.add_argument(
        "--machine",
        help="what the run ran on, as its maker says, for runs that did not record their CPU (default: none)",
    )
    parser.add_argument("--force", action="store_true", help="replace existing files (default: off)")
    args = parser.parse_args(argv)
    try:
        out = collect(args.run, args.name, args.suffix, args.force, machine=args.machine)
    except (FileNotFoundError, FileExistsError) as e:
        parser.error(str(e))
    print(f"wrote {out} and the figures of {args.run}")


if __name__ == "__main__":
    main()
