"""Tests for research: the benchmark's record, its budget, the device check, the PyTorch reference."""

import builtins
import json
import re
import shutil
import sys

import numpy as np
import pytest

from jaxcifar import startup
from research import benchmark, benchmark_augment, conv_layers, device_check

TINY = "--batch-size 16 --width 4 --steps 1 --epoch-steps 2 --no-torch --augment-batches 2".split()


def test_benchmark_writes_its_record(tmp_path):
    out = tmp_path / "bench.json"
    result = benchmark.main([*TINY, "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["platform"] == "cpu" and saved["settings"]["batch_size"] == [16] and saved["skipped"] == []
    # at width 4 XLA's convolutions and Flax's BatchNorm are the default (first), then the others
    kinds = [(s["dtype"], s["kernel_grad"], s["conv"], s["batch_norm"]) for s in saved["steps"]]
    assert kinds == [("float32", "xla", "xla", "flax"), ("bfloat16", "xla", "xla", "flax"),
                     ("float32", "xla", "winograd", "flax"), ("float32", "xla", "xla", "matvec"),
                     ("float32", "taps", "xla", "flax")]  # fmt: skip
    assert all(s["train_images_per_s"] > 0 and s["compile_s"] > 0 for s in saved["steps"])
    forward = 2 * 32 * 32 * 9 * (3 * 4 + 5 * 4 * 8) + 2 * 32 * 10  # FLOPs per image at width 4: 3,170,944
    for s in saved["steps"]:  # derived: a step is 3x the forward; the recipe is 24 x 97 x 512 images
        rate = s["train_images_per_s"]
        assert s["train_tflop_per_s"] == pytest.approx(3 * forward * rate / 1e12)
        assert s["projected_24_epochs_s"] == pytest.approx(1_191_936 / rate)
    assert [e["augment"] for e in saved["epoch"]] == ["numpy", "device"]
    assert all(e["steps"] == 2 and 0 <= e["host_wait_fraction"] <= 1 for e in saved["epoch"])
    assert {a["augment"] for a in saved["augmentation"]} == {"numpy", "albumentations", "device"}
    assert result["command"].startswith("python")


def test_benchmark_budget_skips_later_sections_but_keeps_what_it_measured(tmp_path, capsys):
    out = tmp_path / "bench.json"
    benchmark.main([*TINY, "--budget", "0", "--out", str(out)])
    saved = json.loads(out.read_text())
    # A budget of 0 s: the first section starts late already; everything is skipped and named.
    assert saved["steps"] == [] and "jax step float32 xla auto auto b16" in saved["skipped"]
    assert "host augmentation" in saved["skipped"] and "skipped (past the 0 s budget)" in capsys.readouterr().out


def test_benchmark_refuses_to_overwrite_before_measuring(tmp_path, capsys):
    out = tmp_path / "bench.json"
    out.write_text("{}")
    with pytest.raises(SystemExit) as exc:
        benchmark.main(["--width", "4", "--out", str(out)])
    assert exc.value.code == 2 and "bench.json already exists" in capsys.readouterr().err
    assert out.read_text() == "{}"


def test_ratios_pair_each_torch_variant_with_our_fastest_step_at_its_batch():
    result = {
        "steps": [
            {"batch_size": 128, "dtype": "float32", "train_images_per_s": 100.0},
            {"batch_size": 128, "dtype": "bfloat16", "train_images_per_s": 150.0},
            {"batch_size": 512, "dtype": "float32", "train_images_per_s": 90.0},
        ],
        "torch": [
            {"variant": "eager", "batch_size": 128, "images_per_s": 120.0},
            {"variant": "eager", "batch_size": 512, "images_per_s": 60.0},
            {"variant": "compile", "batch_size": 512, "error": "no compiler"},
        ],
    }
    assert benchmark.ratios(result) == {
        "jax_bfloat16_vs_torch_eager_b128": pytest.approx(1.25),
        "jax_float32_vs_torch_eager_b512": pytest.approx(1.5),
    }


def test_conv_layers_times_every_part_of_every_convolution(tmp_path, capsys):
    out = tmp_path / "conv.json"
    result = conv_layers.main(["--batch-size", "2", "--width", "4", "--repeats", "1", "--steps", "1", "--no-torch",
                               "--out", str(out)])  # fmt: skip
    assert json.loads(out.read_text())["rows"] == result["rows"]
    rows = result["rows"]
    # 8 convolutions x 3 parts, less the image's gradient, which no step computes.
    assert len(rows) == 23 and ("prep", "input_grad") not in {(r["layer"], r["part"]) for r in rows}
    layer1 = next(r for r in rows if r["layer"] == "layer1" and r["part"] == "kernel_grad")
    assert layer1["shape"] == [32, 4, 8] and layer1["gflop"] == pytest.approx(2 * 2 * 32 * 32 * 9 * 4 * 8 / 1e9)
    assert all(r["jax_ms"] > 0 and r["jax_nchw_ms"] > 0 and r["jax_winograd_ms"] > 0 for r in rows)
    assert all("torch_ms" not in r and r["winograd_difference"] < 1e-5 for r in rows)
    assert all(("jax_taps_ms" in r) == (r["part"] != "forward") for r in rows)
    for key in ("jax_ms", "jax_nchw_ms", "jax_winograd_ms"):
        assert result["totals"]["all"][key] == pytest.approx(sum(r[key] for r in rows))
    assert result["step"]["jax_ms"] > 0 and result["step"]["jax_xla_ms"] > 0
    assert result["step"]["convolutions_share"] == pytest.approx(
        result["totals"]["all"]["jax_ms"] / result["step"]["jax_xla_ms"]
    )
    assert "all convolutions: XLA" in capsys.readouterr().out


def test_conv_layers_in_nchw_and_by_winograd_compute_the_same_as_in_nhwc():
    x, kernel, g = conv_layers.conv_inputs(2, 8, 3, 4)
    nhwc, nchw = conv_layers.jax_parts(x, kernel, g), conv_layers.jax_parts(x, kernel, g, "NCHW")
    winograd = conv_layers.jax_parts(x, kernel, g, "winograd")
    for part in conv_layers.PARTS:
        assert nhwc[part].result().shape == nchw[part].result().shape == winograd[part].result().shape
        np.testing.assert_allclose(nchw[part].result(), nhwc[part].result(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(winograd[part].result(), nhwc[part].result(), rtol=1e-4, atol=1e-4)
    assert nchw["forward"]().shape == (2, 4, 8, 8)  # what XLA computed: channels first
    with pytest.raises(ValueError, match="layout 'NDHW': expected 'NHWC', 'NCHW' or 'winograd'"):
        conv_layers.jax_parts(x, kernel, g, "NDHW")


def test_both_gradients_as_nine_matmuls_equal_xlas():
    x, kernel, g = conv_layers.conv_inputs(2, 8, 3, 4)
    xla, taps = conv_layers.jax_parts(x, kernel, g), conv_layers.taps_parts(x, kernel, g)
    assert set(taps) == {"input_grad", "kernel_grad"}
    for part in taps:
        np.testing.assert_allclose(taps[part].result(), xla[part].result(), rtol=1e-5, atol=1e-5)
    # the taps must meet the right shifts: a kernel flipped left-right gives another gradient
    flipped = conv_layers.input_grad_taps(g, kernel[:, ::-1])
    assert conv_layers.relative_difference(flipped, xla["input_grad"].result()) > 0.1


def test_conv_layer_totals_by_hand():
    rows = [
        {"part": "forward", "jax_ms": 3.0, "torch_ms": 2.0},
        {"part": "kernel_grad", "jax_ms": 6.0, "torch_ms": 3.0},
        {"part": "kernel_grad", "jax_ms": 3.0, "torch_ms": 3.0},
    ]
    t = conv_layers.totals(rows)
    assert t["forward"] == {"jax_ms": 3.0, "torch_ms": 2.0, "jax_vs_torch": 1.5}
    assert t["kernel_grad"] == {"jax_ms": 9.0, "torch_ms": 6.0, "jax_vs_torch": 1.5}
    assert t["input_grad"] == {"jax_ms": 0}
    assert t["all"] == {"jax_ms": 12.0, "torch_ms": 8.0, "jax_vs_torch": 1.5}


def test_a_missing_albumentations_is_recorded_not_fatal(monkeypatch):
    real_import = builtins.__import__

    def no_albumentations(name, *args, **kwargs):
        if name == "albumentations":
            raise ImportError("No module named 'albumentations'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_albumentations)
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (1024, 32, 32, 3), dtype=np.uint8), np.zeros(1024, np.int32)
    rows = benchmark_augment.measure(images, labels, batches=2)
    failed = [r for r in rows if r["augment"] == "albumentations"]
    assert len(failed) == 1 and "No module named 'albumentations'" in failed[0]["error"]
    assert all(r["images_per_s"] > 0 for r in rows if r["augment"] != "albumentations")


def test_the_device_check_fails_fast_on_a_cpu(capsys):
    with pytest.raises(SystemExit) as exc:
        device_check.main(["--expect", "gpu"])
    assert exc.value.code == 1
    captured = capsys.readouterr()
    assert "backend cpu: cpu:0" in captured.out and "jaxlib" in captured.out and "orbax-checkpoint" in captured.out
    assert "\ndevice cpu\n" in captured.out  # the name gpu_session.sh files results under
    assert "JAX runs on cpu, not gpu: stopping before spending device time" in captured.err
    assert device_check.main(["--expect", "any"])["backend"] == "cpu"


# --- the PyTorch reference (where torch is installed) -------------------------------


def test_torch_reference_is_the_same_network():
    torch = pytest.importorskip("torch")
    from research import torch_reference

    model = torch_reference.resnet9()
    assert sum(p.numel() for p in model.parameters()) == 6_573_120
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_conv_layers_give_pytorch_the_same_arithmetic():
    pytest.importorskip("torch")
    from research import torch_reference

    x, kernel, g = conv_layers.conv_inputs(3, 8, 5, 6)
    ours, theirs = conv_layers.jax_parts(x, kernel, g), torch_reference.conv_parts(x, kernel, g)
    shapes = {"forward": (3, 8, 8, 6), "input_grad": (3, 8, 8, 5), "kernel_grad": (3, 3, 5, 6)}
    for part, shape in shapes.items():
        a, b = ours[part].result(), theirs[part]()
        assert a.shape == b.shape == shape
        assert conv_layers.relative_difference(a, b) < 1e-5
    # and a wrong layout would show: the kernel gradient against its own transpose is far off
    wrong = ours["kernel_grad"].result().transpose(1, 0, 2, 3)
    assert conv_layers.relative_difference(wrong, theirs["kernel_grad"]()) > 0.1


def test_steps_match_the_pytorch_originals_from_the_same_weights():
    """Our jitted train step and the original's PyTorch step (SGD, momentum 0.9,
    weight decay 5e-3 added to the gradient, mean cross-entropy, OneCycleLR) agree
    from the same weights on the same augmented batches: one step's update to float
    rounding, and the next step's loss. (Later steps part the way any two float
    computations of a network at a high LR do, once a ReLU or max-pool decision
    flips: at this tiny width from the third step.)"""
    pytest.importorskip("torch")
    from research import torch_reference

    rng = np.random.default_rng(0)
    # 97 steps per epoch, as at batch 512, so both schedules put the peak at the same step.
    images = rng.integers(0, 256, (97 * 16, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 97 * 16).astype(np.int32)
    one = torch_reference.compare_steps(images, labels, steps=1, lr_max=0.1, width=4, batch_size=16)
    diff = one["relative_difference"]
    # Measured 2.5e-7. A weight decay dropped on either side moves the weights by
    # lr x wd = 0.01 x 5e-3 = 5e-5 of their size: 25x this bound.
    assert diff["weights"] < 2e-6 and diff["running_mean"] < 1e-5
    # PyTorch's running variance uses the unbiased batch variance: n / (n - 1) with
    # n = 16 images x 4 x 4 = 256 at the last layer (model.py documents it).
    assert diff["running_var"] < 1e-3
    rows = torch_reference.compare_steps(images, labels, steps=2, lr_max=0.1, width=4, batch_size=16)["rows"]
    np.testing.assert_allclose([r["lr_jax"] for r in rows], [r["lr_torch"] for r in rows], rtol=2e-3)
    np.testing.assert_allclose([r["loss_jax"] for r in rows], [r["loss_torch"] for r in rows], rtol=2e-6)  # 7e-7
    assert rows[0]["loss_jax"] != rows[1]["loss_jax"]  # the weights moved


def test_ctrl_c_latency_is_measured_on_a_real_run():
    from research import ctrl_c_latency

    flags = "--data synthetic --n-train 640 --n-test 100 --width 4 --batch-size 64 --lr-max 0.05 --no-progress"
    result = ctrl_c_latency.measure(flags.split(), after=2.0, timeout=120)
    assert result["exit_code"] == 130, result["log_tail"]
    epoch, batch = result["stopped_at"]
    assert epoch >= 1 and 0 <= batch < 10 and 0 < result["signal_to_exit_s"] < 60


def test_the_per_entry_winograd_variant_computes_the_same_tiles(monkeypatch):
    # The variant times Winograd's transforms as they were written before: each transformed
    # row's columns on their own, the entries stacked one by one. Op by op (no fusion),
    # both give the same floats, bit for bit.
    from jaxcifar import kernels
    from research import cpu_variants

    rng = np.random.default_rng(0)
    x, g = rng.normal(size=(2, 8, 12, 3)).astype(np.float32), rng.normal(size=(2, 8, 12, 5)).astype(np.float32)
    products = rng.normal(size=(36, 2 * 2 * 3, 5)).astype(np.float32)

    def transforms():
        return [kernels._winograd_input(x), kernels._winograd_output(products, (2, 8, 12, 5)),
                kernels._winograd_output_transpose(g)]  # fmt: skip

    stacked = transforms()
    for name in ("_winograd_input", "_winograd_output", "_winograd_output_transpose"):
        monkeypatch.setattr(kernels, name, getattr(kernels, name))  # undone after the test
    cpu_variants.use_winograd_per_entry()
    per_entry = transforms()
    assert [a.shape for a in stacked] == [(36, 12, 3), (2, 8, 12, 5), (36, 12, 5)]
    for a, b in zip(stacked, per_entry):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_cpu_variants_run_each_in_its_own_process_and_compare_to_the_default(tmp_path, monkeypatch):
    from research import cpu_variants

    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)  # the variants' own malloc settings, not this process's

    out = tmp_path / "variants.json"
    argv = ["--batch-size", "8", "--width", "4", "--steps", "1", "--rounds", "2", "--no-torch", "--out", str(out)]
    # two variants (each round of each starts a process): the default, and one that changes XLA's flags
    result = cpu_variants.main([*argv, "--variants", "ynnpack,default"])
    saved = json.loads(out.read_text())
    assert [r["variant"] for r in saved["rows"]] == ["default", "ynnpack"]  # the default first
    for row in saved["rows"]:
        assert len(row["rounds"]) == 2 and row["images_per_s"] == max(row["rounds"])
        assert row["vs_default"] == pytest.approx(row["images_per_s"] / saved["rows"][0]["images_per_s"])
    assert result["batch_size"] == 8 and saved["rows"][0]["vs_default"] == 1.0
    # Each variant's XLA ran with its own YNNPACK setting, not the one this process inherited
    # (a jaxlib without that flag, such as 0.5, is given none: it would abort on it).
    flags = {r["variant"]: r["xla_flags"] for r in saved["rows"]}
    assert (cpu_variants.YNN_OFF in flags["default"]) == startup.jaxlib_knows(startup.YNN_FLAG)
    assert cpu_variants.YNN_OFF not in flags["ynnpack"]
    assert {r["glibc_tunables"] for r in saved["rows"]} == {""}
    # a variant of the environment: its process gets it, this one keeps its own
    assert cpu_variants.variant_env("huge-pages")["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
    assert "GLIBC_TUNABLES" not in cpu_variants.variant_env("default")
    with pytest.raises(SystemExit) as exc:
        cpu_variants.main([*argv, "--variants", "fast", "--force"])
    assert exc.value.code == 2


def test_a_variant_at_a_git_revision_runs_that_revisions_code_in_the_same_run(tmp_path, capsys):
    from research import cpu_variants

    if not (cpu_variants.SOURCE.parent / ".git").exists():
        pytest.skip("needs a git checkout of jaxcifar (this copy has no .git)")
    head, when = cpu_variants.revision("HEAD")
    assert len(head) == 40 and re.fullmatch(r"[0-9a-f]{7} of \d{4}-\d{2}-\d{2}", when)
    exported = cpu_variants.export_revision(head, tmp_path)
    assert (exported / "jaxcifar" / "model.py").is_file() and not (exported / "tests").exists()
    copy = tmp_path / "copy"  # this working tree's code, whose worker says where it ran from
    shutil.copytree(cpu_variants.SOURCE, copy / "jaxcifar", ignore=shutil.ignore_patterns("__pycache__"))
    measured = cpu_variants.run_variant("default", 8, 1, 4, copy)
    assert measured["jaxcifar"] == str(copy / "jaxcifar") and measured["images_per_s"] > 0
    argv = ["--batch-size", "8", "--width", "4", "--steps", "1", "--rounds", "1", "--no-torch"]
    rows = cpu_variants.main([*argv, "--variants", "default,default@HEAD"])["rows"]
    assert [r["variant"] for r in rows] == ["default", "default@HEAD"] and rows[1]["revision"] == head
    assert rows[1]["what"] == f"jaxcifar as it shipped at commit {when}, its own code"
    with pytest.raises(SystemExit) as exc:
        cpu_variants.main([*argv, "--variants", "default@no-such-revision"])
    assert exc.value.code == 2
    assert "error: variant @no-such-revision: no such commit in " in capsys.readouterr().err


def test_ctrl_c_at_start_up_is_counted_clean_or_a_crash():
    from research import ctrl_c_startup

    command = [sys.executable, "-m", "jaxcifar.lr_range", *ctrl_c_startup.SWEEP]
    whole = ctrl_c_startup.one_try(600, command)  # no signal: the sweep ends by itself
    assert whole["exit_code"] == 0 and not whole["crash"] and whole["seconds"] > 0
    early = ctrl_c_startup.one_try(0.3, command)  # Ctrl-C while Python imports: exit 130, as a shell reports
    assert early["exit_code"] == 130 and early["outcome"] == "clean" and not early["crash"]


def test_what_a_start_up_try_counts_as():
    from research.ctrl_c_startup import classify

    def of(status, text):
        return classify(status, text, [line for line in text.splitlines() if line.strip()])

    assert of(130, "interrupted (Ctrl-C)\n") == (False, "clean") and of(0, "LR range test: ...\n") == (False, "clean")
    site = "Fatal Python error: init_import_site: Failed to import the site module\n"
    site += '  File "<frozen site>", line 616, in <module>\nKeyboardInterrupt\n'
    assert of(1, site) == (False, "python start-up")  # Python's own start, before any code of ours
    ours = 'Traceback (most recent call last):\n  File "/x/jaxcifar/data.py", line 3\nKeyboardInterrupt\n'
    assert of(1, ours) == (True, "crash")  # a traceback through jaxcifar is ours to fix
    assert of(139, "Segmentation fault\n") == (True, "crash") and of(134, "") == (True, "crash")
    assert of(130, "Fatal Python error: Segmentation fault\n") == (True, "crash")  # whatever the status says
