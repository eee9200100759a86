"""Tests for jaxcifar.evidence: a run brought into results/ and figures/, never overwriting."""

import json

import pytest

from jaxcifar import evidence


def test_collect_run_copies_evidence_and_never_overwrites(tmp_path, tiny_run):
    run, summary, _, _ = tiny_run
    out = evidence.collect(run, "tiny", "-cpu", root=tmp_path)
    saved = json.loads(out.read_text())
    assert (
        saved["status"] == "completed"
        and saved["epochs"]["test_accuracy"]
        == json.loads((run / "metrics.json").read_text())["epochs"]["test_accuracy"]
    )
    assert saved["final_test_accuracy"] == summary["final_test_accuracy"] and saved["config"]["width"] == 4
    assert saved["command"] and saved["versions"]["jax"]
    for name in ("accuracy", "loss_accuracy", "one_cycle", "gradcam_misclassified", "misclassified"):
        assert (tmp_path / "figures" / f"{name}-cpu.png").read_bytes() == (run / f"{name}.png").read_bytes()
    with pytest.raises(FileExistsError, match="Pass --force"):
        evidence.collect(run, "tiny", "-cpu", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="is .* a finished jaxcifar run"):
        evidence.collect(tmp_path, "none", root=tmp_path)
