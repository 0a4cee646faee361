"""Offline face detection and square face crops of key frames.

Two detectors (``FeatureConfig.detector``), both made by :func:`make_detector` from the FeatureConfig:

* ``haar`` (the default): OpenCV's Haar frontal-face cascade (``haarcascade_frontalface_default.xml``).
  It ships inside the pinned opencv-python-headless 4.x wheel: no download, no extra dependency.
* ``mtcnn``: the paper's detector, facenet-pytorch's MTCNN (its P-, R- and O-Net weights ship inside
  its wheel), batched over a clip's key frames, on the CPU or a GPU. facenet-pytorch 2.6.0 pins
  torch<2.3 in its metadata, so it is installed without its dependencies by scripts/install_mtcnn.sh
  (docs/design.md, "Face detection").

Detection scale. Each detector finds faces down to a smallest size in pixels (``min_px``: Haar's 24 px
window with a margin, MTCNN's ``min_face_size``). The smallest face the user expects is
``FeatureConfig.min_face``, a fraction of the frame's height; a frame is downscaled (never upscaled)
by ``scale = min(1, min_px / (min_face * H))`` before detection, so that such a face keeps ``min_px``
pixels; smaller faces are not searched for (some are found all the same). Detection time grows with the
detection frame's area, i.e. roughly as 1 / min_face**2 until the frame is used at full size
(benchmarks/README.md, "Face detection").

No-face policy of :func:`crop_faces` (per clip):
  * a key frame with a detection is cropped around its own box (``detected``);
  * a key frame without one uses the median box of the detections on the OTHER key frames of the
    same clip (``borrowed``);
  * if no key frame of the clip has a face, every key frame gets a centred square crop of side
    0.8 * min(H, W) (``centre``, counted as ``fallback``) and ``clip_has_face`` is False.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from hgrlib.config import FeatureConfig

Box = tuple[int, int, int, int]  # (x, y, w, h) in the frame's own pixel coordinates

CASCADE = "haarcascade_frontalface_default.xml"
MTCNN_PACKAGE = "facenet-pytorch==2.6.0"
MTCNN_INSTALL = "scripts/install_mtcnn.sh (pip install --no-deps facenet-pytorch==2.6.0; docs/design.md: Face detection)"


class Detector:
    """One face box per frame (or None), searched down to `min_face` (fraction of the frame height) on a
    copy downscaled so that such a face keeps `min_px` pixels (see the module's docstring)."""

    name = ""
    MIN_PX = 24

    def __init__(self, min_face: float = 0.1, min_px: int | None = None) -> None:
        if not 0 < min_face <= 1:
            raise ValueError(f"min_face={min_face!r}: must be in (0, 1], a fraction of the frame height")
        self.min_face = float(min_face)
        self.min_px = int(min_px or self.MIN_PX)

    def scale(self, h: int, w: int) -> float:
        """The factor a (h, w) frame is resized by before detection: at most 1."""
        return min(1.0, self.min_px / (self.min_face * h))

    def detection_size(self, h: int, w: int) -> tuple[int, int]:
        """(height, width) of the frame the detector searches."""
        s = self.scale(h, w)
        return (h, w) if s >= 1.0 else (max(1, round(h * s)), max(1, round(w * s)))

    def _resized(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        dh, dw = self.detection_size(h, w)
        frame = np.ascontiguousarray(frame)
        return frame if (dh, dw) == (h, w) else cv2.resize(frame, (dw, dh), interpolation=cv2.INTER_AREA)

    def detect(self, frame_rgb: np.ndarray) -> Box | None:
        """The face box (x, y, w, h) in `frame_rgb`'s pixel coordinates, or None."""
        return self.detect_many([frame_rgb])[0]

    def detect_many(self, frames: Sequence[np.ndarray]) -> list[Box | None]:
        """`detect` of each frame (RGB uint8, any sizes), in order."""
        raise NotImplementedError


class HaarDetector(Detector):
    """OpenCV's Haar frontal-face cascade on a grayscale copy; its window is 24 px, and faces are searched
    from `min_px` (32) px at the detection scale. Of the boxes found, the one with the most neighbours (the
    cascade's own confidence; ties: the largest) wins. No global histogram equalisation: the cascade
    normalises each window's contrast itself, and equalising the whole frame lost faces whose background
    differs from them (a face on a dark background: benchmarks/README.md, "Face detection")."""

    name = "haar"
    MIN_PX = 32
    WINDOW = 24  # the cascade's own window: no face smaller than this is found at any scale

    def __init__(self, min_face: float = 0.1, min_px: int | None = None, scale_factor: float = 1.1, min_neighbors: int = 4) -> None:
        super().__init__(min_face, min_px)
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        if not hasattr(cv2, "CascadeClassifier"):  # OpenCV 5 moved the Haar cascades out of its main modules
            raise RuntimeError(
                f"OpenCV {cv2.__version__} has no Haar cascade detector (cv2.CascadeClassifier); "
                "install the pinned opencv-python-headless 4.x (pip install -e . in this repository)"
            )
        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE)
        if self.cascade.empty():
            raise RuntimeError(f"cannot load {cv2.data.haarcascades + CASCADE}")

    def _detect_one(self, frame_rgb: np.ndarray) -> Box | None:
        h, w = frame_rgb.shape[:2]
        small = self._resized(frame_rgb)
        sy, sx = small.shape[0] / h, small.shape[1] / w
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        m = max(self.WINDOW, round(self.min_face * h * sy))
        faces, neighbours = self.cascade.detectMultiScale2(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(m, m)
        )
        if len(faces) == 0:
            return None
        k = max(range(len(faces)), key=lambda i: (neighbours[i], faces[i][2] * faces[i][3]))
        x, y, bw, bh = (int(v) for v in faces[k])
        return (round(x / sx), round(y / sy), round(bw / sx), round(bh / sy))

    def detect_many(self, frames: Sequence[np.ndarray]) -> list[Box | None]:
        return [self._detect_one(f) for f in frames]


FaceDetector = HaarDetector  # its name before MTCNN came in


class MtcnnDetector(Detector):
    """facenet-pytorch's MTCNN (P-Net 12 px window; faces searched from `min_px` (24) px at the detection
    scale), one batch per frame size, on `device`; the largest box whose O-Net probability is at least
    `min_prob` wins. Boxes are the network's (x1, y1, x2, y2) rounded to whole pixels: brow to chin, so
    taller than Haar's."""

    name = "mtcnn"
    MIN_PX = 24

    def __init__(
        self, min_face: float = 0.1, min_px: int | None = None, device: str = "cpu", min_prob: float = 0.9, batch: int = 32
    ) -> None:
        super().__init__(min_face, min_px)
        try:
            from facenet_pytorch import MTCNN
        except ImportError as e:
            raise RuntimeError(
                f"features.detector=mtcnn needs {MTCNN_PACKAGE}, not installed here ({e}); install it with {MTCNN_INSTALL}"
            ) from e
        import torch

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("face detection on cuda asked for, but torch sees no GPU")
        self.device = torch.device(device)
        self.min_prob, self.batch = min_prob, batch
        self.mtcnn = MTCNN(min_face_size=self.min_px, keep_all=True, select_largest=True, device=self.device).eval()

    def detect_many(self, frames: Sequence[np.ndarray]) -> list[Box | None]:
        import torch

        out: list[Box | None] = [None] * len(frames)
        by_size: dict[tuple, list[int]] = {}
        for i, f in enumerate(frames):
            by_size.setdefault(f.shape[:2], []).append(i)
        for (h, w), idx in by_size.items():
            dh, dw = self.detection_size(h, w)
            scale = np.array([dw / w, dh / h, dw / w, dh / h])
            self.mtcnn.min_face_size = max(12, round(self.min_face * dh))  # = min_px unless the frame is small
            for j in range(0, len(idx), self.batch):
                part = idx[j : j + self.batch]
                batch = torch.from_numpy(np.stack([self._resized(frames[i]) for i in part])).to(self.device)
                boxes, probs = self.mtcnn.detect(batch)
                for i, b, p in zip(part, boxes, probs):
                    if b is None:
                        continue
                    b, p = np.asarray(b, np.float64).reshape(-1, 4), np.asarray(p, np.float64).reshape(-1)
                    b = b[p >= self.min_prob]
                    if len(b):
                        x1, y1, x2, y2 = b[np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))] / scale
                        out[i] = (round(x1), round(y1), round(x2 - x1), round(y2 - y1))
        return out


