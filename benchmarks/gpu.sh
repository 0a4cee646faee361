#!/usr/bin/env bash
# The GPU figures of benchmarks/README.md, on a machine with a CUDA GPU and this repository's Python
# dependencies importable (no Jupyter needed): bench_train.py (eager, bf16, compile), bench_stack.py, and
# notebook 02 of a profile (default: paper) run as a script, stopped after NOTEBOOK_S seconds if unfinished.
#
#   OUT=gpu-out bash benchmarks/gpu.sh     # env: PROFILE, DEVICE, WORKERS, NOTEBOOK_S, KS, WORK, PYTHON
#
# Logs and JSON go to $OUT; data, cache, runs, results and figures to $WORK (default /tmp/hgrlib-gpu-work).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}; PROFILE=${PROFILE:-paper}; DEVICE=${DEVICE:-cuda}; WORKERS=${WORKERS:-$(nproc)}
NOTEBOOK_S=${NOTEBOOK_S:-240}; KS=${KS:-}
W=${WORK:-/tmp/hgrlib-gpu-work}; mkdir -p "$OUT" "$W"
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
stamp() { echo "== $(date -u +%H:%M:%S) $*"; }
stamp "machine"; (nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true) | tee "$OUT/gpu.txt"
$py -c "import torch, sys; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"
stamp "bench_train"; $py benchmarks/bench_train.py --device "$DEVICE" --quick --out "$OUT/results_train_$DEVICE.json" 2>&1 | tee "$OUT/bench_train.log"
stamp "bench_stack"; $py benchmarks/bench_stack.py --device "$DEVICE" --quick ${KS:+--ks $KS} --out "$OUT/results_stack_$DEVICE.json" 2>&1 | tee "$OUT/bench_stack.log"
best=$($py -c "import json; r=json.load(open('$OUT/results_stack_$DEVICE.json'))['variants']; b=max(r, key=lambda v: v['samples_per_s']); print(1 if b['variant']=='solo' else int(b['variant'][5:]))")
stamp "notebook 02, profile $PROFILE, stacks of $best (the fastest above)"
$py -m hgrlib.cli prep --profile "$PROFILE" --workers "$WORKERS" --cache "$W/cache" 2>&1 | tail -5 | tee "$OUT/prep.log"
HGRLIB_STACK=$best timeout "$NOTEBOOK_S" $py benchmarks/notebook_as_script.py 02 "profile='$PROFILE'" "cache_dir='$W/cache'" \
  "runs_dir='$W/runs'" "results_dir='$W/results'" "figures_dir='$W/figures'" replica_seed=None 2>&1 | tee "$OUT/notebook02.log"
echo "notebook exit: ${PIPESTATUS[0]}" | tee -a "$OUT/notebook02.log"
$py - "$W/runs" <<'PY' | tee "$OUT/runs_summary.txt"
import json, sys, glob, statistics
rs = [json.load(open(f)) for f in glob.glob(sys.argv[1] + "/*/result.json")]
if rs:
    s = [r["seconds"] for r in rs]
    print(f"{len(rs)} runs finished; seconds per run (stack time / size): median {statistics.median(s):.1f}, "
          f"stack sizes {sorted({r.get('stack_size', 1) for r in rs})}, device {rs[0]['device']}")
else:
    print("no run finished")
PY
stamp "done"
