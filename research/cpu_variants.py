"""What each CPU speed idea gives: the training step in several variants, side by side in one run.

    python -m research.cpu_variants --batch-size 512 --out results/cpu-step-variants.json   # ~15 min on 2 cores

Each variant of jaxcifar's training step runs in a fresh process (XLA flags only
take effect before JAX starts), in interleaved rounds, so a slow minute of the
machine falls on every variant alike; the figure kept is each variant's best
round. PyTorch's eager and channels-last steps of the same network join the same
run where torch is installed. Ratios are to jaxcifar's step as it ships.

A variant written NAME@REV is that variant as jaxcifar computed it at git revision
REV (exported from this checkout), timed in the same run: this shared machine's
speed changes from day to day, so an old figure says little about an old commit,
and only one run can compare commits.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import jaxcifar
from jaxcifar import kernels, parallel, records, startup
from jaxcifar import steps as steps_lib
from jaxcifar.config import TrainConfig
from jaxcifar.errors import UsageError, entry_point
from jaxcifar.schedule import one_cycle
from jaxcifar.startup import HUGE_PAGES_TUNABLE, YNN_FLAG
from research import benchmark
from research.taps import TapsConv3x3

YNN_OFF = f"{YNN_FLAG}="
SOURCE = Path(jaxcifar.__file__).resolve().parent  # the jaxcifar package that this process runs
RESEARCH_ROOT = Path(__file__).resolve().parents[1]  # the folder that holds research/
# name: (what it is, environment, settings). "default" is jaxcifar as it ships.
VARIANTS: dict[str, tuple[str, dict[str, str], dict[str, str]]] = {
    "default": (
        "jaxcifar: Winograd F(4x4, 3x3) convolutions after prep, BatchNorm's sums as matrix-vector products, "
        "argmax max-pool gradient, YNNPACK off",
        {},
        {},
    ),
    "flax-batch-norm": (
        "Flax's BatchNorm (XLA's windowed reductions; jaxcifar's CPU default before the matrix-vector sums)",
        {},
        {"batch_norm": "flax"},
    ),
    "xla-conv": ("XLA's Eigen convolutions", {}, {"conv": "xla"}),
    "xla-conv-flax-batch-norm": (
        "XLA's Eigen convolutions and Flax's BatchNorm (jaxcifar's CPU default before Winograd)",
        {},
        {"conv": "xla", "batch_norm": "flax"},
    ),
    "ynnpack": ("XLA:CPU's default YNNPACK convolutions", {"JAXCIFAR_YNNPACK": "1"}, {"conv": "xla"}),
    "ynnpack-taps": (
        "YNNPACK convolutions, kernel gradient as nine matmuls",
        {"JAXCIFAR_YNNPACK": "1"},
        {"kernel_grad": "taps", "conv": "xla"},
    ),
    "taps": ("Eigen convolutions, kernel gradient as nine matmuls", {}, {"kernel_grad": "taps", "conv": "xla"}),
    "winograd-per-entry": (
        "Winograd's transforms entry by entry (jaxcifar before the column pass over all rows at once)",
        {},
        {"tile_transform": "per-entry"},
    ),
    "huge-pages": (
        "jaxcifar with glibc's malloc on transparent huge pages (as `python -m jaxcifar.train` runs)",
        {"GLIBC_TUNABLES": HUGE_PAGES_TUNABLE},
        {},
    ),
    "flax-max-pool": ("Flax's max-pool (XLA's select_and_scatter gradient)", {}, {"max_pool": "flax"}),
    "vector-512": ("XLA loops with 512-bit vectors", {"XLA_FLAGS": f"{YNN_OFF} --xla_cpu_prefer_vector_width=512"}, {}),
    "bfloat16": (
        "bfloat16 compute with XLA's convolutions (changes the numbers; not the CPU default)",
        {},
        {"dtype": "bfloat16", "conv": "xla"},
    ),
    "two-devices": (
        "the batch split over 2 CPU devices (BatchNorm over the whole batch)",
        {"XLA_FLAGS": f"{YNN_OFF} --xla_force_host_platform_device_count=2"},
        {"devices": "2"},
    ),
    "two-devices-1-thread": (
        "the batch split over 2 CPU devices, each op on one thread",
        {"XLA_FLAGS": f"{YNN_OFF} --xla_force_host_platform_device_count=2 --xla_cpu_multi_thread_eigen=false"},
        {"devices": "2"},
    ),
}


# Winograd's transforms as jaxcifar wrote them before ce61055 (the variant
# "winograd-per-entry"): each transformed tile row's columns combined on their own and
# the 36 entries stacked one by one, which XLA compiled into a loop per entry. Kept to
# measure what the column pass over all rows at once (kernels._tile_transform) gave.
def _entries(matrix, rows, columns) -> list[list[jax.Array]]:
    return [kernels._combine(matrix, columns(row)) for row in kernels._combine(matrix, rows)]


def winograd_input_per_entry(x: jax.Array) -> jax.Array:
    n, h, w, c = x.shape
    m, a = kernels.WINOGRAD_TILE, kernels.WINOGRAD_INPUT_TILE
    th, tw = h // m, w // m
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    rows = [padded[:, r : r + m * (th - 1) + 1 : m] for r in range(a)]
    tiles = _entries(kernels.WINOGRAD_BT, rows, lambda row: [row[:, :, s : s + m * (tw - 1) + 1 : m] for s in range(a)])
    return jnp.stack(sum(tiles, [])).reshape(a * a, n * th * tw, c)


def winograd_output_per_entry(products: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    n, h, w, k = shape
    m, a = kernels.WINOGRAD_TILE, kernels.WINOGRAD_INPUT_TILE
    out = _entries(kernels.WINOGRAD_AT, list(products.reshape(a, a, n, h // m, w // m, k)), list)
    return jnp.stack([jnp.stack(row, axis=3) for row in out], axis=2).reshape(n, h, w, k)


def winograd_output_transpose_per_entry(g: jax.Array) -> jax.Array:
    n, h, w, k = g.shape
    m, a = kernels.WINOGRAD_TILE, kernels.WINOGRAD_INPUT_TILE
    tiles = g.reshape(n, h // m, m, w // m, m, k)
    a_matrix = tuple(zip(*kernels.WINOGRAD_AT))
    out = _entries(a_matrix, [tiles[:, :, i] for i in range(m)], lambda row: [row[:, :, :, j] for j in range(m)])
    return jnp.stack(sum(out, [])).reshape(a * a, n * (h // m) * (w // m), k)


def use_winograd_per_entry() -> None:
    """Patches the Winograd transforms (jaxcifar.kernels) back to their form before ce61055."""
    kernels._winograd_input = winograd_input_per_entry
    kernels._winograd_output = winograd_output_per_entry
    kernels._winograd_output_transpose = winograd_output_transpose_per_entry


def worker(variant: str, batch_size: int, steps: int, width: int) -> dict:
    """Runs in the variant's own process: images/s of `steps` training steps after a warm-up."""
    startup.set_cpu_flags()  # YNNPACK off as in the commands, unless the variant's JAXCIFAR_YNNPACK keeps it
    settings = dict(VARIANTS[variant][2])
    if settings.pop("max_pool", None) == "flax":
        kernels.max_pool2 = lambda x: nn.max_pool(x, (2, 2), (2, 2))
    if settings.pop("tile_transform", None) == "per-entry":
        use_winograd_per_entry()
    taps = settings.pop("kernel_grad", None) == "taps"
    mesh = parallel.make_mesh(int(settings.pop("devices", 1)))
    config = TrainConfig(width=width, batch_size=batch_size, **settings)
    schedule = one_cycle(0.004, 0.04, 97)
    model = steps_lib.make_model(config)
    model = model.clone(conv=TapsConv3x3) if taps else model
    state = parallel.put_replicated(steps_lib.initial_state(config, schedule, model), mesh)
    compiled = steps_lib.compile_run_steps(config, state, mesh, schedule, with_eval=False)
    rng = np.random.default_rng(0)
    batch = (rng.normal(size=(batch_size, 32, 32, 3)).astype(np.float32), rng.integers(0, 10, batch_size))
    batch = parallel.put_batch((batch[0], batch[1].astype(np.int32)), mesh)
    _, rate = benchmark.train_rate(compiled.train, state, batch, batch_size, steps, warmup=1)
    flags, tunables = os.environ.get("XLA_FLAGS", ""), os.environ.get("GLIBC_TUNABLES", "")
    return {"images_per_s": rate, "compile_s": compiled.compile_seconds, "xla_flags": flags,
            "glibc_tunables": tunables, "jaxcifar": str(SOURCE)}  # fmt: skip


