#!/usr/bin/env bash
# The GPU evidence, in device calls of under 10 minutes each. From the repository root on the device:
#
#   bash research/gpu_session.sh lr-train      # call 1: LR range test, the 24-epoch run with every figure and
#                                             #   Grad-CAM (seed 0), then seeds 1-4 from the same sweep while time is left
#   bash research/gpu_session.sh bench         # call 2: research.benchmark, PyTorch beside it, the LR range test timed
#   bash research/gpu_session.sh seeds-fast 5  # call 3: 5 seeds of --recipe cifar10-fast (Page's settings, no sweep)
#   bash research/gpu_session.sh seeds 5       # more seeds of the recipe from lr-train's sweep
#                                             #   (runs/seeds/lr_range/lr_range.json, else .carry/lr_range.json)
#   bash research/gpu_session.sh lr-pairs 2    # the recipe at fixed LR pairs (LR_MAX, LR_MAX / 10), 2 seeds each:
#                                             #   the original's 0.0444, the CPU sweep's 0.0781, then lower
#                                             #   (LR_PAIRS="..." to choose); settles the LR pick (issue 17)
#
# Every stage first checks that JAX found a GPU and prints the device and versions, failing in seconds
# otherwise (JAXCIFAR_REHEARSAL=1 allows a CPU: the tests rehearse every stage that way, tiny, with
# EXTRA="--quick ..." DATA=synthetic). Results and figures are named after the device
# (results/<device>-24.json, figures/accuracy-<device>-24.png, results/seeds-<device>.json, ...), so they never
# replace the CPU's; each stage leaves $OUT/evidence-<stage>.tar.gz, its log and gpu.txt: unpack here and commit.
#
# Prepare here first (both paths are git-ignored; name them in the call's carry):
#   mkdir -p .carry && cp ../shared/data/cifar10-jpeg.tar.gz .carry/
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl albumentations==2.0.8 albucore==0.0.24 pydantic==2.14.3 pydantic-core==2.50.4 \
#     annotated-types==0.8.0 typing-inspection==0.4.5 typing-extensions==4.16.0 simsimd==6.5.16 stringzilla==5.3.2
#   (the image lacks albumentations and these needs of it; pydantic 2.14 needs typing-extensions >= 4.16 where the
#   image's is older; about 8 MB) and carry [".carry", ".whl"].
# Environment: OUT (default /tmp/out), DATA (default .carry/cifar10-jpeg.tar.gz), BUDGET (seconds a stage may
# take, default 540 of the call's 600), EXTRA (flags added to every run).
set -euo pipefail
stage="${1:?stage: lr-train | bench | seeds N | seeds-fast N | lr-pairs N}"
case "$stage" in
  lr-train | bench | seeds | seeds-fast | lr-pairs) ;;
  *)
    echo "unknown stage $stage: lr-train | bench | seeds N | seeds-fast N | lr-pairs N" >&2
    exit 2
    ;;
esac
started=$SECONDS
OUT="${OUT:-/tmp/out}"
BUDGET="${BUDGET:-540}"
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 NO_ALBUMENTATIONS_UPDATE=1
export JAXCIFAR_CACHE="${JAXCIFAR_CACHE:-/tmp/jaxcifar-cache}"
DATA="${DATA:-.carry/cifar10-jpeg.tar.gz}"

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$OUT/gpu.txt" 2>&1 || true
expect=gpu
if [ "${JAXCIFAR_REHEARSAL:-0}" = 1 ]; then expect=any; fi
python3 -m research.device_check --expect "$expect" | tee -a "$OUT/gpu.txt"
device=$(python3 -c "import jax, re; print(re.sub(r'[^a-z0-9]+', '-', jax.devices()[0].device_kind.lower()).strip('-'))")
if [ "$expect" = any ]; then device="rehearsal-$device"; fi
left() { echo $((BUDGET - (SECONDS - started))); }

