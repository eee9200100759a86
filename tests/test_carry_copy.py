"""Tests for research.carry_copy: the copy reads back as the same images in the same order, near the
lossless ones, is refused over its budget, and tests a network on both test sets."""

import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from jaxcifar import data
from research import carry_copy
from research.jpeg_quality import psnr


def png_archive(ds, path):
    """`ds` as a lossless image-folder tar.gz, as ../shared/data/cifar10-png.tar.gz is laid out."""
    with tarfile.open(path, "w:gz") as tar:
        for split in ("train", "test"):
            for i, (image, label) in enumerate(zip(getattr(ds, f"{split}_images"), getattr(ds, f"{split}_labels"))):
                blob = io.BytesIO()
                Image.fromarray(image).save(blob, "PNG")
                info = tarfile.TarInfo(f"cifar10-png/{split}/{ds.class_names[label]}/{i:05d}.png")
                info.size = blob.tell()
                tar.addfile(info, io.BytesIO(blob.getvalue()))


def test_the_copy_reads_back_as_the_same_images_in_the_same_order(tmp_path):
    lossless = data.synthetic(n_train=200, n_test=100, seed=3)
    out = tmp_path / "copy.tar.gz"
    carry_copy.write_copy(lossless, out, quality=92)
    read = data.load_cifar10(out, cache_dir=tmp_path / "cache")  # by class, then by name
    assert not np.array_equal(read.train_labels, lossless.train_labels)
    copy = carry_copy.same_order(lossless, read)
    np.testing.assert_array_equal(copy.test_labels, lossless.test_labels)
    # JPEG at 92 without chroma subsampling: close to every pixel (misordered images: ~10 dB)
    assert psnr(copy.test_images, lossless.test_images) > 30
    assert psnr(read.test_images, lossless.test_images) < 20
    # each image on its own: a copy at 92 is close to its source, a lower quality further
    lower = carry_copy.same_order(lossless, data.load_cifar10(_copy(lossless, tmp_path, 40), cache_dir=tmp_path / "c2"))
    assert psnr(lower.test_images, lossless.test_images) < psnr(copy.test_images, lossless.test_images)


def _copy(ds, tmp_path, quality):
    out = tmp_path / f"copy-{quality}.tar.gz"
    carry_copy.write_copy(ds, out, quality)
    return out


def test_the_cli_tests_a_network_on_both_test_sets_and_refuses_a_copy_over_budget(tiny_run, tmp_path, capsys):
    run, summary, _, ds = tiny_run
    png = tmp_path / "tiny-png.tar.gz"
    png_archive(ds, png)
    argv = ["--png", str(png), "--run", str(run), "--cache-dir", str(tmp_path / "cache"), "--survey-images", "50"]
    with pytest.raises(SystemExit) as exc:
        carry_copy.main([*argv, "--out", str(tmp_path / "big.tar.gz"), "--max-mb", "0.01"])
    assert exc.value.code == 2 and "over --max-mb 0.01: lower --quality" in capsys.readouterr().err
    assert not (tmp_path / "big.tar.gz").exists()
    result = carry_copy.main([*argv, "--out", str(tmp_path / "copy.tar.gz"), "--json", str(tmp_path / "r.json")])
    assert json.loads((tmp_path / "r.json").read_text())["copy"]["bytes"] == (tmp_path / "copy.tar.gz").stat().st_size
    network = result["network"]
    # the lossless test set read back from the archive is the run's own: its final accuracy again
    assert network["test_accuracy_png"] == pytest.approx(summary["final_test_accuracy"], abs=1e-6)
    assert network["points"] == pytest.approx(100 * (network["test_accuracy_copy"] - network["test_accuracy_png"]))
    assert result["psnr_db"]["test"] > 30 and result["quality"] == 92
    # the choices: PNG and lossless WebP keep every pixel, JPEG loses more at lower quality
    survey = {row["choice"]: row for row in result["survey"]["rows"]}
    assert result["survey"]["images"] == 50 and survey["WebP, lossless"]["psnr_db"] == float("inf")
    jpeg = [survey[f"JPEG 4:4:4, quality {q}"] for q in (95, 93, 92, 90)]
    assert [r["psnr_db"] for r in jpeg] == sorted((r["psnr_db"] for r in jpeg), reverse=True)
    assert [r["bytes_per_image"] for r in jpeg] == sorted((r["bytes_per_image"] for r in jpeg), reverse=True)


def test_a_copy_with_a_lossless_test_set_keeps_every_test_pixel(tiny_run, tmp_path):
    ds = tiny_run[3]
    png = tmp_path / "tiny-png.tar.gz"
    png_archive(ds, png)
    out = tmp_path / "copy-lt.tar.gz"
    result = carry_copy.make(png, out, 90, 45.0, None, tmp_path / "cache", survey_images=20, lossless_test=True)
    with tarfile.open(out) as tar:
        names = [m.name for m in tar if m.isfile()]
    assert {n.rsplit(".", 1)[1] for n in names if "/test/" in n} == {"png"}
    assert {n.rsplit(".", 1)[1] for n in names if "/train/" in n} == {"jpg"}
    assert result["lossless_test"] and "the test set as PNG (lossless)" in result["format"]
    assert set(result["psnr_db"]) == {"train"} and result["psnr_db"]["train"] > 25  # in order (misordered: ~10 dB)
    # the same test pixels, in the loader's order (make() refuses a copy whose PNGs differ), other training pixels
    copy = carry_copy.same_order(ds, data.load_cifar10(out, cache_dir=tmp_path / "cache"))
    np.testing.assert_array_equal(copy.test_images, ds.test_images)
    assert not np.array_equal(copy.train_images, ds.train_images)
