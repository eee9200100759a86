#!/usr/bin/env bash
# Issue 31's width-64 runs on the lossless images, one after another, from a frozen worktree, niced;
# run it again (a later session) and it continues: a finished run is skipped, a started one resumed
# with --resume (exact), the next one started. From the repository root:
#
#   nohup setsid bash research/png_queue.sh >> runs/png-queue.log 2>&1 < /dev/null &
#
# The code: runs/code, a detached git worktree of the commit in runs/code.commit (made at the first
# call from HEAD, or from FREEZE=COMMIT), so commits on main do not change a run under way. The runs
# (runs/cpu-24-png-*) and the data cache (runs/.cache) sit in the ignored runs/ folder. In order:
#   a  the plateau rule's LR pair from results/lr-range-cpu-png.json, seed 0
#   b  --recipe cifar10-fast, seed 0
#   c  the accuracy rule's pair (the default before issue 46), seed 0
#   d  the better of a and c by final test accuracy, seeds 1 and 2
# Each run, once finished: python -m research.collect_run runs/NAME --name NAME --suffix=-NAME
# Environment (the tests rehearse the queue tiny with them): PYTHON (default .venv/bin/python), DATA,
# SWEEP (an lr_range.json), EXTRA (flags added to every run), FAST_EXTRA (to the cifar10-fast run), NICE
# (the runs' niceness, default 19: other work on the machine goes first).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
mkdir -p runs
if [ ! -d runs/code ]; then
  commit=$(git rev-parse "${FREEZE:-HEAD}")
  git worktree add --detach runs/code "$commit"
  echo "$commit" > runs/code.commit
fi
# From runs/code, the paths a user types resolve: runs/NAME is the main tree's runs/NAME, and
# ../shared/data the shared data (runs/shared -> the repository's sibling shared/).
[ -L runs/code/runs ] || ln -s .. runs/code/runs
[ -L runs/shared ] || ln -s ../../shared runs/shared
export JAXCIFAR_CACHE="$root/runs/.cache" PYTHONUNBUFFERED=1 NO_ALBUMENTATIONS_UPDATE=1
python="${PYTHON:-$root/.venv/bin/python}"
data="${DATA:-../shared/data/cifar10-png.tar.gz}"
sweep="${SWEEP:-results/lr-range-cpu-png.json}"
read -ra extra <<< "${EXTRA:-}"
read -ra fast_extra <<< "${FAST_EXTRA:-}"

finished() { [ -f "runs/$1/summary.json" ] && grep -q '"status": "completed"' "runs/$1/summary.json"; }

run() { # run NAME FLAGS...: start, resume or skip runs/NAME
  local name=$1 resume=()
  shift
  if finished "$name"; then
    echo "$(date -u +%FT%TZ) $name: finished, skipped"
    return 0
  fi
  if [ -d "runs/$name" ]; then resume=(--resume); fi
  echo "$(date -u +%FT%TZ) $name: ${resume[*]:-start}"
  local status=0
  (cd runs/code && nice -n "${NICE:-19}" "$python" -m jaxcifar.train --data "$data" --tta "$@" ${extra[@]+"${extra[@]}"} \
    --out "runs/$name" --no-progress ${resume[@]+"${resume[@]}"}) || status=$?
  echo "$(date -u +%FT%TZ) $name: exit $status"
  return "$status"
}

final() { # the final test accuracy in runs/NAME/summary.json
  "$python" -c "import json, sys; print(json.load(open(sys.argv[1]))['final_test_accuracy'])" "runs/$1/summary.json"
}

run cpu-24-png-plateau --lr-range-json "$sweep" --lr-range-rule plateau
run cpu-24-png-fast --recipe cifar10-fast ${fast_extra[@]+"${fast_extra[@]}"}
run cpu-24-png --lr-range-json "$sweep" --lr-range-rule accuracy
if "$python" -c "import sys; sys.exit(float(sys.argv[1]) < float(sys.argv[2]))" \
  "$(final cpu-24-png-plateau)" "$(final cpu-24-png)"; then
  better=(cpu-24-png-plateau plateau)
else
  better=(cpu-24-png accuracy)
fi
for seed in 1 2; do
  run "${better[0]}-seed$seed" --lr-range-json "$sweep" --lr-range-rule "${better[1]}" --seed "$seed"
done
echo "$(date -u +%FT%TZ) queue done"
