"""Tests for jaxcifar.show: the layer table, the LR triangle and the sample grid, and their errors."""

import pytest

from jaxcifar import show


def test_model_prints_the_originals_total(capsys):
    show.main(["model"])
    out = capsys.readouterr().out
    assert "Total params: 6,573,120" in out
    assert "res2/conv_bn2/conv  Conv       (1, 4, 4, 512)       2,359,296" in out
    assert "fc                  Dense      (1, 10)                  5,120" in out


def test_model_rejects_bad_width(capsys):
    with pytest.raises(SystemExit) as exc:
        show.main(["model", "--width", "0"])
    assert (
        exc.value.code == 2
        and "show model: error: --width must be a positive integer, got 0" in capsys.readouterr().err
    )


def test_schedule_draws_the_triangle(tmp_path, capsys):
    out = tmp_path / "one_cycle.png"
    show.main(["schedule", "--lr-min", "0.00444", "--lr-max", "0.0444", "--out", str(out)])
    assert out.stat().st_size > 10_000
    assert "0.00444 -> 0.0444 at epoch 5 -> 0.00444" in capsys.readouterr().out
    before = out.stat().st_mtime_ns
    with pytest.raises(SystemExit) as exc:  # an existing figure is kept unless --force
        show.main(["schedule", "--lr-min", "0.001", "--lr-max", "0.01", "--out", str(out)])
    assert exc.value.code == 2 and "already exists; nothing is overwritten. Pass --force" in capsys.readouterr().err
    assert out.stat().st_mtime_ns == before
    show.main(["schedule", "--lr-min", "0.001", "--lr-max", "0.01", "--out", str(out), "--force"])
    assert "0.001 -> 0.01" in capsys.readouterr().out


def test_schedule_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit) as exc:
        show.main(["schedule", "--lr-min", "0.5", "--lr-max", "0.1"])
    assert exc.value.code == 2
    assert "0 <= lr_min <= lr_max" in capsys.readouterr().err


def test_samples_draws_the_grid_and_keeps_what_exists(tmp_path):
    out = tmp_path / "figs" / "augmented_samples.png"
    show.main(["samples", "--data", "synthetic", "--images", "3", "--copies", "2", "--out", str(out)])
    from PIL import Image

    with Image.open(out) as im:
        width, height = im.size
    assert width > 300 and height > 300  # 3 rows x 3 columns of 32x32 images, scaled up
    with pytest.raises(SystemExit) as exc:
        show.main(["samples", "--data", "synthetic", "--images", "3", "--copies", "2", "--out", str(out)])
    assert exc.value.code == 2


def test_samples_refuses_a_bad_cutout_prob_before_writing(tmp_path, capsys):
    out = tmp_path / "grid.png"
    with pytest.raises(SystemExit) as exc:
        show.main(
            ["samples", "--data", "synthetic", "--cutout-prob", "3", "--cutout-placement", "clip", "--out", str(out)]
        )
    assert exc.value.code == 2 and not out.exists()
    assert "cutout_prob must be a probability in [0, 1], got 3.0" in capsys.readouterr().err


def test_no_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        show.main([])
    assert exc.value.code == 2 and "{model,schedule,samples}" in capsys.readouterr().err
