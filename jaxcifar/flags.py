"""The command line of a run: a flag for every setting of `TrainConfig`, and the config back as flags.

Each flag is named as its field (`lr_range_iters` is `--lr-range-iters`); `to_argv(config)` turns
a config back into the flags that make it.
Flags left out keep the preset's or the default value, and `given_settings` says which were
given (a resumed run checks those against its own). `--config RUN/config.json` repeats a run
(`repeated`). The config itself (jaxcifar.config) knows nothing of command lines.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jaxcifar import __version__, records  # __version__: the package's attribute, set before its modules
from jaxcifar.config import CHOICES, MACHINE, TrainConfig

AUTO_NUMBERS = ("lr_max", "lr_min")  # numbers whose None is "auto" on the command line
# Switches that are off unless given (--quick), where the others have --x and --no-x.
SWITCHES = ("quick", "resume", "distributed", "lr_range_partial")

# The flag groups of `--help`, in order; the last two are the training command's alone.
GROUPS = (
    "data",
    "model",
    "optimisation",
    "augmentation",
    "LR range test",
    "run",
    "schedule and training",
    "devices and processes",
)
TRAIN_ONLY_GROUPS = ("schedule and training", "devices and processes")


def _float_or_auto(text: str) -> float | None:
    if text == "auto":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number, got {text!r}") from None


def _choice_or_auto(choices: Sequence[str]):
    def parse(text: str) -> str | None:
        if text == "auto":
            return None
        if text not in choices:
            raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from auto, {', '.join(choices)})")
        return text

    return parse


_UNSET = object()  # a flag not given on the command line


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def add_arguments(parser: argparse.ArgumentParser, *, lr_range_only: bool = False) -> None:
    """Adds a flag for every field of TrainConfig, from its metadata. Unset flags keep the
    preset's or the default value.

    With `lr_range_only`, only the flags that matter to the LR range test.
    """
    groups = {
        name: parser.add_argument_group(name) for name in GROUPS if not (lr_range_only and name in TRAIN_ONLY_GROUPS)
    }
    fields = sorted(
        (f for f in dataclasses.fields(TrainConfig) if f.metadata.get("group") in groups),
        key=lambda f: GROUPS.index(f.metadata["group"]),
    )  # in groups, each group's flags in field order
    for f in fields:
        meta, kind = f.metadata, f.type.split("|")[0].strip()  # "float | None" -> "float"
        optional = "None" in f.type
        kw: dict[str, Any] = {}
        if kind == "bool":
            kw["action"] = "store_true" if f.name in SWITCHES else argparse.BooleanOptionalAction
            shown = meta["shown"] or ("off" if f.name in SWITCHES else str(f.default))
        else:
            shown = meta["shown"] or _shown(f.default)
            if f.name in CHOICES and optional:  # None is "auto"
                choices = ("auto", *CHOICES[f.name])
                kw.update(type=_choice_or_auto(CHOICES[f.name]), metavar="{" + ",".join(choices) + "}")
            elif f.name in CHOICES:
                kw["choices"] = CHOICES[f.name]
            elif kind == "float" and f.name in AUTO_NUMBERS:  # None is "auto": lr_max, lr_min
                kw["type"] = _float_or_auto
            elif kind in ("int", "float"):
                kw["type"] = int if kind == "int" else float
        flag = "--" + f.name.replace("_", "-")
        groups[meta["group"]].add_argument(
            flag,
            *meta["aliases"],
            dest=f.name,
            default=_UNSET,
            help=f"{meta['help']} (default: {shown})".replace(
                "%",
                "%%",  # argparse %-formats help; the settings' texts are plain
            ),
            **kw,
        )


def add_version(parser: argparse.ArgumentParser) -> None:
    """--version: the installed jaxcifar's version (pyproject.toml's, from the package metadata)."""
    parser.add_argument("--version", action="version", version=f"jaxcifar {__version__}", help="print it and exit")


def given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig settings given on the command line (flags left out are absent)."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return {k: v for k, v in vars(args).items() if k in known and v is not _UNSET}


def from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> TrainConfig:
    """The config the command line asks for: its flags over --recipe and --quick over the defaults.

    Invalid combinations become argparse errors (exit status 2, message on stderr).
    """
    given = given_settings(args)
    try:
        if given.get("from_config"):
            return repeated(given.pop("from_config"), given)
        return TrainConfig.create(**given)
    except ValueError as e:
        parser.error(str(e))
        raise  # unreachable: parser.error exits


# What a repeated run takes from this machine and this command, not from the run it repeats.
NOT_REPEATED = (*MACHINE, "out", "resume", "overrides", "from_config", "changed")


def repeated(path: str | os.PathLike, given: dict[str, Any]) -> TrainConfig:
    """A new run's config from a run's config.json: its settings, `given` over them (and over its presets).

    The LR pair is the numbers the run trained with (give --lr-max auto for a new sweep); the
    machine's settings (devices, threads, progress) and --out are this run's. The config
    records the file (`from_config`) and the settings given over it (`changed`).

    Raises:
      FileNotFoundError: no such file. ValueError: not a jaxcifar config.json.
    """
    path = Path(path)
    if not path.is_file():
        where = " (give RUN/config.json, the file)" if path.is_dir() else ""
        raise FileNotFoundError(f"--config {path}: no such file{where}")
    try:
        saved = TrainConfig.from_json(records.read_json(path)["config"])
    except (KeyError, TypeError) as e:
        raise ValueError(f"--config {path}: not the config.json of a jaxcifar run (no {e})") from None
    settings = {f.name: getattr(saved, f.name) for f in dataclasses.fields(TrainConfig) if f.name not in NOT_REPEATED}
    settings.update(given)
    return TrainConfig.create(**settings, from_config=str(path), changed=tuple(sorted(given)))


def parser(prog: str, description: str, *, lr_range_only: bool = False) -> argparse.ArgumentParser:
    """The command line of the training (or, with lr_range_only, the LR range test) command."""
    made = argparse.ArgumentParser(prog=prog, description=description)
    add_version(made)
    add_arguments(made, lr_range_only=lr_range_only)
    return made


def parse(argv: Sequence[str] | None, prog: str, description: str, *, lr_range_only: bool = False) -> TrainConfig:
    made = parser(prog, description, lr_range_only=lr_range_only)
    return from_args(made.parse_args(argv), made)


def to_argv(config: TrainConfig) -> list[str]:
    """The flags that make `config` (what differs from its presets), for `parse`."""
    base = TrainConfig.create(recipe=config.recipe, quick=config.quick)
    argv = (["--recipe", config.recipe] if config.recipe != "original" else []) + (["--quick"] if config.quick else [])
    for f in dataclasses.fields(TrainConfig):
        value = getattr(config, f.name)
        if f.name in ("recipe", "quick", "overrides", "changed") or value == getattr(base, f.name):
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            if f.name in ("resume", "distributed"):
                argv.append(flag)
            else:
                argv.append(flag if value else f"--no-{flag[2:]}")
        elif value is None:
            argv += [flag, "auto"]
        else:
            argv += [flag, str(value)]
    return argv
