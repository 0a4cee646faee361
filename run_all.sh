#!/usr/bin/env bash
# Reproduce every table and figure: make/prepare the data, run the notebooks through papermill into
# results/ and figures/, print the main table. Unchanged notebooks are skipped on a re-run.
#
#   ./run_all.sh                                   default profile, synthetic corpus (see README for the time)
#   ./run_all.sh --profile smoke                   tiny, about a minute a notebook
#   ./run_all.sh --dataset ravdess --root /data/RAVDESS [--classes 8]
#   ./run_all.sh --only 01,02 -j 1 --force        (-j: training runs side by side; default one per CPU core)
#   ./run_all.sh --verify [--scratch DIR]          regenerate from nothing elsewhere, compare every committed table
#   ./run_all.sh --executor slurm                  grid points as SLURM jobs (submitit; job settings in HGRLIB_SLURM)
#   ./run_all.sh --stack 16                        runs of one model shape trained 16 at a time as one network (GPU default)
#   ./run_all.sh lab [jupyter lab options]         JupyterLab on the project root (notebooks/, results/, figures/), opens notebooks/
set -euo pipefail
cd "$(dirname "$0")"
source scripts/ensure_env.sh
if [ "${1:-}" = lab ]; then
  shift
  exec jupyter lab --ServerApp.root_dir="$PWD" --ContentsManager.preferred_dir=notebooks "$@"
fi
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::FutureWarning}"
exec python -m hgrlib.reproduce.runner "$@"
