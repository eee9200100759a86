#!/usr/bin/env bash
# The GPU evidence in one device call (research/gpu_session.md: the call, its carry, what to do with what comes back).
# From the repository root on the device:
#
#   bash research/gpu_session.sh all          # the call: LR range test, the 24-epoch recipe with every figure and
#                                             #   Grad-CAM (seed 0), seeds 1-4, seeds of --recipe cifar10-fast, the
#                                             #   benchmark beside PyTorch; each part while it fits BUDGET
#                                             #   (research/gpu_all.py); a part alone: ALL_FLAGS="--seeds 1
#                                             #   --fast-seeds 0 --no-bench" (the recipe), "--seeds 0 --fast-seeds 0" (bench)
#   bash research/gpu_session.sh lr-pairs 2   # the recipe at fixed LR pairs (LR_MAX, LR_MAX / 10), 2 seeds each:
#                                             #   the original's 0.0444, the CPU sweep's 0.0781, then lower
#                                             #   (LR_PAIRS="..." to choose); settles the LR pick (issue 17)
#
# Every stage first checks that JAX found a GPU and prints the device and versions, failing in seconds
# otherwise (JAXCIFAR_REHEARSAL=1 allows a CPU: the tests rehearse every stage that way, tiny, with
# EXTRA="--quick ..." DATA=synthetic). Results and figures are named after the device
# (results/<device>-24.json, figures/accuracy-<device>-24.png, results/seeds-<device>.json, ...), so they never
# replace the CPU's; each stage leaves $OUT/evidence(-<stage>).tar.gz, its log and gpu.txt (`all` also all.json,
# its ledger of parts kept and left out): unpack here and commit.
#
# Prepare here first (research/gpu_session.md; .carry is git-ignored, name it in the call's carry):
#   python -m research.carry_copy --png ../shared/data/cifar10-png.tar.gz --lossless-test --quality 90 \
#     --max-mb 56 --out .carry/cifar10-carry-lt.tar.gz     # 54 MB: the test set lossless, the training set JPEG
# No wheels are needed (albumentations, missing from the image, serves only --augment albumentations). Where
# they are (`.whl/*.whl`, carried), they are installed first, as the device tool's README says.
# Environment: OUT (default /tmp/out), DATA (default .carry/cifar10-carry-lt.tar.gz), BUDGET (seconds a stage may
# take from the script's start: default 450 of a 480 s call for `all`, 540 of 600 otherwise), EXTRA (flags added
# to every run), FAST_EXTRA and BENCH_EXTRA (`all`: flags for the cifar10-fast seeds, for the benchmark).
set -euo pipefail
stage="${1:?stage: all | lr-pairs N}"
case "$stage" in
  all | lr-pairs) ;;
  *)
    echo "unknown stage $stage: all | lr-pairs N" >&2
    exit 2
    ;;
esac
started=$SECONDS
OUT="${OUT:-/tmp/out}"
if [ "$stage" = all ]; then BUDGET="${BUDGET:-450}"; else BUDGET="${BUDGET:-540}"; fi
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 NO_ALBUMENTATIONS_UPDATE=1
export JAXCIFAR_CACHE="${JAXCIFAR_CACHE:-/tmp/jaxcifar-cache}"
DATA="${DATA:-.carry/cifar10-carry-lt.tar.gz}"

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$OUT/gpu.txt" 2>&1 || true
expect=gpu
if [ "${JAXCIFAR_REHEARSAL:-0}" = 1 ]; then expect=any; fi
python3 -m research.device_check --expect "$expect" | tee -a "$OUT/gpu.txt"
device=$(sed -n 's/^device //p' "$OUT/gpu.txt" | tail -n 1) # its "device nvidia-h200" line
if [ "$expect" = any ]; then device="rehearsal-$device"; fi
left() { echo $((BUDGET - (SECONDS - started))); }

case "$stage" in
  all)
    # shellcheck disable=SC2086
    budget=$(left)
    if [ "$budget" -lt 1 ]; then budget=1; fi # spent on the guard: the recipe's seed 0 alone, the call's point
    python3 -m research.gpu_all --data "$DATA" --out "$OUT" --device "$device" --budget "$budget" \
      --extra "${EXTRA:-}" --fast-extra "${FAST_EXTRA:-}" --bench-extra "${BENCH_EXTRA:-}" ${ALL_FLAGS:-} 2>&1 \
      | tee "$OUT/all.log"
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
      python3 -m jaxcifar.seeds --seeds "$n" --data "$DATA" --lr-max "$lr" --lr-min "$(awk "BEGIN { print $lr / 10 }")" \
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
