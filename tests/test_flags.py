"""Tests for jaxcifar.flags: every setting a flag of its name, its help and default, the config back as flags."""

import argparse
import dataclasses

import pytest

from jaxcifar import flags
from jaxcifar.config import TrainConfig


def parse(*argv):
    return flags.parse(list(argv), "x", "")


@pytest.mark.parametrize(
    "config",
    [
        TrainConfig(),
        TrainConfig.create(recipe="cifar10-fast", quick=True, lr_max=0.2, seed=4, tta=True),
        TrainConfig(width=8, nesterov=True, progress=False, gradcam=False, lr_range_iters=50, lr_div=20.0),
        TrainConfig(dtype="bfloat16", peak_epoch=4.0, augment="device", data="synthetic"),
        TrainConfig(conv="xla"),
        TrainConfig(conv="winograd", batch_norm="matvec"),
        TrainConfig(batch_norm="flax"),
        TrainConfig.create(quick=True, n_train=640, lr_range_rule="min-loss", checkpoint_every=0),
        TrainConfig(lr_range_rule="valley", lr_min_rule="rise", lr_min_fraction=0.25),
        TrainConfig(flip_prob=0.7, cutout_prob=0.5, cutout_placement="clip"),
    ],
)
def test_a_config_reads_back_as_flags(config):
    assert parse(*flags.to_argv(config)) == config


def test_every_field_is_a_flag_of_its_own_name_and_old_names_still_work():
    parser = argparse.ArgumentParser()
    flags.add_arguments(parser)
    names = {o for a in parser._actions for o in a.option_strings}
    for field in dataclasses.fields(TrainConfig):
        if field.name not in ("overrides", "changed"):  # records, not settings
            assert "--" + field.name.replace("_", "-") in names, field.name
    new = parse("--lr-range-iters", "50", "--lr-div", "20", "--lr-range-start", "1e-3", "--lr-range-end", "1",
                "--lr-range-rule", "steepest")  # fmt: skip
    assert (new.lr_range_iters, new.lr_div, new.lr_range_rule, new.lr_range_end) == (50, 20.0, "steepest", 1.0)
    # The old names went with issue 47 (one name per setting); --config, a feature, stays.
    for old in ("--num-iter", "--div-factor", "--start-lr", "--end-lr", "--lr-mode", "--rule", "--smoothing",
                "--diverge-factor"):  # fmt: skip
        assert old not in names, old
    assert "--config" in names
    assert parse("--no-progress", "--no-gradcam").progress is False
    assert parse("--lr-max", "auto", "--dtype", "auto").lr_max is None


def test_help_shows_every_flag_with_its_default(capsys):
    parser = argparse.ArgumentParser()
    flags.add_arguments(parser)
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.help and ("default" in action.help or action.dest in ("quick", "resume", "distributed",
                                    "recipe", "lr_range_json", "out", "data_dir")), action.dest  # fmt: skip
    text = parser.format_help()
    assert "--quick" in text and "peak at epoch 1.67" in text  # --quick's values, its peak included
    assert "tests on 1,000 of the 10,000 test images" in " ".join(text.split())
    assert "5/24 of --epochs" in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--lr-max", "fast"], "expected 'auto' or a number, got 'fast'"),
        (["--epochs", "10", "--peak-epoch", "12"], "peak-epoch must lie strictly between 0 and epochs=10"),
        (["--dtype", "float16"], "invalid choice: 'float16'"),
        (["--lr-max", "0.01", "--lr-min", "0.1"], "lr-min (0.1) must not exceed lr-max (0.01)"),
        (["--resume"], "--resume continues the run in --out"),
        (["--augment", "torchvision"], "invalid choice: 'torchvision'"),
        (["--recipe", "page"], "invalid choice: 'page'"),
        (["--batch-size", "0"], "batch-size must be positive, got 0"),
        (["--width", "-1"], "width must be positive, got -1"),
        (["--flip-prob", "3"], "flip-prob must be a probability in [0, 1], got 3.0"),
        (["--cutout-prob", "2"], "cutout-prob must be a probability in [0, 1], got 2.0"),
        (["--cutout-placement", "edge"], "invalid choice: 'edge'"),
    ],
)
def test_bad_flags_are_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_every_setting_is_a_flag_that_says_its_fields_help_and_default():
    parser = argparse.ArgumentParser()
    flags.add_arguments(parser)
    actions = {a.dest: a for a in parser._actions}
    flagged = [f for f in dataclasses.fields(TrainConfig) if f.metadata["group"]]
    assert {f.name for f in dataclasses.fields(TrainConfig)} - {f.name for f in flagged} == {"overrides", "changed"}
    for f in flagged:
        action = actions[f.name]
        assert action.option_strings[0] == "--" + f.name.replace("_", "-")
        assert action.help.startswith(f.metadata["help"].replace("%", "%%") + " (default: ")  # argparse's escape
    assert actions["lr_range_iters"].option_strings == ["--lr-range-iters"]
    assert "within 5% of its peak" in " ".join(parser.format_help().split())  # shown as written
    assert actions["from_config"].option_strings == ["--from-config", "--config"]
    assert actions["weight_decay"].help == (
        "L2 coefficient added to the gradient of every parameter (PyTorch SGD style) (default: 0.005)"
    )
    assert actions["workers"].help == "augmentation threads (default: 0 = min(4, CPU cores))"
    assert actions["lr_max"].type("auto") is None and actions["lr_max"].type("0.25") == 0.25
    assert actions["conv"].type("auto") is None and actions["conv"].type("winograd") == "winograd"
    assert actions["augment"].choices == ("numpy", "albumentations", "device") and actions["epochs"].type is int
    assert isinstance(actions["nesterov"], argparse.BooleanOptionalAction) and actions["quick"].nargs == 0
    assert [g.title for g in parser._action_groups[2:]] == list(flags.GROUPS)