def make_detector(cfg: FeatureConfig, device: str = "cpu") -> Detector:
    """The face detector a FeatureConfig names (`detector`, `min_face`); `device` (cpu | cuda | auto) is
    MTCNN's (Haar runs on the CPU). The one place detectors are made: preparation, its workers, predict."""
    if cfg.detector == "mtcnn":
        return MtcnnDetector(cfg.min_face, device=device)
    return HaarDetector(cfg.min_face)


@dataclass
class FaceStats:
    """How the key-frame crops of one clip were obtained (counts of frames)."""

    detected: int = 0
    borrowed: int = 0
    fallback: int = 0
    clip_has_face: bool = False


@dataclass
class CropBoxes:
    """Per key frame, the box its crop was cut around (before the margin) and how it was obtained:
    "detected", "borrowed" (median of the clip's detections) or "centre" (no face in the clip)."""

    boxes: list[Box]
    how: list[str]


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
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = frame[sy0:sy1, sx0:sx1]
    interp = cv2.INTER_AREA if side >= size else cv2.INTER_LINEAR
    return cv2.resize(out, (size, size), interpolation=interp)


def crop_boxes(found: Sequence[Box | None], h: int, w: int) -> CropBoxes:
    """The no-face policy: the box each key frame's crop is cut around, from the detections of a clip's
    key frames (None where none) in (h, w) frames."""
    hits = [b for b in found if b is not None]
    if hits:
        median: Box = tuple(int(v) for v in np.median(np.array(hits), axis=0).round())
        return CropBoxes([b if b is not None else median for b in found], ["detected" if b is not None else "borrowed" for b in found])
    side = round(0.8 * min(h, w))
    centre = ((w - side) // 2, (h - side) // 2, side, side)
    return CropBoxes([centre] * len(found), ["centre"] * len(found))


def crop_faces(
    frames: np.ndarray, key_idx: Sequence[int], size: int, margin: float, detector: Detector, used: CropBoxes | None = None
) -> tuple[np.ndarray, FaceStats]:
    """Face crops (K, size, size, 3) uint8 of the key frames, and how they were obtained; detection is
    one `detector.detect_many` call over the key frames (a batch for MTCNN). `used`, if given, is filled
    with the box and the how of each key frame (for figures: hgrlib.app.predict)."""
    key_idx = list(key_idx)
    found = detector.detect_many([frames[i] for i in key_idx])
    H, W = frames.shape[1:3]
    cb = crop_boxes(found, H, W)
    stats = FaceStats(
        detected=cb.how.count("detected"),
        borrowed=cb.how.count("borrowed"),
        fallback=cb.how.count("centre"),
        clip_has_face=any(b is not None for b in found),
    )
    crops = np.zeros((len(key_idx), size, size, 3), np.uint8)
    for k, (i, box, how) in enumerate(zip(key_idx, cb.boxes, cb.how)):
        crops[k] = square_crop(frames[i], box, size, 0.0 if how == "centre" else margin)
    if used is not None:
        used.boxes[:], used.how[:] = cb.boxes, cb.how
    return crops, stats
