"""The Colab notebook runs, end to end, in a tiny configuration: it cannot rot."""

import json
import os
import subprocess
import sys
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "colab.ipynb"

RUNNER = """
import json, sys
cells = json.load(open(sys.argv[1]))["cells"]
sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
code = [compile(text, f"<cell {i}>", "exec") for i, text in enumerate(sources)]
namespace = {"__name__": "__main__"}
# As on Colab, where jaxcifar is not installed beforehand: this environment's editable install (an
# import hook ahead of sys.path) would otherwise answer `import jaxcifar` instead of the install cell's copy.
sys.meta_path = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]

def run_all(after_install=lambda: None):
    for k, cell in enumerate(code):
        exec(cell, namespace)
        if k == 0:  # the install cell: jaxcifar is importable from here on
            after_install()
    # the training cell once more, as a user who runs it again: it continues (finds) the run, no error
    exec(next(c for c, text in zip(code, sources) if "train.train_and_evaluate" in text), namespace)


def no_network_needed():
    from jaxcifar import data
    data._unreachable = lambda host, port: None  # mock_data needs no network


if len(sys.argv) > 2 and sys.argv[2] == "tfds":  # the notebook's tfds path, on tfds's generated examples
    import tensorflow_datasets as tfds
    with tfds.testing.mock_data(num_examples=640, policy=tfds.testing.MockPolicy.USE_CODE):
        run_all(no_network_needed)
else:
    run_all()
print("NOTEBOOK-SUMMARY " + json.dumps({k: namespace["summary"][k] for k in ("status", "epochs_completed")}))
print("NOTEBOOK-DRAWN " + json.dumps(namespace["drawn"]["paths"]))
print("NOTEBOOK-JAXCIFAR " + namespace["jaxcifar"].__file__)
print("NOTEBOOK-SOURCE " + namespace["ds"].source)
"""


def test_notebook_has_no_outputs_committed():
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert len(code) >= 6
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)


def test_notebook_runs_in_a_tiny_configuration_installed_from_the_checkout_on_tfds(tmp_path):
    env = dict(
        os.environ,
        JAXCIFAR_NOTEBOOK_TINY="1",
        JAXCIFAR_NOTEBOOK_OUT=str(tmp_path / "runs"),
        JAXCIFAR_NOTEBOOK_DATA="tfds",
        JAXCIFAR_SOURCE=str(NOTEBOOK.parents[1]),  # the install cell, from this checkout
        JAXCIFAR_NOTEBOOK_TARGET=str(tmp_path / "site"),
        JAXCIFAR_CACHE=str(tmp_path / "cache"),
        TFDS_DATA_DIR=str(tmp_path / "tfds"),
    )
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, str(NOTEBOOK), "tfds"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.startswith("NOTEBOOK-"))
    assert json.loads(lines["NOTEBOOK-SUMMARY"]) == {"status": "completed", "epochs_completed": 2}
    # the package the notebook ran is the copy its install cell put in place, not this checkout
    assert lines["NOTEBOOK-JAXCIFAR"] == str(tmp_path / "site" / "jaxcifar" / "__init__.py")
    assert lines["NOTEBOOK-SOURCE"].startswith("tfds cifar10")
    assert "is complete (2 of 2 epochs); nothing to resume" in proc.stdout  # the training cell, run again
    run = tmp_path / "runs" / "train"
    for name in ("accuracy.png", "loss_accuracy.png", "one_cycle.png", "lr_range.json", "summary.json"):
        assert (run / name).exists(), name
    assert (tmp_path / "runs" / "lr_range" / "lr_range.png").exists()
    assert json.loads(lines["NOTEBOOK-DRAWN"])  # Grad-CAM figures were drawn
