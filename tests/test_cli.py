"""Tests for jaxcifar.cli: the `jaxcifar` command runs each module's command line, as it is."""

import subprocess
import sys
import tomllib
from pathlib import Path

import jaxcifar
from jaxcifar import cli

ROOT = Path(__file__).resolve().parents[1]


def test_the_console_script_is_declared_and_names_every_command(capsys):
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"jaxcifar": "jaxcifar.cli:main"}
    assert cli.main(["--help"]) == 0
    shown = capsys.readouterr().out
    assert all(f"  {name} " in shown for name in ("train", "lr-range", "gradcam", "predict", "seeds", "show"))
    assert cli.main([]) == 2 and cli.main(["--version"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"jaxcifar {jaxcifar.__version__}"
    assert cli.main(["fit"]) == 2
    known = "train, lr-range, gradcam, predict, seeds, show"
    assert f"error: unknown command 'fit'; one of {known}" in capsys.readouterr().err


def run(*argv):
    return subprocess.run([sys.executable, "-m", "jaxcifar.cli", *argv], capture_output=True, text=True, timeout=120)


def test_a_subcommand_is_the_modules_command_line_with_its_output_and_exit_status():
    done = run("train", "--version")
    assert done.returncode == 0 and done.stdout.strip() == f"jaxcifar {jaxcifar.__version__}"
    bad = run("lr-range", "--epochs", "3")  # a training flag the LR range test does not take
    assert bad.returncode == 2
    assert "python -m jaxcifar.lr_range: error: unrecognized arguments: --epochs 3" in bad.stderr
    helped = run("predict", "--help")
    assert helped.returncode == 0 and helped.stdout.startswith("usage: python -m jaxcifar.predict")
