#!/usr/bin/env bash
# The test suite: unit tests and smoke-profile notebook runs (under 15 minutes on 2 CPU cores).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/ensure_env.sh
exec python -m pytest -q "$@"
