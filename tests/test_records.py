"""Tests for jaxcifar.records: atomic files, JSON without NaN, the overwrite guard, provenance."""

import importlib.metadata
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from jaxcifar import records


def test_atomic_open_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "a.json"
    records.write_json(path, {"x": 1})
    with pytest.raises(RuntimeError):
        with records.atomic_open(path, "w") as f:
            f.write("half a fi")
            raise RuntimeError("crash")
    assert json.loads(path.read_text()) == {"x": 1}
    assert os.listdir(tmp_path) == ["a.json"]  # no temporary file left behind


def test_json_has_no_nan_and_takes_numpy_scalars(tmp_path):
    path = tmp_path / "m.json"
    records.write_json(path, {"loss": [1.5, float("nan"), float("inf")], "acc": np.float32(0.5), "n": np.int64(3)})
    assert records.read_json(path) == {"loss": [1.5, None, None], "acc": 0.5, "n": 3}


def test_refuse_overwrite_names_what_exists(tmp_path):
    a, b, c = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    records.refuse_overwrite(a, b)  # nothing there yet
    a.write_bytes(b"x")
    b.write_bytes(b"y")
    with pytest.raises(FileExistsError, match=r"a\.png, .*b\.png already exist; nothing is overwritten\. Pass --force"):
        records.refuse_overwrite(a, b, c)
    with pytest.raises(FileExistsError, match=r"a\.png already exists;"):
        records.refuse_overwrite(a, c)
    records.refuse_overwrite(a, b, force=True)


def test_command_line_and_provenance(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/x/jaxcifar/train.py", "--lr-max", "auto", "--out", "runs/a b"])
    assert records.command_line() == "python -m jaxcifar.train --lr-max auto --out 'runs/a b'"
    monkeypatch.setattr(sys, "argv", ["/x/research/benchmark.py", "--steps", "5"])
    assert records.command_line() == "python -m research.benchmark --steps 5"
    monkeypatch.setattr(sys, "argv", ["tools/my run.py", "--seeds", "5"])
    assert records.command_line() == "python 'tools/my run.py' --seeds 5"
    monkeypatch.setattr(sys, "argv", ["-c", "--seeds", "5"])
    monkeypatch.setattr(sys, "orig_argv", ["/usr/bin/python3", "-c", "import x; x.main()", "--seeds", "5"])
    assert records.command_line() == "python -c 'import x; x.main()' --seeds 5"
    env = records.provenance()
    assert env["platform"] == "cpu" and env["device_count"] >= 1 and env["versions"]["numpy"] == np.__version__


def test_cpu_names_the_model_and_its_vector_extensions():
    # Two processors' /proc/cpuinfo as Linux writes it (one entry per core; the first counts).
    epyc = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse4_2 avx fma avx2 bmi2\n\nprocessor\t: 1\n"
    xeon = "model name\t: Intel(R) Xeon(R) Platinum 8488C\nflags\t: sse4_2 avx avx2 fma avx512f avx512bw amx_tile\n"
    assert records.cpu(epyc) == {"model": "AMD EPYC", "vector_extensions": ["sse4_2", "avx", "avx2", "fma"]}
    assert records.cpu(xeon)["vector_extensions"] == ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "amx_tile"]
    arm = "processor\t: 0\nFeatures\t: fp asimd sve\nModel\t: Raspberry Pi 5\n"
    assert records.cpu(arm) == {"model": "Raspberry Pi 5", "vector_extensions": []}
    here = records.provenance()["host"]["cpu"]
    assert here["model"] and set(here["vector_extensions"]) <= set(records.VECTOR_EXTENSIONS)


def test_provenance_reads_versions_without_importing_albumentations():
    # Importing albumentations 2 starts an online update check: reading its version must not.
    code = (
        "import sys; from jaxcifar import records; v = records.versions(); "
        "print(v['albumentations'], v['orbax-checkpoint'], 'albumentations' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    version, orbax, imported = done.stdout.split()
    assert version == importlib.metadata.version("albumentations") and orbax != "None"
    assert imported == "False"


def test_the_albumentations_path_never_checks_online(monkeypatch):
    monkeypatch.delenv("NO_ALBUMENTATIONS_UPDATE", raising=False)
    from jaxcifar import augment

    augment.albumentations_pipeline()
    assert os.environ["NO_ALBUMENTATIONS_UPDATE"] == "1"  # set before albumentations was imported
