"""Face detection on real faces: the two portraits that ship with our dependencies, pasted into frames.

    .venv/bin/python benchmarks/bench_faces.py [--variants 8] [--threads 1] [--quick]   (~5 min on 2 busy cores)

Portraits: scikit-image's `astronaut` (Eileen Collins, 512×512) and matplotlib's `grace_hopper.jpg`
(512×600), each with a face box set by hand (brow or hat brim to chin, cheek to cheek). Each is scaled so
that its face box is 40…400 px tall, rotated by up to ±10° about the face's centre and pasted at a random
place (the whole face inside) into a real photograph without faces (scikit-image's `coffee` or `rocket`,
resized to the frame) at 720×576 (eNTERFACE'05, BAUM-1s) and 1280×720 (RAVDESS); then the lighting is
changed (gain 0.55–1.25, gamma 0.75–1.35, a side light of up to ±17%) and the frame is left as it is, or
JPEG-compressed (quality 25–60), or H.264-compressed (libx264 crf 32, all the frames of one size as one
clip, decoded back), the three in turn. `--variants` frames per portrait, frame size and face size;
plus `--variants`×2 frames without a face per frame size (the backgrounds, same changes).

Detectors and scales (hgrlib.data.faces; "min_face" = FeatureConfig.min_face, the smallest face searched
for as a fraction of the frame height; the frame is downscaled so that such a face keeps the detector's
`min_px`): Haar at 320 px (the rule before this benchmark: longest side 320 px, smallest face 0.2 of the
shorter side, histogram-equalised frame, largest box), that detector at min_face 0.1, today's Haar
(grayscale without equalisation, the box with the most neighbours) and MTCNN at min_face 0.2 / 0.1 (the
default) / 0.05, Haar at 0.1 with min_px 24 and 48 (the margin above its 24 px window, 32 by default),
and both at full size (min_face 0.03: never downscaled at these sizes). MTCNN at full size runs on every
4th frame only (slow).

Per detector and scale: detection rate (the returned box overlaps the pasted face box with IoU ≥ 0.4),
wrong boxes (a box elsewhere: IoU < 0.4), box accuracy (mean IoU of the detections that count), false
detections on the frames without a face, and ms per frame at each frame size (frames of one size in
batches of 18, as a clip's key frames; `--threads` torch and OpenCV threads, 1 = as a prep worker).
Writes results_faces.json beside itself. The CPU may be shared (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hgrlib.data.faces import HaarDetector, MtcnnDetector  # noqa: E402
from hgrlib.data.media import read_video, write_video  # noqa: E402

FRAMES = [(576, 720), (720, 1280)]  # (H, W)
SIZES = [40, 60, 75, 100, 150, 250, 400]  # face box height (px) in the frame
HIT_IOU = 0.4
COMPRESSIONS = ("none", "jpeg", "h264")  # in turn
BATCH = 18  # key frames of a clip (6 segments x 3)


def portraits() -> dict[str, tuple[np.ndarray, tuple[int, int, int, int]]]:
    """name -> (RGB image, hand-set face box (x, y, w, h))."""
    from matplotlib import cbook
    from PIL import Image
    from skimage import data

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        grace = np.asarray(Image.open(fh).convert("RGB"))
    return {"astronaut": (data.astronaut(), (182, 70, 86, 100)), "grace_hopper": (grace, (176, 125, 182, 220))}


def backgrounds() -> list[np.ndarray]:
    from skimage import data

    return [data.coffee(), data.rocket()]


def cover(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """`img` resized to cover (h, w) and cut to it."""
    s = max(h / img.shape[0], w / img.shape[1])
    big = cv2.resize(img, (round(img.shape[1] * s) + 1, round(img.shape[0] * s) + 1), interpolation=cv2.INTER_AREA)
    y0, x0 = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
    return np.ascontiguousarray(big[y0 : y0 + h, x0 : x0 + w])


def relight(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    gain, gamma, side = rng.uniform(0.55, 1.25), rng.uniform(0.75, 1.35), rng.uniform(-0.35, 0.35)
    ramp = 1.0 + side * (np.linspace(0, 1, frame.shape[1])[None, :, None] - 0.5)
    return np.clip(255.0 * (frame / 255.0) ** gamma * gain * ramp, 0, 255).astype(np.uint8)


def paste(bg: np.ndarray, img: np.ndarray, face: tuple, size: int, rng: np.random.Generator):
    """`img` scaled so its face box is `size` px tall, rotated about the face centre, pasted at a random
    place with the whole face inside `bg`: (frame, the face box in the frame, the angle in degrees)."""
    H, W = bg.shape[:2]
    fx, fy, fw, fh = face
    k = size / fh
    w, h = fw * k, fh * k
    cx, cy = rng.uniform(w / 2 + 2, W - w / 2 - 2), rng.uniform(h / 2 + 2, H - h / 2 - 2)
    angle = rng.uniform(-10, 10)
    m = cv2.getRotationMatrix2D((fx + fw / 2, fy + fh / 2), angle, k)
    m[:, 2] += (cx - (fx + fw / 2), cy - (fy + fh / 2))
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    warped = cv2.warpAffine(img, m, (W, H), flags=interp)
    mask = cv2.warpAffine(np.ones(img.shape[:2], np.float32), m, (W, H), flags=cv2.INTER_LINEAR)[..., None]
    frame = (warped * mask + bg * (1 - mask)).round().astype(np.uint8)
    return frame, (cx - w / 2, cy - h / 2, w, h), angle


def jpeg(frame: np.ndarray, q: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def h264(frames: list[np.ndarray], crf: int = 32) -> list[np.ndarray]:
    with tempfile.TemporaryDirectory() as d:
        write_video(Path(d) / "x.mp4", np.stack(frames), 25, crf=crf)
        out, _ = read_video(Path(d) / "x.mp4")
    assert len(out) == len(frames)
    return list(out)


def make_frames(variants: int, seed: int = 0) -> list[dict]:
    """The test frames: dicts with frame, face box (None: no face), portrait, size, compression."""
    rng = np.random.default_rng(seed)
    ports, bgs = portraits(), backgrounds()
    items = []
    for H, W in FRAMES:
        covered = [cover(b, H, W) for b in bgs]
        group = []
        for name, (img, face) in ports.items():
            for size in SIZES:
                for v in range(variants):
                    frame, box, angle = paste(covered[v % 2], img, face, size, rng)
                    group.append(
                        {
                            "frame": relight(frame, rng),
                            "box": box,
                            "angle": angle,
                            "portrait": name,
                            "size": size,
                            "comp": COMPRESSIONS[len(group) % 3],
                        }
                    )
        for v in range(2 * variants):
            group.append(
                {"frame": relight(covered[v % 2], rng), "box": None, "angle": 0.0, "portrait": "", "size": 0, "comp": COMPRESSIONS[v % 3]}
            )
        for it in group:
            if it["comp"] == "jpeg":
                it["frame"] = jpeg(it["frame"], int(rng.integers(25, 61)))
        hs = [it for it in group if it["comp"] == "h264"]
        for it, f in zip(hs, h264([it["frame"] for it in hs])):
            it["frame"] = f
        for it in group:
            it["hw"] = (H, W)
        items += group
    return items


class Before(HaarDetector):
    """The rule before: longest side downscaled to 320 px, smallest face 0.2 of the shorter side (>= 20 px)."""

    def scale(self, h: int, w: int) -> float:
        return min(1.0, 320 / max(h, w))

    def _detect_one(self, frame_rgb):
        h, w = frame_rgb.shape[:2]
        s = self.scale(h, w)
        gray = cv2.cvtColor(np.ascontiguousarray(frame_rgb), cv2.COLOR_RGB2GRAY)
        if s < 1.0:
            gray = cv2.resize(gray, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        m = max(20, int(0.2 * min(gray.shape)))
        faces = self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=4, minSize=(m, m))
        if len(faces) == 0:
            return None
        x, y, bw, bh = max(faces, key=lambda f: f[2] * f[3])
        return (round(x / s), round(y / s), round(bw / s), round(bh / s))


class Equalised(HaarDetector):
    """Haar at the min_face scale as it was before: histogram-equalised frame, the largest box wins."""

    def _detect_one(self, frame_rgb):
        h = frame_rgb.shape[0]
        small = self._resized(frame_rgb)
        s = small.shape[0] / h
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        m = max(self.WINDOW, round(self.min_face * h * s))
        faces = self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=4, minSize=(m, m))
        if len(faces) == 0:
            return None
        x, y, bw, bh = max(faces, key=lambda f: f[2] * f[3])
        return (round(x / s), round(y / s), round(bw / s), round(bh / s))


def detectors(quick: bool) -> list[tuple[str, str, float, object, int]]:
    """(label, detector, min_face, factory, stride over the frames)."""
    out = [
        ("haar, longest side 320 px (before)", "haar", 0.0, lambda: Before(), 1),
        ("haar, min_face 0.1, equalised, largest", "haar", 0.1, lambda: Equalised(0.1), 1),
    ]
    for mf in (0.1,) if quick else (0.2, 0.1, 0.05):
        out.append((f"haar, min_face {mf}", "haar", mf, lambda mf=mf: HaarDetector(mf), 1))
    if not quick:
        out += [
            ("haar, min_face 0.1, min_px 24", "haar", 0.1, lambda: HaarDetector(0.1, min_px=24), 1),
            ("haar, min_face 0.1, min_px 48", "haar", 0.1, lambda: HaarDetector(0.1, min_px=48), 1),
            ("haar, full size", "haar", 0.03, lambda: HaarDetector(0.03, min_px=24), 1),
        ]
    for mf in (0.1,) if quick else (0.2, 0.1, 0.05):
        out.append((f"mtcnn, min_face {mf}", "mtcnn", mf, lambda mf=mf: MtcnnDetector(mf), 1))
    if not quick:
        out.append(("mtcnn, full size", "mtcnn", 0.03, lambda: MtcnnDetector(0.03, min_px=24), 4))
    return out


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter)


def run(label: str, kind: str, min_face: float, make, stride: int, items: list[dict]) -> dict:
    det = make()
    sub = items[::stride]
    det.detect_many([sub[0]["frame"]])  # warm-up (MTCNN's first call allocates)
    found, ms = [None] * len(sub), {}
    for hw in FRAMES:
        idx = [i for i, it in enumerate(sub) if it["hw"] == hw]
        t0 = time.perf_counter()
        for j in range(0, len(idx), BATCH):
            part = idx[j : j + BATCH]
            for i, b in zip(part, det.detect_many([sub[i]["frame"] for i in part])):
                found[i] = b
        ms[f"{hw[1]}x{hw[0]}"] = 1000 * (time.perf_counter() - t0) / len(idx)
    rows = []
    for it, b in zip(sub, found):
        v = iou(b, it["box"]) if (b is not None and it["box"] is not None) else 0.0
        rows.append(
            {
                "portrait": it["portrait"],
                "size": it["size"],
                "hw": it["hw"],
                "comp": it["comp"],
                "angle": it["angle"],
                "face": it["box"] is not None,
                "box": b is not None,
                "iou": v,
            }
        )
    pos = [r for r in rows if r["face"]]
    neg = [r for r in rows if not r["face"]]

    def rate(rs):
        return sum(r["iou"] >= HIT_IOU for r in rs) / len(rs) if rs else float("nan")

    promised = [r for r in pos if r["size"] >= min_face * r["hw"][0]]
    hits = [r["iou"] for r in pos if r["iou"] >= HIT_IOU]
    return {
        "label": label,
        "detector": kind,
        "min_face": min_face,
        "frames": len(sub),
        "ms_per_frame": ms,
        "detection_side_1280x720": list(det.detection_size(*FRAMES[1])[::-1]),
        "rate": rate(pos),
        "rate_within_min_face": rate(promised),
        "n_within_min_face": len(promised),
        "rate_faces_from_0.1": rate([r for r in pos if r["size"] >= 0.1 * r["hw"][0]]),  # the default's promise
        "wrong_box": sum(r["box"] and r["iou"] < HIT_IOU for r in pos) / len(pos),
        "iou": float(np.mean(hits)) if hits else float("nan"),
        "false_on_no_face": sum(r["box"] for r in neg) / len(neg) if neg else float("nan"),
        "rate_by_size": {str(z): rate([r for r in pos if r["size"] == z]) for z in SIZES},
        "rate_by_frame": {f"{w}x{h}": rate([r for r in pos if r["hw"] == (h, w)]) for h, w in FRAMES},
        "rate_by_compression": {c: rate([r for r in pos if r["comp"] == c]) for c in COMPRESSIONS},
        "rate_by_rotation": {
            "under 5 deg": rate([r for r in pos if abs(r["angle"]) < 5]),
            "5 to 10 deg": rate([r for r in pos if abs(r["angle"]) >= 5]),
        },
        "rate_by_portrait": {p: rate([r for r in pos if r["portrait"] == p]) for p in ("astronaut", "grace_hopper")},
        "scale_1280x720": det.scale(*FRAMES[1]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="only: before, haar 0.1, mtcnn 0.1")
    ap.add_argument("--out", default=str(Path(__file__).with_name("results_faces.json")))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    t0 = time.perf_counter()
    items = make_frames(args.variants)
    n_pos = sum(it["box"] is not None for it in items)
    print(f"{len(items)} frames ({n_pos} with a face) made in {time.perf_counter() - t0:.1f} s; threads {args.threads}")
    results = []
    for label, kind, mf, make, stride in detectors(args.quick):
        t1 = time.perf_counter()
        r = run(label, kind, mf, make, stride, items)
        results.append(r)
        ms = " / ".join(f"{v:.1f}" for v in r["ms_per_frame"].values())
        print(
            f"{label:38s} rate {100 * r['rate']:5.1f}%  within min_face {100 * r['rate_within_min_face']:5.1f}%  "
            f"faces >= 0.1 H {100 * r['rate_faces_from_0.1']:5.1f}%  "
            f"IoU {r['iou']:.2f}  wrong {100 * r['wrong_box']:4.1f}%  false {100 * r['false_on_no_face']:4.1f}%  "
            f"ms/frame (720x576 / 1280x720) {ms}  by size "
            + " ".join(f"{k}:{100 * v:.0f}" for k, v in r["rate_by_size"].items())
            + f"  [{time.perf_counter() - t1:.0f} s]",
            flush=True,
        )
    meta = {
        "variants": args.variants,
        "threads": args.threads,
        "frames": len(items),
        "with_face": n_pos,
        "sizes": SIZES,
        "frame_sizes": [f"{w}x{h}" for h, w in FRAMES],
        "hit_iou": HIT_IOU,
        "torch": torch.__version__,
        "opencv": cv2.__version__,
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
        "seconds": time.perf_counter() - t0,
    }
    Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    print(f"wrote {args.out} ({meta['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
