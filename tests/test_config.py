"""Tests for jaxcifar.config: presets that cannot lie, one vocabulary of flags, validation at construction."""

import dataclasses

import pytest

from jaxcifar import flags
from jaxcifar.config import QUICK, TrainConfig


def parse(*argv):
    return flags.parse(list(argv), "x", "")


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
    # Run folders from commit 507796b on are read (the delivered width-64 runs are such); older ones are refused
    # by name rather than filled from today's defaults.
    written = TrainConfig().to_json()
    old = {k: v for k, v in written.items() if k not in ("tensorboard", "from_config")}
    with pytest.raises(ValueError, match=r"config keys \['from_config', 'tensorboard'\] are missing: .*507796b"):
        TrainConfig.from_json(old)
    with pytest.raises(ValueError, match=r"unknown config keys \['speed'\]"):
        TrainConfig.from_json({"speed": 1})


# --- one vocabulary ----------------------------------------------------------------


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
