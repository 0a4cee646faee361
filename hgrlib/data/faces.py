"""Offline face detection and square face crops of key frames.

Detector: OpenCV's Haar frontal-face cascade (``haarcascade_frontalface_default.xml``). It ships
inside the opencv-python-headless 4.x wheel, so it needs no download and no extra dependency; the
paper's MTCNN (facenet-pytorch) pins torch<2.3 and MediaPipe's pip wheel ships no face model.
Haar is less accurate on real, non-frontal faces; the no-face policy below makes every miss
explicit and counted.

No-face policy of :func:`crop_faces` (per clip):
  * a key frame with a detection is cropped around its own box (``detected``);
  * a key frame without one uses the median box of the detections on the OTHER key frames of the
    same clip (``borrowed``);
  * if no key frame of the clip has a face, every key frame gets a centred square crop of side
    0.8 * min(H, W) (``fallback``) and ``clip_has_face`` is False.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # (x, y, w, h) in the frame's own pixel coordinates

CASCADE = "haarcascade_frontalface_default.xml"


class FaceDetector:
    """Largest frontal face by OpenCV's Haar cascade, on a downscaled, equalised grayscale copy."""

    def __init__(self, max_side: int = 320, scale_factor: float = 1.1, min_neighbors: int = 4,
                 min_rel_size: float = 0.2) -> None:
        self.max_side = max_side
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_rel_size = min_rel_size  # smallest face side, as a fraction of the frame's shorter side
        if not hasattr(cv2, "CascadeClassifier"):  # OpenCV 5 moved the Haar cascades out of its main modules
            raise RuntimeError(f"OpenCV {cv2.__version__} has no Haar cascade detector (cv2.CascadeClassifier); "
                               "install the pinned opencv-python-headless 4.x (pip install -e . in this repository)")
        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE)
        if self.cascade.empty():
            raise RuntimeError(f"cannot load {cv2.data.haarcascades + CASCADE}")

    def detect(self, frame_rgb: np.ndarray) -> Box | None:
        """The largest face box (x, y, w, h) in `frame_rgb`'s pixel coordinates, or None."""
        h, w = frame_rgb.shape[:2]
        s = min(1.0, self.max_side / max(h, w))
        gray = cv2.cvtColor(np.ascontiguousarray(frame_rgb), cv2.COLOR_RGB2GRAY)
        if s < 1.0:
            gray = cv2.resize(gray, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        m = max(20, int(self.min_rel_size * min(gray.shape)))
        faces = self.cascade.detectMultiScale(gray, scaleFactor=self.scale_factor,
                                              minNeighbors=self.min_neighbors, minSize=(m, m))
        if len(faces) == 0:
            return None
        x, y, bw, bh = max(faces, key=lambda f: f[2] * f[3])
        return (round(x / s), round(y / s), round(bw / s), round(bh / s))


@dataclass
class FaceStats:
    """How the key-frame crops of one clip were obtained (counts of frames)."""

    detected: int = 0
    borrowed: int = 0
    fallback: int = 0
    clip_has_face: bool = False


def square_crop(frame: np.ndarray, box: Box, size: int, margin: float) -> np.ndarray:
    """Square crop around `box` enlarged by `margin` (fraction of side), zero-padded at borders, resized."""
    x, y, w, h = box
    side = max(1, round(max(w, h) * (1.0 + margin)))
    cx, cy = x + w / 2.0, y + h / 2.0
    x0, y0 = round(cx - side / 2.0), round(cy - side / 2.0)
    H, W = frame.shape[:2]
    out = np.zeros((side, side, 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(W, x0 + side), min(H, y0 + side)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = frame[sy0:sy1, sx0:sx1]
    interp = cv2.INTER_AREA if side >= size else cv2.INTER_LINEAR
    return cv2.resize(out, (size, size), interpolation=interp)


def crop_faces(frames: np.ndarray, key_idx: Sequence[int], size: int, margin: float,
               detector: FaceDetector) -> tuple[np.ndarray, FaceStats]:
    """Face crops (K, size, size, 3) uint8 of the key frames, and how they were obtained."""
    key_idx = list(key_idx)
    boxes = [detector.detect(frames[i]) for i in key_idx]
    found = [b for b in boxes if b is not None]
    stats = FaceStats(clip_has_face=bool(found))
    H, W = frames.shape[1:3]
    crops = np.zeros((len(key_idx), size, size, 3), np.uint8)
    for k, (i, b) in enumerate(zip(key_idx, boxes)):
        if b is not None:
            stats.detected += 1
            box, m = b, margin
        elif found:
            stats.borrowed += 1
            box = tuple(int(v) for v in np.median(np.array(found), axis=0).round())
            m = margin
        else:
            stats.fallback += 1
            side = round(0.8 * min(H, W))
            box, m = ((W - side) // 2, (H - side) // 2, side, side), 0.0
        crops[k] = square_crop(frames[i], box, size, m)
    return crops, stats
