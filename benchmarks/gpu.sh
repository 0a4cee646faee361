#!/usr/bin/env bash
# The GPU figures of benchmarks/README.md, on a machine with a CUDA GPU and this repository's Python dependencies
# (papermill included, for run_all.sh). About 10 minutes on an H100:
#   1. bench_step.py: ms per training step of the default model, eager / graphed (train.graph) / stacked
#      (K = 1 4 16 64), against a timed 8192² fp32 matmul;
#   2. ./run_all.sh --only 01,02 of the default profile end to end (device auto: the GPU), its time, and its
#      main table (02_supervised_table.md) beside the committed CPU one.
#
#   bash benchmarks/gpu.sh                      # writes into $OUT if set, else benchmarks/results_gpu/
#   env: DEVICE (cuda), KS ("1 4 16 64"), PROFILE (default), RUN_ALL (1; 0 skips step 2), QUICK (0; 1: tiny
#        sizes), WORK (scratch for data, cache, runs, results; default a new temporary folder), PYTHON
#   DEVICE=cpu QUICK=1 RUN_ALL=0 OUT=/tmp/x bash benchmarks/gpu.sh    # the CPU check of the script (tests)
# run_all.sh makes .venv when it is missing (pip: needs the network); on an offline machine point HGRLIB_VENV at a
# ready environment, and PYTHON at its python.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results_gpu}; DEVICE=${DEVICE:-cuda}; KS=${KS:-1 4 16 64}; PROFILE=${PROFILE:-default}
RUN_ALL=${RUN_ALL:-1}; QUICK=${QUICK:-0}; py=${PYTHON:-python3}
if [ -z "${WORK:-}" ]; then W=$(mktemp -d /tmp/hgrlib-gpu-XXXXXX); trap 'rm -rf "$W"' EXIT; else W=$WORK; fi  # a folder of its own: removed at exit
mkdir -p "$OUT" "$W"
export PYTHONUNBUFFERED=1
stamp() { echo "== $(date -u +%H:%M:%S) $*"; }

stamp "machine" | tee "$OUT/machine.txt"
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi") | tee -a "$OUT/machine.txt"
$py -c "import torch, sys; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/machine.txt"

stamp "bench_step ($DEVICE, K = $KS)"
quick=(); [ "$QUICK" = 1 ] && quick=(--quick)
# shellcheck disable=SC2086  # KS: a list of numbers
$py benchmarks/bench_step.py --device "$DEVICE" "${quick[@]}" --ks $KS --out "$OUT/results_step_$DEVICE.json" 2>&1 | tee "$OUT/bench_step.log"
step_rc=${PIPESTATUS[0]}
echo "bench_step exit: $step_rc" | tee -a "$OUT/bench_step.log"

if [ "$RUN_ALL" = 1 ]; then
  stamp "./run_all.sh --only 01,02 --profile $PROFILE (scratch $W)"
  t0=$(date +%s)
  ./run_all.sh --profile "$PROFILE" --only 01,02 --force --results "$W/results" --figures "$W/figures" \
    --cache "$W/cache" --runs "$W/runs" 2>&1 | tee "$OUT/run_all.log"
  rc=${PIPESTATUS[0]}
  echo "run_all exit: $rc, $(( $(date +%s) - t0 )) s wall" | tee -a "$OUT/run_all.log" "$OUT/run_all_time.txt"
  table=synthetic-$PROFILE/02_supervised_table.md
  {
    echo "# 02_supervised_table.md: committed (CPU) and this GPU run"
    echo; echo "## committed: results/$table"; echo; cat "results/$table" 2>/dev/null || echo "(none committed)"
    echo; echo "## this run ($DEVICE): $W/results/$table"; echo; cat "$W/results/$table" 2>/dev/null || echo "(not written)"
  } > "$OUT/main_table.md"
  cp -r "$W/results" "$OUT/results" 2>/dev/null || true
fi
stamp "done: $OUT"
exit "$step_rc"
