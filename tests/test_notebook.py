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
namespace = {"__name__": "__main__"}
for i, cell in enumerate(cells):
    if cell["cell_type"] == "code":
        exec(compile("".join(cell["source"]), f"<cell {i}>", "exec"), namespace)
print("NOTEBOOK-SUMMARY " + json.dumps({k: namespace["summary"][k] for k in ("status", "epochs_completed")}))
print("NOTEBOOK-DRAWN " + json.dumps(namespace["drawn"]["paths"]))
"""


def test_notebook_has_no_outputs_committed():
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert len(code) >= 6
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)


def test_notebook_runs_in_a_tiny_configuration(tmp_path):
    env = dict(
        os.environ,
        JAXCIFAR_NOTEBOOK_TINY="1",
        JAXCIFAR_NOTEBOOK_OUT=str(tmp_path / "runs"),
        PYTHONPATH=str(NOTEBOOK.parents[1]),
    )
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, str(NOTEBOOK)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.startswith("NOTEBOOK-"))
    assert json.loads(lines["NOTEBOOK-SUMMARY"]) == {"status": "completed", "epochs_completed": 2}
    run = tmp_path / "runs" / "train"
    for name in ("accuracy.png", "loss_accuracy.png", "one_cycle.png", "lr_range.json", "summary.json"):
        assert (run / name).exists(), name
    assert (tmp_path / "runs" / "lr_range" / "lr_range.png").exists()
    assert json.loads(lines["NOTEBOOK-DRAWN"])  # Grad-CAM figures were drawn
