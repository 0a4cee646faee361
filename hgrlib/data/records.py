"""One record per audio-visual clip, the common currency of every loader."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

# The paper's six basic emotions (eNTERFACE'05's classes), in the order used for class indices.
EMOTIONS6: tuple[str, ...] = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
# RAVDESS's eight classes, in its own code order (01..08).
EMOTIONS8: tuple[str, ...] = (
    "neutral",
    "calm",
    "happiness",
    "sadness",
    "anger",
    "fear",
    "disgust",
    "surprise",
)


@dataclass(frozen=True)
class ClipRecord:
    """A clip on disk: the video file, where its audio comes from, and its labels."""

    path: str  # video file (.mp4/.avi)
    subject: str  # speaker / actor id, used for subject-independent splits
    emotion: str  # one of EMOTIONS6 or EMOTIONS8
    dataset: str  # "ravdess", "enterface", "baum1s", "manifest", "synthetic"
    audio_path: str | None = None  # separate audio file if any; else the video's audio track
    meta: dict = field(default_factory=dict, hash=False, compare=False)  # what else the layout encodes

    @property
    def clip_id(self) -> str:
        """Stable id: the file name without extension, prefixed by the subject."""
        return f"{self.subject}/{Path(self.path).stem}"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class IndexReport:
    """What a loader saw: files accepted and files it did not take, with the reason for each."""

    accepted: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def skip(self, path: str | Path, reason: str) -> None:
        self.skipped.append((str(path), reason))

    def summary(self) -> str:
        lines = [f"{self.accepted} clips accepted, {len(self.skipped)} files not used"]
        lines += [f"  {p}: {r}" for p, r in self.skipped[:20]]
        if len(self.skipped) > 20:
            lines.append(f"  ... and {len(self.skipped) - 20} more")
        return "\n".join(lines)

    def found(self) -> str:
        """What the folder held, for the error of a loader that found no clip in it."""
        return self.summary() if self.skipped else "the folder holds no files (links are followed)"


class DataError(RuntimeError):
    """Bad input: the message names the file (or folder) and the problem."""
