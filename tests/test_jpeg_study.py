"""Tests for research.jpeg_quality: the same training on the data as it is and compressed once more."""

import json

import numpy as np
import pytest

from jaxcifar import data
from research import jpeg_quality

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
    expected = data.psnr(ds.test_images, data.jpeg_recompress(ds.test_images, 30, 4))
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
    assert once_more["test_psnr_db"] == pytest.approx(
        data.psnr(ds.test_images, data.jpeg_recompress(ds.test_images, 10, 4))
    )
    with pytest.raises(SystemExit) as exc:
        jpeg_quality.main(["--trained", str(tmp_path / "nowhere")])
    assert (
        exc.value.code == 2
        and "nowhere: no config.json there; give folders written by jaxcifar.train" in capsys.readouterr().err
    )
