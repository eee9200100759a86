"""Tests for jaxcifar.predict and Grad-CAM of your own images: a run used from Python and the command line."""

import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

import jaxcifar
from jaxcifar import gradcam
from jaxcifar.augment import normalize
from jaxcifar.data import CLASS_NAMES
from jaxcifar.errors import UsageError
from jaxcifar.predict import load_run, main, predict, read_image, to_cifar_size, top_k


def test_train_load_predict_in_a_few_lines(tiny_run):
    run, summary, config, ds = tiny_run
    loaded = jaxcifar.load_run(run)  # the best checkpoint
    assert loaded.config.width == config.width and loaded.checkpoint == "best"
    probabilities = predict(loaded.model, loaded.variables, ds.test_images)
    assert probabilities.shape == (len(ds.test_labels), 10) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)
    # by hand: the softmax of the network's logits on the normalised images
    logits = loaded.model.apply(loaded.variables, normalize(ds.test_images[:7]), train=False)
    np.testing.assert_allclose(probabilities[:7], jax.nn.softmax(logits, -1), rtol=1e-5, atol=1e-7)
    # the classes Grad-CAM picks misclassified images by, and the run's own best accuracy
    predicted = probabilities.argmax(-1)
    np.testing.assert_array_equal(predicted, gradcam.predict_classes(loaded.model, loaded.variables, ds.test_images))
    assert np.mean(predicted == ds.test_labels) == pytest.approx(summary["best_test_accuracy"])


def test_train_and_evaluate_returns_the_trained_state_beside_the_summary(tiny_run, tmp_path):
    from tiny import TINY_RUN

    result = jaxcifar.train_and_evaluate(jaxcifar.TrainConfig(**TINY_RUN, n_train=320, n_test=64, out=str(tmp_path)))
    assert result["status"] == "completed" and int(result.state.step) == 2 * 5  # 2 epochs of 5 batches
    loaded = load_run(tmp_path, "latest")  # the last checkpoint holds the state returned
    x = tiny_run[3].test_images[:5]
    np.testing.assert_array_equal(predict(loaded.model, result.variables, x), predict(*loaded[:2], x))


def test_an_image_of_another_size_is_resized_whole():
    flat = np.full((100, 60, 3), 200, np.uint8)
    assert to_cifar_size(flat).shape == (32, 32, 3) and (to_cifar_size(flat) == 200).all()
    halves = np.zeros((64, 64, 3), np.uint8)
    halves[:, 32:] = 255  # black left, white right: so the 32x32 image, blurred only at the edge
    small = to_cifar_size(halves).astype(int)
    assert (small[:, :15] == 0).all() and (small[:, 17:] == 255).all()
    np.testing.assert_array_equal(small[:, 15] + small[:, 16], 255)  # symmetric about the middle
    same = np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3)
    assert to_cifar_size(same) is same  # a 32x32 image is taken as it is
    with pytest.raises(ValueError, match=r"an image must be uint8\[H, W, 3\] \(RGB\), got float32\[8, 8, 3\]"):
        to_cifar_size(np.zeros((8, 8, 3), np.float32))
    # a list of images of any sizes becomes one batch
    batch = [flat, halves, same]
    assert predict_shapes(batch) == (3, 32, 32, 3)


def predict_shapes(images):
    from jaxcifar.predict import cifar_batch

    return cifar_batch(images).shape


def test_image_files_grey_rgba_and_bad_ones(tmp_path):
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((20, 30), 77, np.uint8), "L").save(grey)
    assert read_image(grey).shape == (20, 30, 3) and (read_image(grey) == 77).all()
    rgba = tmp_path / "rgba.png"
    pixels = np.zeros((10, 10, 4), np.uint8)
    pixels[..., 0], pixels[..., 3] = 250, 10  # red, nearly transparent: the colour is kept, alpha dropped
    Image.fromarray(pixels, "RGBA").save(rgba)
    assert (read_image(rgba) == [250, 0, 0]).all()
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(UsageError, match=f"^{text}: not an image file that PIL can read"):
        read_image(text)
    noise = tmp_path / "noise.png"  # big enough that half of it keeps the header
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(noise)
    whole = noise.read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UsageError, match=f"^{cut}: a damaged or truncated image"):
        read_image(cut)
    with pytest.raises(FileNotFoundError, match=f"^{tmp_path / 'none.jpg'}: no such image file"):
        read_image(tmp_path / "none.jpg")


