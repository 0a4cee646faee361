#!/usr/bin/env bash
# MTCNN for FeatureConfig.detector="mtcnn": facenet-pytorch 2.6.0 (its P-, R- and O-Net weights ship in
# its wheel), installed WITHOUT its dependencies. Its metadata pins torch<2.3, torchvision<0.18, numpy<2
# and Pillow<10.3; letting pip resolve them would replace hgrlib's pinned stack, while the code hgrlib
# calls (MTCNN.detect) runs on the pinned versions (tests/test_detection.py). So `pip check` lists those
# four pins as unmet afterwards: expected, and harmless for hgrlib (docs/design.md, "Face detection").
# Run by scripts/ensure_env.sh unless HGRLIB_MTCNN=0; safe to run again.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HGRLIB_VENV:-$HERE/.venv}"
"$VENV/bin/python" -m pip install --quiet --no-deps "facenet-pytorch==2.6.0"
"$VENV/bin/python" -c "from facenet_pytorch import MTCNN; MTCNN()" ||
  { echo "[env] facenet-pytorch installed but MTCNN does not load on this stack" >&2; exit 1; }