case "$stage" in
  lr-train)
    rm -rf runs/seeds
    python3 -m jaxcifar.seeds --seeds 5 --data "$DATA" --out runs/seeds --tta --checkpoint-every 0 --no-progress \
      --time-budget "$(left)" ${EXTRA:-} 2>&1 | tee "$OUT/lr-train.log"
    python3 -m research.collect_run runs/seeds/seed-0 --name "$device-24" --suffix="-$device-24" --force
    cp runs/seeds/seeds.json "results/seeds-$device.json"
    tar czf "$OUT/evidence-lr-train.tar.gz" "results/$device-24.json" "results/seeds-$device.json" \
      figures/*"-$device-24.png" -C runs/seeds lr_range/lr_range.json
    ;;
  bench)
    python3 -m research.benchmark --data "$DATA" --lr-range --budget "$(left)" --force \
      --out "results/benchmark-$device.json" ${EXTRA:-} 2>&1 | tee "$OUT/bench.log"
    tar czf "$OUT/evidence-bench.tar.gz" "results/benchmark-$device.json"
    ;;
  seeds)
    n="${2:-5}"
    sweep="${LR_RANGE_JSON:-runs/seeds/lr_range/lr_range.json}"
    if [ ! -f "$sweep" ]; then sweep=.carry/lr_range.json; fi
    if [ ! -f "$sweep" ]; then
      echo "seeds: no LR range test to reuse: run the lr-train stage first, or carry its lr_range.json as .carry/lr_range.json" >&2
      exit 2
    fi
    rm -rf runs/seeds-more
    python3 -m jaxcifar.seeds --seeds "$n" --seed 5 --data "$DATA" --lr-range-json "$sweep" --out runs/seeds-more \
      --tta --checkpoint-every 0 --no-gradcam --no-progress --time-budget "$(left)" ${EXTRA:-} 2>&1 \
      | tee "$OUT/seeds.log"
    cp runs/seeds-more/seeds.json "results/seeds-more-$device.json"
    tar czf "$OUT/evidence-seeds.tar.gz" "results/seeds-more-$device.json"
    ;;
  seeds-fast)
    n="${2:-5}"
    rm -rf runs/seeds-fast
    python3 -m jaxcifar.seeds --seeds "$n" --recipe cifar10-fast --data "$DATA" --out runs/seeds-fast --tta \
      --checkpoint-every 0 --no-gradcam --no-progress --time-budget "$(left)" ${EXTRA:-} 2>&1 | tee "$OUT/seeds-fast.log"
    cp runs/seeds-fast/seeds.json "results/seeds-fast-$device.json"
    tar czf "$OUT/evidence-seeds-fast.tar.gz" "results/seeds-fast-$device.json"
    ;;
  lr-pairs)
    n="${2:-2}"
    rm -rf runs/lr-pairs
    made=()
    per_seed=0
    for lr in ${LR_PAIRS:-0.0444 0.0781 0.0295 0.0195}; do
      if [ "$(left)" -le "$per_seed" ]; then
        echo "lr-pairs: $(left) s left, a run takes about $per_seed s; stopping before LR_MAX $lr" >&2
        break
      fi
      t0=$SECONDS
      python3 -m jaxcifar.seeds --seeds "$n" --data "$DATA" --lr-max "$lr" --lr-min "$(python3 -c "print($lr / 10)")" \
        --out "runs/lr-pairs/$lr" --tta --checkpoint-every 0 --no-gradcam --no-progress --time-budget "$(left)" \
        ${EXTRA:-} 2>&1 | tee -a "$OUT/lr-pairs.log"
      per_seed=$(((SECONDS - t0) / n))
      cp "runs/lr-pairs/$lr/seeds.json" "results/lr-pairs-$lr-$device.json"
      made+=("results/lr-pairs-$lr-$device.json")
    done
    tar czf "$OUT/evidence-lr-pairs.tar.gz" "${made[@]}"
    ;;
esac
echo "stage $stage done in $((SECONDS - started)) s; evidence in $OUT"
