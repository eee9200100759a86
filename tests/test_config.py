"""Tests for jaxcifar.config: presets that cannot lie, one vocabulary of flags, validation at construction."""

import argparse
import dataclasses

import pytest

from jaxcifar import config as config_lib
from jaxcifar.config import QUICK, RECIPES, TrainConfig


def parse(*argv):
    return config_lib.parse(list(argv), "x", "")


# --- presets -----------------------------------------------------------------------


def test_recipes_set_their_values_that_flags_override():
    default = parse()
    assert (default.recipe, default.quick, default.overrides) == ("original", False, ())
    assert (default.nesterov, default.weight_decay, default.logit_scale, default.lr_max) == (False, 5e-3, 1.0, None)
    fast = parse("--recipe", "cifar10-fast")
    assert (fast.nesterov, fast.weight_decay, fast.logit_scale, fast.lr_max, fast.lr_min) == (True, 5e-4, 0.125, 0.4, 0)
    assert (fast.epochs, fast.batch_size, fast.peak, fast.cutout) == (24, 512, 5.0, 8)  # shared with original
    mixed = parse("--recipe", "cifar10-fast", "--lr-max", "0.2", "--quick")
    assert (mixed.lr_max, mixed.lr_min, mixed.weight_decay, mixed.width) == (0.2, 0.0, 5e-4, 16)
    assert mixed.overrides == ("lr_max",)  # what was changed is recorded
    # Giving a preset's own value is not an override.
    assert parse("--recipe", "cifar10-fast", "--weight-decay", "5e-4").overrides == ()


def test_a_preset_name_cannot_carry_other_values_from_python():
    # The old bug: TrainConfig(recipe="cifar10-fast") trained the original's settings.
    with pytest.raises(
        ValueError, match=r"recipe 'cifar10-fast' sets nesterov=True, but this config has nesterov=False"
    ):
        TrainConfig(recipe="cifar10-fast")
    with pytest.raises(ValueError, match=r"--quick sets n_train=5000, but this config has n_train=None"):
        TrainConfig(quick=True)
    fast = TrainConfig.create(recipe="cifar10-fast")
    assert (fast.nesterov, fast.weight_decay, fast.logit_scale, fast.lr_max) == (True, 5e-4, 0.125, 0.4)
    assert TrainConfig.create(recipe="cifar10-fast") == parse("--recipe", "cifar10-fast")
    # dataclasses.replace keeps the check: a preset value changed there must be declared.
    with pytest.raises(ValueError, match=r"sets weight_decay=0.0005"):
        dataclasses.replace(fast, weight_decay=5e-3)
    assert dataclasses.replace(fast, seed=3).seed == 3  # not a preset setting: free to vary
    with pytest.raises(ValueError, match=r"overrides \['width'\] are not settings of recipe 'original'"):
        TrainConfig(overrides=("width",))


def test_quick_sets_small_defaults_that_flags_override():
    cfg = parse("--quick")
    assert {k: getattr(cfg, k) for k in QUICK} == QUICK
    assert cfg.peak == pytest.approx(8 * 5 / 24)  # 5/24 of its 8 epochs
    cfg = parse("--quick", "--epochs", "3")
    assert cfg.epochs == 3 and cfg.width == 16 and cfg.overrides == ("epochs",)
    assert TrainConfig.create(quick=True, epochs=3) == cfg


def test_config_json_round_trip_and_earlier_versions():
    fast = TrainConfig.create(recipe="cifar10-fast", quick=True, lr_max=0.2, seed=4)
    assert TrainConfig.from_json(fast.to_json()) == fast
    # config.json of jaxcifar 0.1: "auto" sentinels, no overrides or quick fields
    old = {
        **dataclasses.asdict(TrainConfig()),
        "lr_max": "auto",
        "lr_min": "auto",
        "dtype": "auto",
        "kernel_grad": "auto",
    }
    del old["overrides"], old["quick"], old["checkpoint_every"]
    loaded = TrainConfig.from_json(old)
    assert (loaded.lr_max, loaded.lr_min, loaded.dtype) == (None, None, None)
    assert loaded == TrainConfig.from_json({**old, "kernel_grad": "taps"})  # a benchmark variant since 0.2.0
    assert not hasattr(loaded, "kernel_grad")
    # runs from before --conv used XLA's convolutions, and resume with them; new runs say what they asked
    assert TrainConfig.from_json({k: v for k, v in old.items() if k != "conv"}).conv == "xla"
    assert TrainConfig.from_json(TrainConfig().to_json()).conv is None
    # likewise Flax's BatchNorm before --batch-norm
    assert TrainConfig.from_json({k: v for k, v in old.items() if k != "batch_norm"}).batch_norm == "flax"
    assert TrainConfig.from_json(TrainConfig().to_json()).batch_norm is None
    old_fast = {**old, "recipe": "cifar10-fast", **RECIPES["cifar10-fast"], "lr_max": 0.3}
    assert TrainConfig.from_json(old_fast).overrides == ("lr_max",)
    with pytest.raises(ValueError, match=r"unknown config keys \['speed'\]"):
        TrainConfig.from_json({"speed": 1})


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
    assert parse(*config_lib.to_argv(config)) == config


# --- one vocabulary ----------------------------------------------------------------