def test_the_command_prints_each_images_top_classes(tiny_run, tmp_path, capsys):
    run, _, _, ds = tiny_run
    png, jpg = tmp_path / "a.png", tmp_path / "b.jpg"
    Image.fromarray(ds.test_images[0]).save(png)
    Image.fromarray(np.kron(ds.test_images[1], np.ones((2, 3, 1), np.uint8))).save(jpg, quality=95)  # 64x96
    rows = main(["--run", str(run), str(png), str(jpg)])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == [str(png), str(jpg)] and rows[1]["size"] == [64, 96]
    expected = top_k(predict(*load_run(run)[:2], [ds.test_images[0]]), 3)[0]
    assert lines[0] == f"{png}: " + ", ".join(f"{c} {100 * p:.1f}%" for c, p in expected)
    main(["--run", str(run), "--json", "--top", "2", str(png)])
    shown = json.loads(capsys.readouterr().out)
    assert shown["image"] == str(png) and [t["class"] for t in shown["top"]] == [c for c, _ in expected[:2]]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(SystemExit) as exc:
        main(["--run", str(run), str(png), str(bad)])
    assert exc.value.code == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {bad}: not an image file that PIL can read "
                                                    "(PNG, JPEG, BMP, GIF, WebP, ...)"]  # fmt: skip


def test_grad_cam_of_your_own_image_for_the_predicted_or_a_named_class(tiny_run, tmp_path, capsys):
    run, _, _, ds = tiny_run
    photo = tmp_path / "photo.jpg"
    Image.fromarray(np.kron(ds.test_images[3], np.ones((3, 3, 1), np.uint8))).save(photo, quality=95)  # 96x96
    done = gradcam.main(["--run", str(run), "--image", str(photo), "--out", str(tmp_path / "f")])
    assert (
        done["paths"] == [str(tmp_path / "f" / "gradcam_photo.png")] and (tmp_path / "f" / "gradcam_photo.png").exists()
    )
    assert done["target"] == done["predicted"]
    named = gradcam.run_on_images(run, [photo], out=tmp_path / "g", target="truck")
    assert named["target"] == ["truck"]
    # the maps of the named class are Grad-CAM's for that target, on the image as predict resizes it
    loaded = load_run(run)
    image = to_cifar_size(read_image(photo))
    direct = gradcam.gradcam(
        loaded.model, loaded.variables, normalize(image[None]), np.array([CLASS_NAMES.index("truck")])
    )
    assert direct.targets.tolist() == [CLASS_NAMES.index("truck")]
    # the overlay helper: the image where the map is 0 (alpha of jet's dark blue), an array to show anywhere
    shown = gradcam.overlay(image, direct.maps["layer1_out"][0])
    assert shown.shape == (32, 32, 3) and shown.dtype == np.uint8
    zero = gradcam.overlay(np.full((2, 2, 3), 100, np.uint8), np.zeros((2, 2)), alpha=0.0)
    assert (zero == 100).all()
    with pytest.raises(SystemExit) as exc:
        gradcam.main(["--run", str(run), "--class", "cat"])
    assert exc.value.code == 2 and "--class applies to --image" in capsys.readouterr().err


DELIVERED = Path(__file__).resolve().parents[2] / "shared" / "runs" / "png-default-s0"


@pytest.mark.skipif(not DELIVERED.is_dir(), reason=f"{DELIVERED} (a width-64 run made at 507796b) is not here")
def test_a_run_folder_of_commit_507796b_loads_predicts_and_resumes_as_complete(tmp_path, capsys):
    # The compatibility rule: folders written by 507796b or later keep working (issue 47).
    run = load_run(DELIVERED)
    assert run.config.width == 64 and run.config.lr_range_rule == "accuracy"  # the default of its day
    count = sum(x.size for x in jax.tree_util.tree_leaves(run.variables["params"]))
    assert count == 6_573_120
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    probabilities = predict(run.model, run.variables, images)
    assert probabilities.shape == (3, 10) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    copy = tmp_path / "run"
    shutil.copytree(DELIVERED, copy)
    for path in (copy, *copy.rglob("*")):  # delivered read-only; a resume takes the folder's lock
        path.chmod(path.stat().st_mode | 0o200)
    from jaxcifar import train

    summary = train.main(["--out", str(copy), "--resume", "--no-progress"])
    assert summary["final_test_accuracy"] == json.loads((DELIVERED / "summary.json").read_text())["final_test_accuracy"]
    assert "is complete (24 of 24 epochs); nothing to resume, nothing changed" in capsys.readouterr().out
