#!/usr/bin/env bash
# The real-run evidence of issue 8, on a lent GPU machine, in device calls of
# under 10 minutes each. Run from the repository root on the device:
#
#   bash scripts/gpu_session.sh lr-train   # LR range test (980 it.) + the 24-epoch run + Grad-CAM
#   bash scripts/gpu_session.sh bench      # scripts/benchmark.py with the torch baseline and --lr-range
#   bash scripts/gpu_session.sh seeds N    # N seeds of the recipe with the LR found by lr-train
#   bash scripts/gpu_session.sh seeds-fast N  # N seeds of --recipe cifar10-fast (Page's settings, no sweep)
#
# Prepare here first (both paths are git-ignored; name them in the call's carry):
#   mkdir -p .carry && cp ../shared/data/cifar10-jpeg.tar.gz .carry/
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl albumentations==2.0.8 albucore==0.0.24 pydantic==2.14.3 pydantic-core==2.50.4 \
#     annotated-types==0.8.0 typing-inspection==0.4.5 simsimd==6.5.16 stringzilla==5.3.2
#   (the image lacks albumentations and these needs of it; 7.7 MB) and carry [".carry", ".whl"].
# EXTRA adds flags to every run (a dry run on a CPU: EXTRA=--quick DATA=synthetic).
# Each stage leaves $OUT/evidence-<stage>.tar.gz (results/*.json, figures/*.png,
# logs); unpack it here and commit.
set -euo pipefail
stage="${1:?stage: lr-train | bench | seeds N | seeds-fast N}"
OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
export JAXCIFAR_CACHE="${JAXCIFAR_CACHE:-/tmp/jaxcifar-cache}"
DATA="${DATA:-.carry/cifar10-jpeg.tar.gz}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt" || true
python3 -c "import jax, flax, optax; print('jax', jax.__version__, jax.devices())" | tee -a "$OUT/gpu.txt"

case "$stage" in
  lr-train)
    rm -rf runs/gpu-24
    python3 -m jaxcifar.train --lr-max auto --data "$DATA" --out runs/gpu-24 --no-progress --tta ${EXTRA:-} 2>&1 | tee "$OUT/train.log"
    python3 scripts/collect_run.py runs/gpu-24 --name gpu-24 --force
    cp runs/gpu-24/lr_range.json "$OUT/lr_range.json"
    tar czf "$OUT/evidence-lr-train.tar.gz" results/gpu-24.json figures/*.png -C "$OUT" train.log gpu.txt
    ;;
  bench)
    python3 scripts/benchmark.py --data "$DATA" --lr-range --force 2>&1 | tee "$OUT/bench.log"
    tar czf "$OUT/evidence-bench.tar.gz" results/benchmark-*.json -C "$OUT" bench.log gpu.txt
    ;;
  seeds)
    n="${2:-5}"
    sweep="${LR_RANGE_JSON:-.carry/lr_range.json}"
    rm -rf runs/seeds
    python3 scripts/seeds.py --seeds "$n" --data "$DATA" --lr-range-json "$sweep" --out runs/seeds --no-progress \
      --no-gradcam --tta ${EXTRA:-} 2>&1 | tee "$OUT/seeds.log"
    cp runs/seeds/seeds.json results/seeds-gpu.json
    tar czf "$OUT/evidence-seeds.tar.gz" results/seeds-gpu.json -C "$OUT" seeds.log gpu.txt
    ;;
  seeds-fast)
    n="${2:-5}"
    rm -rf runs/seeds-fast
    python3 scripts/seeds.py --seeds "$n" --recipe cifar10-fast --data "$DATA" --out runs/seeds-fast --no-progress \
      --no-gradcam --tta ${EXTRA:-} 2>&1 | tee "$OUT/seeds-fast.log"
    cp runs/seeds-fast/seeds.json results/seeds-fast-gpu.json
    tar czf "$OUT/evidence-seeds-fast.tar.gz" results/seeds-fast-gpu.json -C "$OUT" seeds-fast.log gpu.txt
    ;;
  *)
    echo "unknown stage $stage: lr-train | bench | seeds N | seeds-fast N" >&2
    exit 2
    ;;
esac
