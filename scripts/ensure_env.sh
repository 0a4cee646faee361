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
  rm -f "$VENV/share/jupyter/kernels/python3/kernel.json"  # the wheel's copy: registered again below
  echo "$want" > "$STAMP"
fi
# MTCNN (features.detector=mtcnn), outside pip's resolver: scripts/install_mtcnn.sh says why; HGRLIB_MTCNN=0 skips it
if [ "${HGRLIB_MTCNN:-1}" != 0 ] && ! "$VENV/bin/python" -c "import importlib.metadata as m; assert m.version('facenet-pytorch') == '2.6.0'" 2>/dev/null; then
  echo "[env] installing facenet-pytorch 2.6.0 (MTCNN) without its dependencies"
  bash "$HERE/scripts/install_mtcnn.sh"
fi
# the kernel under ipykernel's own name and display name, as the committed notebooks' metadata names it
# (scripts/sync_notebooks.py), so that Lab opens them without rewriting it; again where it differs
grep -qs '"display_name": "Python 3 (ipykernel)"' "$VENV/share/jupyter/kernels/python3/kernel.json" ||
  "$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ipykernel)" >/dev/null
export PATH="$VENV/bin:$PATH"
