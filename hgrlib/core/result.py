"""RunResult: what a finished run's result.json holds (written by hgrlib.core.train.finish_run, read by hgrlib.experiment.runs.read_result
through RunResult.from_dict)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from hgrlib.base.io import read_sealed_json, write_sealed_json


@dataclass
class RunResult:
    """One run's result; the field order is result.json's key order (kept: the committed results' bytes)."""

    config: dict
    key: dict
    features_sha256: str
    weights_sha256: str
    test: dict  # clip- and segment-level scores of the best epoch on the test part (train.evaluate)
    history: list[dict]  # per epoch: mean loss parts, non-finite steps, validation acc / uar
    best_val_uar: float
    n_train_segments: int
    n_labeled_segments: int
    steps: int
    n_test_segments: int
    test_subjects: list
    device: str
    threads: int
    world_size: int = 1
    stack_size: int | None = None  # trained as a member of a stack of this size (None: alone, not written)
    seconds: float = 0.0
    run_dir: str = ""
    extra: dict = field(default_factory=dict)  # keys this version does not know (read back as they are)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        if d["stack_size"] is None:
            del d["stack_size"]
        return d | self.extra

    @classmethod
    def from_dict(cls, d: dict) -> RunResult:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in d.items() if k in names}, extra={k: v for k, v in d.items() if k not in names})

    def write(self, path: str) -> None:
        write_sealed_json(path, self.to_dict())

    @classmethod
    def read(cls, path: str) -> RunResult:
        """Checked (hgrlib.base.io.read_sealed_json: raises CorruptFile when damaged)."""
        return cls.from_dict(read_sealed_json(path))
