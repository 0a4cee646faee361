"""Reading and writing audio and video files with PyAV (and soundfile for .wav)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf

from hgrlib.base.io import atomic
from hgrlib.data.records import DataError


def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out or x.size == 0:
        return x.astype(np.float32)
    import soxr  # librosa's default resampler; a dependency of librosa

    return soxr.resample(x, sr_in, sr_out).astype(np.float32)


def read_audio(path: str | Path, sr: int = 16000) -> np.ndarray:
    """Mono float32 waveform at `sr` Hz from a .wav or the audio track of a video file."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        if path.suffix.lower() == ".wav":
            x, sr_in = sf.read(str(path), dtype="float32", always_2d=True)
            x = x.mean(axis=1)
        else:
            with av.open(str(path)) as box:
                if not box.streams.audio:
                    raise DataError(f"{path}: no audio track")
                stream = box.streams.audio[0]
                sr_in = stream.codec_context.sample_rate
                chunks = [f.to_ndarray() for f in box.decode(stream)]
            if not chunks:
                x = np.zeros(0, np.float32)
            else:
                # planar (channels, n) or packed (1, n*channels) layouts; average the channels
                chans = stream.codec_context.channels if hasattr(stream.codec_context, "channels") else 1
                parts = []
                for c in chunks:
                    c = c.astype(np.float32)
                    if c.shape[0] == 1 and chans > 1:
                        c = c.reshape(-1, chans).T
                    parts.append(c.mean(axis=0))
                x = np.concatenate(parts)
                if np.issubdtype(chunks[0].dtype, np.integer):
                    x /= float(np.iinfo(chunks[0].dtype).max)
    except DataError:
        raise
    except Exception as e:  # PyAV / libsndfile errors come in many types
        raise DataError(f"{path}: cannot decode audio ({type(e).__name__}: {e})") from e
    if x.size == 0:
        raise DataError(f"{path}: audio is empty")
    return _resample(x, sr_in, sr)


@contextmanager
def _video_stream(path: str | Path) -> Iterator[tuple[av.container.InputContainer, av.video.stream.VideoStream, float]]:
    """The container, first video stream and fps of a file; any decoder error becomes a DataError naming it."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        # skip_frame reaches only the decoder that probes the streams when the file is opened (it would
        # decode the first frame, ~1.5% of a 4 s clip's decoding); the frames we decode are not affected.
        with av.open(str(path), options={"skip_frame": "all"}) as box:
            if not box.streams.video:
                raise DataError(f"{path}: no video track")
            stream = box.streams.video[0]
            stream.thread_type = "AUTO"
            yield box, stream, float(stream.average_rate or stream.guessed_rate or 25)
    except DataError:
        raise
    except Exception as e:  # PyAV raises many types
        raise DataError(f"{path}: cannot decode video ({type(e).__name__}: {e})") from e


def video_info(path: str | Path) -> tuple[int, float, int, int]:
    """(number of frames, fps, height, width) of a video file, from its container."""
    with _video_stream(path) as (_, s, fps):
        n = s.frames or (int(round(float(s.duration * s.time_base) * fps)) if s.duration else 0)
        return int(n), fps, s.codec_context.height, s.codec_context.width


def read_video(path: str | Path, max_side: int | None = None) -> tuple[np.ndarray, float]:
    """All frames as uint8 RGB (T, H, W, 3) and the frame rate; optionally downscaled so max(H, W) <= max_side."""
    with _video_stream(path) as (box, stream, fps):
        h, w = stream.codec_context.height, stream.codec_context.width
        kw = {}
        if max_side and max(h, w) > max_side:
            s = max_side / max(h, w)
            kw = {"width": int(round(w * s)) // 2 * 2, "height": int(round(h * s)) // 2 * 2}
        frames = [f.to_ndarray(format="rgb24", **kw) for f in box.decode(stream)]
    if not frames:
        raise DataError(f"{path}: video has no frames")
    return np.stack(frames), fps


def write_wav(path: str | Path, x: np.ndarray, sr: int) -> None:
    """16-bit PCM .wav, written atomically."""
    with atomic(path) as tmp:
        sf.write(str(tmp), np.clip(x, -1, 1), sr, subtype="PCM_16", format="WAV")


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: int,
    audio: np.ndarray | None = None,
    sr: int = 16000,
    crf: int = 23,
) -> None:
    """H.264 .mp4 (with an AAC track if `audio` is given) from uint8 RGB frames (T, H, W, 3), atomically."""
    t, h, w, _ = frames.shape
    with atomic(path) as tmp, av.open(str(tmp), mode="w") as box:
        vs = box.add_stream("libx264", rate=Fraction(fps))
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        # Same frames -> same bytes: x264's output depends on its thread count (by default the number of
        # cores), and its AVX-512 macroblock-tree code reads uninitialised memory (bytes vary run to run).
        vs.options = {"crf": str(crf), "preset": "veryfast", "mbtree": "0"}
        vs.thread_count = 1
        if audio is not None:
            aus = box.add_stream("aac", rate=sr)
            aus.layout = "mono"
        for img in frames:
            for pkt in vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                box.mux(pkt)
        for pkt in vs.encode():
            box.mux(pkt)
        if audio is not None:
            pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)[None, :]
            af = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
            af.sample_rate = sr
            for pkt in aus.encode(af):
                box.mux(pkt)
            for pkt in aus.encode():
                box.mux(pkt)


def read_frames(path: str | Path, times: list[float]) -> tuple[np.ndarray, float, int]:
    """The frames nearest to `times` (s) as uint8 RGB (K, H, W, 3), the fps, and the frames decoded.

    Decodes sequentially up to the last wanted frame (H.264 needs the frames before it; those of the
    synthetic clips are all reference P-frames, so none can be skipped) but converts only the wanted
    frames; a time past the end of the stream gets the last frame.
    """
    got: dict[int, np.ndarray] = {}
    with _video_stream(path) as (box, stream, fps):
        indices = [max(0, int(round(t * fps))) for t in times]
        wanted, stop = set(indices), max(indices)
        i, last = -1, None
        for i, frame in enumerate(box.decode(stream)):
            last = frame
            if i in wanted:
                got[i] = frame.to_ndarray(format="rgb24")
            if i >= stop:
                break
        if last is None:
            raise DataError(f"{path}: video has no frames")
        tail = last.to_ndarray(format="rgb24") if len(got) < len(wanted) else None
    return np.stack([got.get(k, tail) for k in indices]), fps, i + 1
