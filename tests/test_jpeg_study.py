"""Tests for research.jpeg_quality: the same training on the data as it is and compressed once more."""

import json

import numpy as np
import pytest

from jaxcifar import data
from research import jpeg_quality
from research.jpeg_quality import jpeg_recompress, psnr

TINY = ("--data synthetic --n-train 256 --n-test 64 --width 4 --batch-size 64 --epochs 1 --recipe cifar10-fast").split()


def test_variants_parse_to_quality_and_shift():
    assert jpeg_quality.parse_variant("none") is None
    assert jpeg_quality.parse_variant("50") == (50, 0)
    assert jpeg_quality.parse_variant("75@4") == (75, 4)
    with pytest.raises(ValueError, match=r"variant 'q75': expected 'none', a JPEG quality"):
        jpeg_quality.parse_variant("q75")
    with pytest.raises(ValueError, match=r"variant '75@8': the quality must be in 1..95 and the shift in 0..7"):
        jpeg_quality.parse_variant("75@8")


def test_each_variant_trains_every_seed_on_its_own_compressed_images(tmp_path):
    out = tmp_path / "study"
    args = [*TINY, "--variants", "none", "30@4", "--seeds", "2", "--out", str(out), "--json", str(tmp_path / "j.json")]
    result = jpeg_quality.main(args)
    assert json.loads((tmp_path / "j.json").read_text())["variants"] == result["variants"]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "30-at-4-seed-0", "30-at-4-seed-1", "none-seed-0", "none-seed-1"
    ]  # fmt: skip
    as_is, once_more = result["variants"]
    assert as_is["quality"] is None and as_is["test_psnr_db"] is None
    # The PSNR recorded is that of the images the runs saw, against the data as it is.
    ds = data.load_cifar10("synthetic", n_train=256, n_test=64)
    expected = psnr(ds.test_images, jpeg_recompress(ds.test_images, 30, 4))
    assert (once_more["quality"], once_more["shift"]) == (30, 4)
    assert once_more["test_psnr_db"] == pytest.approx(expected)
    for row in result["variants"]:
        finals = [r["final_test_accuracy"] for r in row["runs"]]
        assert [r["seed"] for r in row["runs"]] == [0, 1]
        assert row["final_test_accuracy_mean"] == pytest.approx(np.mean(finals))
        assert row["final_test_accuracy_std"] == pytest.approx(np.std(finals, ddof=1))
    summary = json.loads((out / "30-at-4-seed-1" / "summary.json").read_text())
    assert summary["data_source"].endswith("JPEG once more (30@4)")
    assert summary["final_test_accuracy"] == once_more["runs"][1]["final_test_accuracy"]


def test_bad_variants_and_a_used_folder_are_refused_before_training(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        jpeg_quality.main([*TINY, "--variants", "none", "jpeg75", "--out", str(tmp_path / "a")])
    assert exc.value.code == 2 and "variant 'jpeg75': expected 'none'" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    with pytest.raises(SystemExit) as exc:
        jpeg_quality.main([*TINY, "--variants", "75@4", "none", "--out", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--variants must start with 'none'" in err and "got 75@4 none; put none first" in err
    assert not (tmp_path / "a").exists()
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit) as exc:
        jpeg_quality.main([*TINY, "--out", str(used)])
    assert exc.value.code == 2 and "already exists and is not empty" in capsys.readouterr().err
    assert (used / "keep.txt").read_text() == "mine"


def test_a_trained_network_is_tested_on_each_variants_test_images(tmp_path, tiny_run, capsys):
    run, summary, config, ds = tiny_run
    out = tmp_path / "trained.json"
    result = jpeg_quality.main(["--trained", str(run), str(run), "--variants", "none", "10@4", "--json", str(out)])
    assert json.loads(out.read_text())["networks"] == result["networks"]
    first, second = result["networks"]
    assert first == second and first["run"] == str(run)
    as_is, once_more = first["variants"]
    # the run's own network and data: its final test accuracy again
    assert as_is["test_accuracy"] == pytest.approx(summary["final_test_accuracy"], abs=1e-6)
    assert first["run_final_test_accuracy"] == summary["final_test_accuracy"]
    assert "train_psnr_db" not in once_more  # the training images are left alone
    assert once_more["test_psnr_db"] == pytest.approx(psnr(ds.test_images, jpeg_recompress(ds.test_images, 10, 4)))
    with pytest.raises(SystemExit) as exc:
        jpeg_quality.main(["--trained", str(tmp_path / "nowhere")])
    assert (
        exc.value.code == 2
        and "nowhere: no config.json there; give folders written by jaxcifar.train" in capsys.readouterr().err
    )


def test_psnr_against_hand_computed_values():
    a = np.zeros((2, 32, 32, 3), np.uint8)
    assert psnr(a, a + 1) == pytest.approx(10 * np.log10(255**2))  # MSE 1: 48.13 dB
    b = a.copy()
    b[0] = 4  # half the pixels off by 4: MSE 8
    assert psnr(a, b) == pytest.approx(10 * np.log10(255**2 / 8))
    assert psnr(a, a) == float("inf")


def test_jpeg_recompress_off_the_block_grid_is_a_fresh_loss():
    images = data.synthetic(40, 10).train_images
    once = jpeg_recompress(images, 75)
    assert once.shape == images.shape and once.dtype == np.uint8
    same_grid = psnr(once, jpeg_recompress(once, 75))
    off_grid = psnr(once, jpeg_recompress(once, 75, shift=4))
    # measured: 35.9 dB on the grid, 26.1 dB off it, on this noisy synthetic data
    assert same_grid > off_grid + 5
    assert psnr(once, jpeg_recompress(once, 30, shift=4)) < off_grid - 2
    with pytest.raises(ValueError, match=r"JPEG quality must be in 1..95 \(PIL's useful range\), got 96"):
        jpeg_recompress(images, 96)
    with pytest.raises(ValueError, match=r"the block-grid shift must be 0..7 pixels .*, got 8"):
        jpeg_recompress(images, 75, shift=8)


def test_jpeg_recompress_uses_the_copys_encoder_settings(real_cifar):
    # The copy is quality 75 with libjpeg's tables and 4:2:0 colour: encoding it again
    # with the same settings on the same grid leaves it almost as it is (measured on these
    # 500 test images: 49.8 dB; with 4:4:4 colour 43.6 dB, at quality 80 40.3 dB).
    images = real_cifar.test_images[:500]
    assert psnr(images, jpeg_recompress(images, 75)) > 45
    assert psnr(images, jpeg_recompress(images, 75, shift=4)) < 35