def variant_env(variant: str) -> dict[str, str]:
    """The environment of a variant's process.

    This process may run with YNN_OFF in its XLA_FLAGS; a child inheriting that would run
    without YNNPACK whatever JAXCIFAR_YNNPACK says. So the switch is taken out here: the
    worker puts it back (startup.set_cpu_flags; at revisions before it, their `import
    jaxcifar` did) unless the variant keeps YNNPACK.
    """
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(YNN_FLAG)]
    return {**os.environ, "XLA_FLAGS": " ".join(flags), **VARIANTS[variant][1]}


def run_variant(variant: str, batch_size: int, steps: int, width: int, source: Path | None = None) -> dict:
    """images/s of `variant` in its own process; with `source`, jaxcifar's code there (cwd and PYTHONPATH).

    The worker is the source's own where it has one (research/, or jaxcifar/bench/ before
    the research tools left the package), else today's, with the source's jaxcifar.
    """
    env = variant_env(variant)
    worker_module = "research.cpu_variants"
    if source is not None:
        paths = [str(source), str(RESEARCH_ROOT), *filter(None, [env.get("PYTHONPATH")])]
        env["PYTHONPATH"] = os.pathsep.join(paths)  # the source's jaxcifar first
        if (source / "jaxcifar" / "bench" / "cpu_variants.py").exists():
            worker_module = "jaxcifar.bench.cpu_variants"
    command = [sys.executable, "-m", worker_module, "--worker", variant]
    command += ["--batch-size", str(batch_size), "--steps", str(steps), "--width", str(width)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True, cwd=source)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(SOURCE.parent), *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def revision(rev: str) -> tuple[str, str]:
    """(full hash, "abc1234 of 2026-11-24") of a revision of this checkout.

    Raises:
      UsageError: this is not a git checkout, or it has no such revision.
    """
    if not (SOURCE.parent / ".git").exists():
        raise UsageError(f"variant @{rev}: {SOURCE.parent} is not a git checkout; NAME@REV needs a clone of jaxcifar")
    try:
        full = _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except subprocess.CalledProcessError:
        where = f"variant @{rev}: no such commit in {SOURCE.parent}"
        raise UsageError(f"{where}; give one from `git log --oneline`") from None
    return full, f"{full[:7]} of {_git('log', '-1', '--format=%ad', '--date=short', full)}"


