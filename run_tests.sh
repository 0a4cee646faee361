#!/usr/bin/env bash
# The test suite: ruff, then unit tests and smoke-profile notebook runs (under 15 minutes on 2 CPU cores).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/ensure_env.sh
python -m ruff check hgrlib tests scripts benchmarks notebooks/src  # lint and format (rules in pyproject.toml)
python -m ruff format --check --quiet hgrlib tests scripts benchmarks
exec python -m pytest -q "$@"
