"""Reading and writing media: round trips, and clear errors that name the file."""

from __future__ import annotations

import numpy as np
import pytest

from hgrlib.data.media import read_audio, read_frames, read_video, video_info, write_video, write_wav
from hgrlib.data.records import DataError


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    frames = np.zeros((10, 32, 48, 3), np.uint8)
    frames[:, :, :, 0] = (np.arange(10) * 25)[:, None, None]  # frame i has red level 25·i
    sr = 16000
    audio = (0.3 * np.sin(2 * np.pi * 220 * np.arange(sr // 2) / sr)).astype(np.float32)
    write_video(path, frames, 25, audio, sr)
    return path, audio


def test_video_round_trip_and_key_frames(clip):
    path, _ = clip
    assert video_info(path) == (10, 25.0, 32, 48)
    frames, fps = read_video(path)
    assert frames.shape == (10, 32, 48, 3) and fps == 25.0
    picked, _, decoded = read_frames(path, [0.0, 0.2, 5.0])  # 5 s is past the end: the last frame
    assert picked.shape == (3, 32, 48, 3) and decoded == 10
    assert abs(int(picked[1, 16, 24, 0]) - 125) < 12 and abs(int(picked[2, 16, 24, 0]) - 225) < 12


def test_read_frames_gives_exactly_the_frames_at_the_times(clip):
    path, _ = clip
    every, _ = read_video(path)
    picked, fps, decoded = read_frames(path, [0.12, 0.0, 0.36, 0.12, 9.0])  # 25 fps: frames 3, 0, 9, 3; 9 s: the last
    assert fps == 25.0 and decoded == 10 and np.array_equal(picked, every[[3, 0, 9, 3, 9]])
    picked, _, decoded = read_frames(path, [0.08, 0.04])
    assert decoded == 3 and np.array_equal(picked, every[[2, 1]])  # stops at the last frame wanted


def test_audio_from_the_video_track_and_from_wav(clip, tmp_path):
    path, audio = clip
    x = read_audio(path, sr=16000)
    assert abs(len(x) - len(audio)) < 2048 and 0.2 < np.abs(x).max() < 0.4  # AAC adds a little padding
    write_wav(tmp_path / "a.wav", audio, 16000)
    y = read_audio(tmp_path / "a.wav", sr=8000)  # resampled
    assert len(y) == len(audio) // 2


@pytest.mark.parametrize("reader", [read_video, video_info, lambda p: read_frames(p, [0.0]), read_audio])
def test_broken_files_give_a_data_error_naming_the_file(reader, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    with pytest.raises(DataError, match="broken.mp4"):
        reader(bad)
    with pytest.raises(DataError, match="not found|cannot"):
        reader(tmp_path / "missing.mp4")


def test_empty_wav_is_reported(tmp_path):
    write_wav(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(DataError, match="empty.wav.*empty"):
        read_audio(tmp_path / "empty.wav")