def export_revision(full: str, into: Path) -> Path:
    """jaxcifar/ (and research/, where it had one) as at commit `full`, written under `into` (git archive);
    returns the folder that holds them."""
    archive = into / "source.tar"
    folders = [f for f in ("jaxcifar", "research") if _git("ls-tree", "--name-only", full, f)]
    _git("archive", "--format=tar", "-o", str(archive), full, *folders)
    with tarfile.open(archive) as tar:
        tar.extractall(into / full, filter="data")
    return into / full


def parse_variant(spec: str) -> tuple[str, str | None]:
    """ "default@6895e0d" -> ("default", "6895e0d"); "default" -> ("default", None)."""
    name, _, rev = spec.partition("@")
    return name, rev or None


def measure(variants: Sequence[str], batch_size: int, steps: int, rounds: int, width: int, torch: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="jaxcifar-revisions-") as tmp:
        return _measure(variants, batch_size, steps, rounds, width, torch, Path(tmp))


def _measure(variants, batch_size, steps, rounds, width, torch, tmp: Path) -> dict:
    rows, sources = {}, {}
    for v in variants:
        name, rev = parse_variant(v)
        rows[v] = {"variant": v, "what": VARIANTS[name][0], "rounds": []}
        if rev is not None:
            full, when = revision(rev)
            sources[v] = export_revision(full, tmp)
            # Today's description of the variant may not hold for that commit's code; its name does.
            what = "jaxcifar as it shipped" if name == "default" else f"the variant `{name}`"
            rows[v] |= {"what": f"{what} at commit {when}, its own code", "revision": full}
    for _ in range(rounds):
        for v in variants:
            measured = run_variant(parse_variant(v)[0], batch_size, steps, width, sources.get(v))
            rows[v]["rounds"].append(measured["images_per_s"])
            rows[v]["xla_flags"] = measured["xla_flags"]  # what the variant's XLA really ran with
            rows[v]["glibc_tunables"] = measured.get("glibc_tunables", "")  # and its malloc (older workers: unsaid)
            print(f"{v:<15} {rows[v]['rounds'][-1]:8.1f} img/s", flush=True)
    for row in rows.values():
        row["images_per_s"] = max(row["rounds"])
    base = rows[variants[0]]["images_per_s"]
    for row in rows.values():
        row["vs_default"] = row["images_per_s"] / base
    result = {"batch_size": batch_size, "width": width, "steps": steps, "rounds": rounds, "rows": list(rows.values())}
    if torch:
        result["torch"] = []
        try:
            from research import torch_reference
        except ImportError:
            pass
        else:
            for variant in ("eager", "channels_last"):
                t = torch_reference.measure(variant, batch_size, width, steps)
                t["default_vs_torch"] = base / t["images_per_s"]
                result["torch"].append(t)
                print(f"torch {variant:<9} {t['images_per_s']:8.1f} img/s", flush=True)
    return result


@entry_point
def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m research.cpu_variants",
        description="Time variants of the CPU training step (one process each), side by side with PyTorch.",
    )
    parser.add_argument("--batch-size", type=int, default=512, help="images per step (default: 512)")
    parser.add_argument("--width", type=int, default=64, help="base width (default: 64)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round (default: 3)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the best counts (default: 2)")
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="comma-separated; NAME@REV times NAME with jaxcifar as at git revision REV (default: all, today's)",
    )
    parser.add_argument("--no-torch", action="store_true", help="leave out PyTorch (default: measured if installed)")
    parser.add_argument("--out", default=None, help="JSON record (default: print only)")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists (default: off)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.batch_size, args.steps, args.width)))
        return {}
    variants = args.variants.split(",")
    if unknown := [v for v in variants if parse_variant(v)[0] not in VARIANTS]:
        parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)} (each also as NAME@REV)")
    if variants[0] != "default":
        variants = ["default", *[v for v in variants if v != "default"]]
    if args.out:
        records.refuse_overwrite(args.out, force=args.force)
    result = {**records.provenance(), **measure(variants, args.batch_size, args.steps, args.rounds, args.width,
                                                not args.no_torch)}  # fmt: skip
    if args.out:
        records.write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