def test_every_field_is_a_flag_of_its_own_name_and_old_names_still_work():
    parser = config_lib.argparse.ArgumentParser()
    config_lib.add_arguments(parser)
    flags = {o for a in parser._actions for o in a.option_strings}
    for field in dataclasses.fields(TrainConfig):
        if field.name not in ("overrides", "changed"):  # records, not settings
            assert "--" + field.name.replace("_", "-") in flags, field.name
    old = parse("--num-iter", "50", "--div-factor", "20", "--start-lr", "1e-3", "--end-lr", "1", "--rule", "steepest")
    new = parse("--lr-range-iters", "50", "--lr-div", "20", "--lr-range-start", "1e-3", "--lr-range-end", "1",
                "--lr-range-rule", "steepest")  # fmt: skip
    assert old == new and (new.lr_range_iters, new.lr_div, new.lr_range_rule) == (50, 20.0, "steepest")
    assert parse("--no-progress", "--no-gradcam").progress is False
    assert parse("--lr-max", "auto", "--dtype", "auto").lr_max is None


def test_help_shows_every_flag_with_its_default(capsys):
    parser = config_lib.argparse.ArgumentParser()
    config_lib.add_arguments(parser)
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.help and ("default" in action.help or action.dest in ("quick", "resume", "distributed",
                                    "recipe", "lr_range_json", "out", "data_dir")), action.dest  # fmt: skip
    text = parser.format_help()
    assert "--quick" in text and "peak at epoch 1.67" in text  # --quick's values, its peak included
    assert "tests on 1,000 of the 10,000 test images" in " ".join(text.split())
    assert "5/24 of --epochs" in text


# --- validation at construction ----------------------------------------------------


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"flip_prob": 3.0}, "flip-prob must be a probability in [0, 1], got 3.0"),
        ({"cutout": 99}, "cutout must be a hole side in 0..32 pixels, got 99"),
        ({"cutout_prob": -0.5}, "cutout-prob must be a probability in [0, 1], got -0.5"),
        ({"cutout_placement": "edge"}, "cutout-placement must be one of ('inside', 'clip'), got 'edge'"),
        ({"seed": -1}, "seed must be >= 0, got -1"),
        ({"workers": -2}, "workers must be >= 0, got -2"),
        ({"logit_scale": 0.0}, "logit-scale must be positive, got 0.0"),
        ({"checkpoint_every": -1}, "checkpoint-every must be >= 0, got -1"),
        ({"epochs": 4, "peak_epoch": 4.0}, "peak-epoch must lie strictly between 0 and epochs=4, got 4.0"),
        ({"lr_max": 0.01, "lr_min": 0.1}, "lr-min (0.1) must not exceed lr-max (0.01)"),
        ({"lr_min": -0.1}, "lr-min must be >= 0, got -0.1"),
        ({"label_smoothing": 1.0}, "label-smoothing must be in [0, 1), got 1.0"),
        ({"lr_div": 1.0}, "lr-div must exceed 1 (LR_MIN = LR_MAX / lr-div), got 1.0"),
        ({"lr_min_fraction": 1.5}, "lr-min-fraction must be in (0, 1), got 1.5"),
        ({"lr_min_rule": "half"}, "lr-min-rule must be one of ('div', 'rise', 'min-loss'), got 'half'"),
        ({"lr_max": 0.1, "lr_min_rule": "rise"}, "lr-min-rule rise reads an LR range test"),
        ({"dtype": "float16"}, "dtype must be one of ('float32', 'bfloat16'), got 'float16'"),
        ({"conv": "fft"}, "conv must be one of ('xla', 'winograd'), got 'fft'"),
        ({"batch_norm": "welford"}, "batch-norm must be one of ('flax', 'matvec'), got 'welford'"),
        ({"recipe": "page"}, "recipe must be one of ('original', 'cifar10-fast'), got 'page'"),
        ({"resume": True}, "--resume continues the run in --out"),
    ],
)
def test_bad_settings_fail_at_construction(settings, message):
    with pytest.raises(ValueError) as e:
        TrainConfig(**settings)
    assert message in str(e.value)


def test_the_peak_scales_with_the_run_unless_given():
    assert TrainConfig().peak == 5.0
    assert TrainConfig(epochs=4).peak == pytest.approx(4 * 5 / 24)  # was an error before: peak 5 >= 4 epochs
    assert TrainConfig(epochs=4, peak_epoch=1.0).peak == 1.0
    assert parse("--epochs", "12").peak == 2.5


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
    config_lib.add_arguments(parser)
    actions = {a.dest: a for a in parser._actions}
    flagged = [f for f in dataclasses.fields(TrainConfig) if f.metadata["group"]]
    assert {f.name for f in dataclasses.fields(TrainConfig)} - {f.name for f in flagged} == {"overrides", "changed"}
    for f in flagged:
        action = actions[f.name]
        assert action.option_strings[0] == "--" + f.name.replace("_", "-")
        assert action.help.startswith(f.metadata["help"] + " (default: ")
    assert actions["lr_range_iters"].option_strings == ["--lr-range-iters", "--num-iter"]  # torch-lr-finder's name
    assert actions["lr_div"].option_strings == ["--lr-div", "--div-factor"]
    assert actions["weight_decay"].help == (
        "L2 coefficient added to the gradient of every parameter (PyTorch SGD style) (default: 0.005)"
    )
    assert actions["workers"].help == "augmentation threads (default: 0 = min(4, CPU cores))"
    assert actions["lr_max"].type("auto") is None and actions["lr_max"].type("0.25") == 0.25
    assert actions["conv"].type("auto") is None and actions["conv"].type("winograd") == "winograd"
    assert actions["augment"].choices == ("numpy", "albumentations", "device") and actions["epochs"].type is int
    assert isinstance(actions["nesterov"], argparse.BooleanOptionalAction) and actions["quick"].nargs == 0
    assert [g.title for g in parser._action_groups[2:]] == list(config_lib.GROUPS)
