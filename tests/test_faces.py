"""Face detection and cropping: shapes, the counted no-face policy, borders."""

import numpy as np
import pytest

from hgrlib.data.faces import FaceDetector, FaceStats, crop_faces, square_crop
from hgrlib.data.synthetic import SyntheticConfig, clip_factors, clip_names, render_clip


@pytest.fixture(scope="module")
def face_frames() -> np.ndarray:
    cfg = SyntheticConfig(n_subjects=1, clips_per_emotion=1, duration=0.4, ambiguous_frac=0.0)
    actor, name = clip_names(cfg)[0]
    frames, _ = render_clip(cfg, clip_factors(cfg, actor, name))
    return frames


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


def test_detects_rendered_face(face_frames, detector):
    box = detector.detect(face_frames[0])
    assert box is not None
    x, y, w, h = box
    H, W = face_frames.shape[1:3]
    assert 0 <= x < W and 0 <= y < H and 0.2 * H < w <= W and 0.2 * H < h <= H
    assert abs(x + w / 2 - W / 2) < W / 4  # roughly centred, in the frame's own pixel coordinates


def test_detect_downscales_big_frames(face_frames, detector):
    big = np.repeat(np.repeat(face_frames[0], 4, axis=0), 4, axis=1)  # 480 x 640 > max_side
    b_small, b_big = detector.detect(face_frames[0]), detector.detect(big)
    assert b_big is not None
    assert np.allclose(np.array(b_big) / 4, b_small, atol=6)


def test_crop_shapes_and_counts(face_frames, detector):
    crops, st = crop_faces(face_frames, [0, 3, 6], size=48, margin=0.2, detector=detector)
    assert crops.shape == (3, 48, 48, 3) and crops.dtype == np.uint8
    assert st == FaceStats(detected=3, borrowed=0, fallback=0, clip_has_face=True)


def test_noise_frame_borrows_median_box(face_frames, detector):
    frames = face_frames[:3].copy()
    frames[1] = np.random.default_rng(0).integers(0, 256, frames[1].shape, dtype=np.uint8)
    assert detector.detect(frames[1]) is None
    crops, st = crop_faces(frames, [0, 1, 2], size=32, margin=0.2, detector=detector)
    assert (st.detected, st.borrowed, st.fallback, st.clip_has_face) == (2, 1, 0, True)
    med = np.median([detector.detect(frames[0]), detector.detect(frames[2])], axis=0).round().astype(int)
    assert np.array_equal(crops[1], square_crop(frames[1], tuple(med), 32, 0.2))


def test_blank_clip_falls_back_to_centre(detector):
    frames = np.full((4, 120, 160, 3), 128, np.uint8)
    frames[:, 12:108, 32:128] = 200  # the centred 0.8*min(H, W) = 96 px square
    crops, st = crop_faces(frames, [0, 2], size=24, margin=0.5, detector=detector)
    assert (st.detected, st.borrowed, st.fallback, st.clip_has_face) == (0, 0, 2, False)
    assert (crops == 200).all()  # exactly the centred square, no margin


def test_square_crop_pads_at_border():
    frame = np.full((100, 100, 3), 255, np.uint8)
    out = square_crop(frame, (-20, -20, 40, 40), size=40, margin=0.0)  # half outside, top-left
    assert out.shape == (40, 40, 3)
    assert (out[:20, :20] == 0).all() and (out[25:, 25:] == 255).all()
    out = square_crop(frame, (40, 40, 20, 20), size=40, margin=1.0)  # margin doubles the side: 40 px
    assert (out == 255).all()
    out = square_crop(frame, (80, 80, 20, 20), size=10, margin=1.0)  # 40 px box over the corner
    assert (out[:7, :7] == 255).all() and (out[-2:, -2:] == 0).all()  # 30 px inside, 10 px padded


def test_an_opencv_without_haar_cascades_is_a_clear_error(monkeypatch):
    import hgrlib.data.faces as faces

    monkeypatch.delattr(faces.cv2, "CascadeClassifier")  # as in OpenCV 5
    with pytest.raises(RuntimeError, match="no Haar cascade detector.*opencv-python-headless 4"):
        faces.FaceDetector()
