"""Tests for the scripts: seeds.py's table, benchmark.py's record, torch_reference's network."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny import TINY_RUN

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load(name):
    sys.path.insert(0, str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seed_summary_by_hand():
    seeds = load("seeds")
    rows = [
        {"final_test_accuracy": a, "best_test_accuracy": a + 0.01, "train_seconds": 10.0} for a in (0.93, 0.94, 0.95)
    ]
    s = seeds.summarize(rows)
    assert s["final_test_accuracy_mean"] == pytest.approx(0.94)
    assert s["final_test_accuracy_std"] == pytest.approx(0.01)  # sample std of .93 .94 .95
    assert s["share_at_least_94"] == pytest.approx(2 / 3) and s["share_at_least_93"] == 1.0
    assert "final_test_accuracy_tta_mean" not in s
    for r, tta in zip(rows, (0.935, 0.945, 0.955)):
        r["final_test_accuracy_tta"] = tta
    s = seeds.summarize(rows)
    assert s["final_test_accuracy_tta_mean"] == pytest.approx(0.945)
    assert s["final_test_accuracy_tta_std"] == pytest.approx(0.01) and s["share_tta_at_least_94"] == pytest.approx(
        2 / 3
    )


def test_seeds_runs_the_lr_range_test_once_and_every_seed(tmp_path, monkeypatch):
    seeds = load("seeds")
    from jaxcifar import lr_range

    sweeps = []
    real = lr_range.run
    monkeypatch.setattr(lr_range, "run", lambda *a, **k: sweeps.append(1) or real(*a, **k))
    out = tmp_path / "seeds"
    result = seeds.main(
        [
            *(
                "--seeds 2 --quick --data synthetic --n-train 640 --n-test 100 --width 4 "
                "--batch-size 64 --epochs 2 --peak-epoch 1 --num-iter 20 --no-progress --no-gradcam --out"
            ).split(),
            str(out),
        ]
    )
    assert len(sweeps) == 1
    saved = json.loads((out / "seeds.json").read_text())
    finals = [r["final_test_accuracy"] for r in saved["per_seed"]]
    assert [r["seed"] for r in saved["per_seed"]] == [0, 1] and len(set(finals)) == 2  # seeds differ
    assert saved["summary"]["final_test_accuracy_mean"] == pytest.approx(np.mean(finals))
    assert len({r["lr_max"] for r in saved["per_seed"]}) == 1  # one LR for all seeds
    assert (out / "seed-0" / "summary.json").exists() and (out / "seed-1" / "summary.json").exists()
    assert result["summary"]["runs"] == 2


def test_torch_reference_is_the_same_network():
    torch = pytest.importorskip("torch")
    ref = load("torch_reference")
    model = ref.resnet9()
    assert sum(p.numel() for p in model.parameters()) == 6_573_120
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_steps_match_the_pytorch_originals_from_the_same_weights():
    """Our jitted train step and the original's PyTorch step (SGD, momentum 0.9,
    weight decay 5e-3 added to the gradient, mean cross-entropy, OneCycleLR) stay
    together from the same weights on the same augmented batches. (Three steps: from
    the fourth on, at this tiny width and batch, even two XLA algorithms for the same
    gradient part by 1e-4, as small float differences flip a max-pool or ReLU.)"""
    pytest.importorskip("torch")
    ref = load("torch_reference")
    rng = np.random.default_rng(0)
    # 97 steps per epoch, as at batch 512, so both schedules put the peak at the same step.
    images = rng.integers(0, 256, (97 * 16, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 97 * 16).astype(np.int32)
    result = ref.compare_steps(images, labels, steps=3, lr_max=0.1, width=4, batch_size=16)
    rows = result["rows"]
    np.testing.assert_allclose([r["lr_jax"] for r in rows], [r["lr_torch"] for r in rows], rtol=2e-3)
    # Measured: 4e-6. Dropping the weight decay on their side gives 1.2e-4, Nesterov more.
    np.testing.assert_allclose([r["loss_jax"] for r in rows], [r["loss_torch"] for r in rows], rtol=2e-5)
    assert rows[0]["loss_jax"] != rows[-1]["loss_jax"]  # the weights moved
    diff = result["relative_difference"]
    assert diff["weights"] < 1.5e-4 and diff["running_mean"] < 1e-5  # measured 7e-5 and 8e-7
    # PyTorch's running variance uses the unbiased batch variance: n / (n - 1) with
    # n = 16 images x 4 x 4 = 256 at the last layer (model.py documents it).
    assert diff["running_var"] < 1e-3


def test_benchmark_writes_its_record(tmp_path):
    bench = load("benchmark")
    out = tmp_path / "bench.json"
    result = bench.main(
        ["--batch-size", "16", "--width", "4", "--steps", "1", "--epoch-steps", "2", "--no-torch", "--out", str(out)]
    )
    saved = json.loads(out.read_text())
    assert saved["platform"] == "cpu" and saved["settings"]["batch_size"] == 16
    kinds = {(s["dtype"], s["kernel_grad"]) for s in saved["steps"]}
    assert kinds == {("float32", "taps"), ("bfloat16", "taps"), ("float32", "xla")}
    assert all(s["train_images_per_s"] > 0 and s["compile_s"] > 0 for s in saved["steps"])
    forward = 2 * 32 * 32 * 9 * (3 * 4 + 5 * 4 * 8) + 2 * 32 * 10  # FLOPs per image at width 4: 3,170,944
    for s in saved["steps"]:  # derived: a step is 3x the forward; the recipe is 24 x 97 x 512 images
        rate = s["train_images_per_s"]
        assert s["train_tflop_per_s"] == pytest.approx(3 * forward * rate / 1e12)
        assert s["projected_24_epochs_s"] == pytest.approx(1_191_936 / rate)
    assert [e["augment"] for e in saved["epoch"]] == ["numpy", "device"]
    assert all(e["steps"] == 2 and 0 <= e["host_wait_fraction"] <= 1 for e in saved["epoch"])
    assert {a["augment"] for a in saved["augmentation"]} == {"numpy", "albumentations", "device"}
    assert result["command"]


def test_benchmark_refuses_to_overwrite_before_measuring(tmp_path, capsys):
    bench = load("benchmark")
    out = tmp_path / "bench.json"
    out.write_text("{}")
    with pytest.raises(SystemExit) as exc:
        bench.main(["--width", "4", "--out", str(out)])
    assert exc.value.code == 2 and "bench.json already exists" in capsys.readouterr().err
    assert out.read_text() == "{}"


def test_collect_run_copies_evidence_and_never_overwrites(tmp_path):
    collect = load("collect_run")
    from jaxcifar import train
    from jaxcifar.config import TrainConfig
    from jaxcifar.data import synthetic

    run = tmp_path / "runs" / "tiny"
    train.train_and_evaluate(
        TrainConfig(**TINY_RUN, out=str(run)),
        synthetic(n_train=640, n_test=100),
    )
    out = collect.collect(run, "tiny", "-cpu", root=tmp_path)
    saved = json.loads(out.read_text())
    assert saved["status"] == "completed" and len(saved["epochs"]["test_accuracy"]) == 2
    assert saved["command"] and saved["versions"]["jax"] and saved["config"]["width"] == 4
    assert (tmp_path / "figures" / "accuracy-cpu.png").exists()
    with pytest.raises(FileExistsError, match="Pass --force"):
        collect.collect(run, "tiny", "-cpu", root=tmp_path)


def test_gpu_session_seed_stage_dry_run(tmp_path):
    # The GPU session's script, dry-run on this CPU with a tiny run, so it cannot
    # rot between the rare sessions that have a GPU.
    import os
    import subprocess
    import tarfile

    root = SCRIPTS.parent
    work = tmp_path / "repo"  # a stand-in repository root: the script writes runs/ and results/ there
    work.mkdir()
    for name in ("jaxcifar", "scripts"):
        (work / name).symlink_to(root / name)
    (work / "results").mkdir()
    tiny = "--n-train 640 --n-test 100 --width 4 --batch-size 64 --epochs 2 --peak-epoch 1 --lr-max 0.05"
    env = {
        **os.environ,
        "OUT": str(tmp_path / "out"),
        "DATA": "synthetic",
        "EXTRA": tiny,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # python3 = this interpreter
        "JAXCIFAR_CACHE": str(tmp_path / "cache"),
    }
    done = subprocess.run(
        ["bash", str(work / "scripts" / "gpu_session.sh"), "seeds-fast", "2"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with tarfile.open(tmp_path / "out" / "evidence-seeds-fast.tar.gz") as tar:
        assert set(tar.getnames()) == {"results/seeds-fast-gpu.json", "seeds-fast.log", "gpu.txt"}
    table = json.loads((work / "results" / "seeds-fast-gpu.json").read_text())
    assert table["summary"]["runs"] == 2 and table["config"]["recipe"] == "cifar10-fast"
    assert "final_test_accuracy_tta_mean" in table["summary"]  # the seed stages evaluate with --tta too
    bad = subprocess.run(
        ["bash", str(work / "scripts" / "gpu_session.sh"), "train"], cwd=work, env=env, text=True, capture_output=True
    )
    assert bad.returncode == 2 and "unknown stage train" in bad.stderr
