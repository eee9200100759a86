"""Tests for research.config_walk: the driver settles its config once and hands it down where it must."""

import textwrap

from research import config_walk


def test_the_driver_resolves_resume_and_builds_the_loader_once():
    sites = config_walk.main([])["each"]
    # resume is resolved in one place (it was in main and again in train_and_evaluate)
    assert [s for s in sites if s.endswith(": train.resumed_config")] == ["train.settle: train.resumed_config"]
    # the training loader is built once by the driver (it was built again inside the epoch loop)
    assert [s for s in sites if s.startswith("train.") and s.endswith("loader.make_train_loader")] == [
        "train.train_and_evaluate: loader.make_train_loader"
    ]
    # the epoch loop hands the config to the step compiler alone
    assert [s for s in sites if s.startswith("train._train:")] == ["train._train: steps.compile_run_steps"]


def test_the_walk_follows_calls_across_modules_and_counts_config_passed_on(tmp_path):
    package = tmp_path / "src" / "jaxcifar"
    package.mkdir(parents=True)
    (package / "train.py").write_text(
        textwrap.dedent("""
        from jaxcifar import low
        from jaxcifar.mid import helper

        def train_and_evaluate(config):
            helper(config)
            low.leaf(config.width)   # a value, not the config: not counted
            unused(config)           # not a function of the package: not counted
    """)
    )
    (package / "mid.py").write_text("from jaxcifar import low\n\ndef helper(config):\n    low.leaf(config)\n")
    (package / "low.py").write_text("def leaf(x):\n    return x\n\ndef never(config):\n    leaf(config)\n")
    assert config_walk.walk(package) == ["mid.helper: low.leaf", "train.train_and_evaluate: mid.helper"]
