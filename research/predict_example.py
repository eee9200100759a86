"""The example output of the after-training commands, for docs/training.md, from a real run.

    python -m research.predict_example --run runs/cpu-quick --data ../shared/data/cifar10-png.tar.gz \
        --json results/predict-example.json --figure figures/gradcam_own-cpu-quick.png

Takes the first test image (by file name) of a few classes from an image-folder archive and
writes each as a user's file would come: one as it is (32x32 PNG), one enlarged to a photo's
size and saved as JPEG, one in grey. Then runs `python -m jaxcifar.predict` on them (text and
--json) and `python -m jaxcifar.gradcam --image` on the enlarged one, in a scratch folder, and
records the commands and what they printed; the Grad-CAM figure is copied to --figure. Nothing
decoded from the archive is kept but the figure.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from jaxcifar import gradcam, predict, records
from jaxcifar.errors import entry_point

# (class folder, file written, how it was made from the test image, the change)
EXAMPLES = (
    ("ship", "ship.png", "as it is", lambda image: image),
    ("cat", "cat-photo.jpg", "enlarged", lambda image: image.resize((160, 120), Image.Resampling.BICUBIC)),
    ("horse", "horse-grey.png", "in grey", lambda image: image.convert("L")),
)


def first_test_image(archive: Path, folder: str) -> tuple[str, Image.Image]:
    """(member name, RGB image) of the first test image by name in class `folder` of an image-folder archive."""
    with tarfile.open(archive) as tar:
        members = sorted(
            (m for m in tar.getmembers() if m.isfile() and Path(m.name).parent.parts[-2:] == ("test", folder)),
            key=lambda m: m.name,
        )
        if not members:
            raise FileNotFoundError(f"{archive} has no test/{folder}/ images: pass an image-folder archive")
        with tar.extractfile(members[0]) as f, Image.open(io.BytesIO(f.read())) as im:
            return members[0].name, im.convert("RGB")


def write_examples(archive: Path, where: Path) -> list[dict]:
    """The example files in `where`, as a user's files: [{"file", "from", "size", "mode", "made"}]."""
    made = []
    for folder, name, how, change in EXAMPLES:
        member, image = first_test_image(archive, folder)
        image = change(image)
        image.save(where / name, **({"quality": 90} if name.endswith(".jpg") else {}))
        made.append({"file": name, "from": member, "size": list(image.size), "mode": image.mode, "made": how})
    return made


def printed(main, argv: list[str]) -> list[str]:
    """The lines `main(argv)` printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(argv)
    return out.getvalue().splitlines()


def make(run: Path, archive: Path, figure: Path) -> dict:
    run = run.resolve()
    shown = "runs/" + run.name  # the commands as a user in the repository root types them
    with tempfile.TemporaryDirectory() as scratch:
        where = Path(scratch)
        images = write_examples(archive, where)
        names = [i["file"] for i in images]
        here = Path.cwd()
        os.chdir(where)  # the commands print the file names as given
        try:
            (where / "runs").symlink_to(run.parent)
            text = printed(predict.main, ["--run", shown, *names])
            as_json = [json.loads(line) for line in printed(predict.main, ["--run", shown, "--json", *names])]
            photo = names[1]
            cam = printed(gradcam.main, ["--run", shown, "--image", photo, "--out", "."])
            (here / figure).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(where / f"gradcam_{Path(photo).stem}.png", here / figure)
        finally:
            os.chdir(here)
    return {
        "run": str(Path(os.path.relpath(run, Path.cwd()))),
        "run_test_accuracy": records.read_json(run / "summary.json")["final_test_accuracy"],
        "data": archive.name,
        "images": images,
        "commands": {
            "predict": f"python -m jaxcifar.predict --run {shown} {' '.join(names)}",
            "predict_json": f"python -m jaxcifar.predict --run {shown} --json {' '.join(names)}",
            "gradcam": f"python -m jaxcifar.gradcam --run {shown} --image {photo} --out .",
        },
        "predict": text,
        "predict_json": as_json,
        "gradcam": cam,
        "figure": str(figure),
        **records.provenance(),
    }


@entry_point
def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m research.predict_example", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, type=Path, help="a finished run folder (required)")
    parser.add_argument("--data", required=True, type=Path, help="an image-folder archive (required)")
    parser.add_argument("--json", required=True, type=Path, help="where the record goes (required)")
    parser.add_argument("--figure", required=True, type=Path, help="where the Grad-CAM figure goes (required)")
    parser.add_argument("--force", action="store_true", help="replace --json and --figure (default: off)")
    args = parser.parse_args(argv)
    records.refuse_overwrite(args.json, args.figure, force=args.force)
    result = make(args.run, args.data, args.figure)
    records.write_json(args.json, result)
    print(f"wrote {args.json} and {args.figure}")
    return result


if __name__ == "__main__":
    main()
