"""research/predict_example.py: the after-training commands' example output, on a tiny run."""

import json

import numpy as np
import pytest
from PIL import Image

from jaxcifar import data
from jaxcifar.data import CLASS_NAMES
from jaxcifar.predict import load_run, predict, read_image
from research import carry_copy, predict_example


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """An image-folder archive of synthetic images, the test images lossless as in the PNG set."""
    path = tmp_path_factory.mktemp("archive") / "images.tar.gz"
    carry_copy.write_copy(data.synthetic(n_train=20, n_test=40, seed=5), path, 90, lossless_test=True)
    return path


def test_the_example_files_are_the_first_test_images_as_a_user_would_have_them(archive, tmp_path):
    made = predict_example.write_examples(archive, tmp_path)
    assert [m["file"] for m in made] == ["ship.png", "cat-photo.jpg", "horse-grey.png"]
    assert [(m["size"], m["mode"], m["made"]) for m in made] == [
        ([32, 32], "RGB", "as it is"), ([160, 120], "RGB", "enlarged"), ([32, 32], "L", "in grey")
    ]  # fmt: skip
    ds = data.load_cifar10(archive, cache_dir=tmp_path / "cache")  # by class, then by file name
    first_ship = ds.test_images[np.flatnonzero(ds.test_labels == CLASS_NAMES.index("ship"))[0]]
    assert made[0]["from"].endswith("/test/ship/" + made[0]["from"].rsplit("/", 1)[1])
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "ship.png")), first_ship)
    with Image.open(tmp_path / "cat-photo.jpg") as im:
        assert im.format == "JPEG" and im.size == (160, 120)
    with pytest.raises(FileNotFoundError, match=r"has no test/plane/ images: pass an image-folder archive"):
        predict_example.first_test_image(archive, "plane")


def test_it_records_what_the_commands_printed_and_copies_the_figure(archive, tiny_run, tmp_path, monkeypatch):
    run = tiny_run[0]
    monkeypatch.chdir(tmp_path)
    result = predict_example.main(["--run", str(run), "--data", str(archive), "--json", "ex.json", "--figure", "f.png"])
    saved = json.loads((tmp_path / "ex.json").read_text())
    assert saved["predict_json"] == result["predict_json"] and saved["data"] == "images.tar.gz"
    assert saved["run_test_accuracy"] == json.loads((run / "summary.json").read_text())["final_test_accuracy"]
    files = [i["file"] for i in saved["images"]]
    assert saved["commands"]["predict"] == f"python -m jaxcifar.predict --run runs/{run.name} {' '.join(files)}"
    # The text lines and the JSON rows say the same, and both are the network's probabilities
    # of the files as written (made again here from the same archive).
    predict_example.write_examples(archive, tmp_path)
    loaded = load_run(run)
    expected = predict(loaded.model, loaded.variables, [read_image(tmp_path / f) for f in files])
    for line, row, p in zip(saved["predict"], saved["predict_json"], expected):
        top = [(t["class"], t["probability"]) for t in row["top"]]
        assert [c for c, _ in top] == [CLASS_NAMES[c] for c in np.argsort(-p, kind="stable")[:3]]
        np.testing.assert_allclose([q for _, q in top], np.sort(p)[::-1][:3], rtol=1e-5)
        assert line == f"{row['image']}: " + ", ".join(f"{c} {100 * q:.1f}%" for c, q in top)
    assert saved["gradcam"] == ["Grad-CAM: wrote gradcam_cat-photo.png"]
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit) as exc:  # nothing replaced without --force
        predict_example.main(["--run", str(run), "--data", str(archive), "--json", "ex.json", "--figure", "g.png"])
    assert exc.value.code == 2 and not (tmp_path / "g.png").exists()
