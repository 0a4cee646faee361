#!/usr/bin/env bash
# Create .venv (if missing or out of date), install hgrlib with its pinned dependencies, register the
# Jupyter kernel. Sourced by run_all.sh and run_tests.sh; safe to run again (does nothing when current).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HGRLIB_VENV:-$HERE/.venv}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.hgrlib-install-stamp"
want="$(cat "$HERE/pyproject.toml" | sha256sum | cut -c1-16)"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[env] creating $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "[env] installing hgrlib and its pinned dependencies (torch is large: a few minutes the first time)"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
  "$VENV/bin/python" -m pip install --quiet -e "$HERE[test]"
  "$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (hgrlib)" >/dev/null
  echo "$want" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
