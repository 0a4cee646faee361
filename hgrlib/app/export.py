"""A trained run as one file: `hgrlib export RUN -o model.pt` writes it, `hgrlib.load_model(path)` reads it back.

The file (format_version 1) is a `torch.save`d dict of plain values only (tensors, str, int, float, bool,
None, lists and dicts), so `torch.load(weights_only=True)` reads it without running any pickled code:

    format            "hgrlib-model"
    format_version    1
    hgrlib_version    hgrlib.__version__ of the export
    code_version      digest of the training code the run was keyed with (hgrlib.experiment.runs.code_version)
    feature_code      digest of the feature-extraction code at export (hgrlib.data.features and what it imports)
    feature_libs      versions of the libraries that compute the features
    config            the run's Config.to_dict(); config["features"] is the FeatureConfig a clip must be
                      preprocessed with (hgrlib.app.predict always uses it), config["model"] the network's shape
    classes           class names, in class-index order
    norm              audio_mean, audio_std: (C, n_mels, 1) float32 tensors, the per-mel-band statistics of
                      the run's training segments (as hgrlib.core.train.Batcher computes them); faces_scale,
                      faces_mean, faces_std: faces enter as ((pixel / 255) - 0.5) / 0.25
    state_dict        the EmotionModel weights of the run's best validation epoch, float32, on the CPU
    run               run_dir, key (what the run was keyed by), test scores, features_sha256 and the largest
                      difference between the exported model's clip probabilities and the run's own
                      (features.npz), over every clip

Where the weights come from: a finished run folder holds weights.pt (its best epoch's weights, written by
hgrlib.core.train.finish_run, with their sha256 in result.json, checked here). The export is checked before it
is written: its predictions on every clip of the run's feature set must match the run's own clip
probabilities (features.npz) to within `TOLERANCE` (checked on the run's device type;
`CROSS_DEVICE_TOLERANCE` for a GPU run checked on a CPU), else nothing is written and the error says by
how much they differ.

A model that does not match: `load_model` refuses (ValueError naming the file) a file that is not an
hgrlib model, one of a newer format version, one whose weights or normalisation statistics do not fit its
own stored FeatureConfig and ModelConfig (e.g. deltas on but an audio network made for one channel, key
frames per segment other than the visual network's depth, statistics for another number of mel bands),
and, when the caller says which FeatureConfig it expects (`features=`), one whose FeatureConfig differs
(the fields are named). hgrlib.app.predict preprocesses every clip with the model's own FeatureConfig, so a
clip is never fed with another preprocessing.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hgrlib.base.io import atomic
from hgrlib.config import Config, FeatureConfig
from hgrlib.core.models import EmotionModel
from hgrlib.core.train import FACES_NORM, WEIGHTS_FILE, Batcher, branch_inputs, model_inputs, run_split
from hgrlib.data.cache import feature_code
from hgrlib.data.records import DataError

FORMAT = "hgrlib-model"
FORMAT_VERSION = 1
TOLERANCE = 1e-4  # largest |difference| of a clip probability between an export and its run's features.npz
# ... when the check cannot run on the device type the run was trained on (a GPU run checked on a CPU): cuDNN's
# TF32 convolutions alone move a probability by up to about 1e-3
CROSS_DEVICE_TOLERANCE = 5e-3


@dataclass
class LoadedModel:
    """A trained model ready to predict: the network (eval mode), its configs, class names and the
    normalisation its inputs get. `segment_probs` takes features as the cache stores them."""

    model: EmotionModel
    config: Config
    classes: tuple[str, ...]
    audio_mean: torch.Tensor  # (C, n_mels, 1)
    audio_std: torch.Tensor
    meta: dict  # the file's other fields: format_version, hgrlib_version, code_version, feature_code, run, ...
    path: str | None = None
    notes: list[str] = field(default_factory=list)  # what a user should know (e.g. feature code changed since)

    @property
    def features(self) -> FeatureConfig:
        return self.config.features

    @property
    def device(self) -> torch.device:
        return self.audio_mean.device

    def to(self, device: torch.device | str) -> LoadedModel:
        device = torch.device(device)
        self.model.to(device)
        self.audio_mean, self.audio_std = self.audio_mean.to(device), self.audio_std.to(device)
        return self

    def describe(self) -> str:
        """One line: what the model is and how its run scored."""
        c, run = self.config, self.meta.get("run", {})
        test = run.get("test", {})
        score = f"; its run's test acc {100 * test['acc']:.1f}%, UAR {100 * test['uar']:.1f}%" if "acc" in test else ""
        return (
            f"{c.model.modalities} model (lam={c.loss.lam}, {c.loss.corr}), {len(self.classes)} classes, "
            f"trained on {c.data.dataset} fold {c.train.fold} seed {c.train.seed}{score}"
        )

    @torch.no_grad()
    def segment_probs(self, audio: np.ndarray, faces: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, S, n_classes) float32 of clips' segments: audio (N, S, C, n_mels, L)
        (float16 dB, as extracted), faces (N, S, K, H, W, 3) uint8."""
        f = self.features
        want_a = (3 if f.deltas else 1, f.n_mels, f.segment_frames)
        want_v = (f.frames_per_segment, f.face_size, f.face_size, 3)
        if audio.shape[2:] != want_a or faces.shape[2:] != want_v or audio.shape[:2] != faces.shape[:2]:
            raise ValueError(
                f"features of shape audio {audio.shape[1:]}, faces {faces.shape[1:]} do not match the "
                f"model's FeatureConfig (audio (S, {', '.join(map(str, want_a))}), faces (S, {', '.join(map(str, want_v))}))"
            )
        n, s = audio.shape[:2]
        a_all = torch.from_numpy(np.ascontiguousarray(audio).reshape(n * s, *audio.shape[2:]))
        v_all = torch.from_numpy(np.ascontiguousarray(faces).reshape(n * s, *faces.shape[2:]))
        m = self.model.eval()
        out = []
        for k in range(0, n * s, batch_size):
            a, v = model_inputs(a_all[k : k + batch_size], v_all[k : k + batch_size], self.audio_mean, self.audio_std, self.device)
            logits = m(*branch_inputs(m, a, v))["logits"]
            out.append(logits.softmax(1).cpu())
        probs = torch.cat(out).numpy() if out else np.zeros((0, len(self.classes)), np.float32)
        return probs.reshape(n, s, len(self.classes))


# --------------------------------------------------------------------------- reading


def load_model(path: str | Path, device: torch.device | str = "cpu", features: FeatureConfig | None = None) -> LoadedModel:
    """The model `hgrlib export` wrote to `path`, on `device`; ValueError (naming the file) when it is not
    one, is of a newer format, does not fit its own configs, or (given `features`) was trained on other features."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: model file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a file (give the file `hgrlib export` wrote)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # not a zip, a pickle of other objects, truncated: all mean "not a model file"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: not an hgrlib model file ({type(e).__name__}: {first[:200]})") from e
    lm = from_payload(payload, str(path), features)
    return lm.to(device)


def from_payload(payload, where: str = "model", features: FeatureConfig | None = None) -> LoadedModel:
    """A LoadedModel from an export's dict (what the file holds), checked as `load_model` describes."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{where}: not an hgrlib model file (no '{FORMAT}' format tag; make one with `hgrlib export`)")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{where}: model file format version {version!r}; this hgrlib ({_version()}) reads versions "
            f"up to {FORMAT_VERSION}: update hgrlib, or export the run again with this one"
        )
    missing = [k for k in ("config", "classes", "norm", "state_dict") if k not in payload]
    if missing:
        raise ValueError(f"{where}: damaged model file (missing {', '.join(missing)})")
    try:
        cfg = Config.from_dict(payload["config"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: its config cannot be read ({e})") from e
    if features is not None and features != cfg.features:
        diff = [
            f"{f.name}={getattr(cfg.features, f.name)!r} (expected {getattr(features, f.name)!r})"
            for f in dataclasses.fields(FeatureConfig)
            if getattr(cfg.features, f.name) != getattr(features, f.name)
        ]
        raise ValueError(f"{where}: the model was trained on other features: {', '.join(diff)}")
    classes = tuple(payload["classes"])
    norm, state = payload["norm"], payload["state_dict"]
    f = cfg.features
    chans = 3 if f.deltas else 1
    problems = []
    for name in ("audio_mean", "audio_std"):
        t = norm.get(name)
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != (chans, f.n_mels, 1):
            problems.append(
                f"norm.{name} has shape {tuple(t.shape) if isinstance(t, torch.Tensor) else t!r}, "
                f"its FeatureConfig (deltas={f.deltas}, n_mels={f.n_mels}) needs {(chans, f.n_mels, 1)}"
            )
    if any(norm.get(k) != v for k, v in FACES_NORM.items()):
        problems.append(f"face normalisation { ({k: norm.get(k) for k in FACES_NORM}) } is not this hgrlib's {FACES_NORM}")
    checks = (
        ("audio.body.0.0.weight", 1, chans, f"deltas={f.deltas}: {chans} audio channel(s)"),
        ("visual.stem.0.weight", 2, f.frames_per_segment, f"frames_per_segment={f.frames_per_segment}"),
    )
    for key, dim, want, what in checks:
        t = state.get(key)
        if isinstance(t, torch.Tensor) and t.dim() > dim and t.shape[dim] != want:
            problems.append(f"{key} is made for {t.shape[dim]}, its FeatureConfig says {what}")
    model = EmotionModel(len(classes), chans, f.frames_per_segment, cfg.model)
    if not problems:
        try:
            model.load_state_dict(state, strict=True)
        except (RuntimeError, TypeError) as e:
            problems.append(" ".join(str(e).split())[:300])
    if problems:
        raise ValueError(f"{where}: its weights do not match its own configuration: {'; '.join(problems)}")
    meta = {k: v for k, v in payload.items() if k not in ("config", "classes", "norm", "state_dict")}
    lm = LoadedModel(model.eval(), cfg, classes, norm["audio_mean"].float(), norm["audio_std"].float(), meta, where)
    code_now = feature_code()
    if meta.get("feature_code") and meta["feature_code"] != code_now:
        lm.notes.append(
            f"the feature-extraction code differs from the one the model's features were made with "
            f"({meta['feature_code']} then, {code_now} now): a clip's features may differ a little from training's"
        )
    return lm


# --------------------------------------------------------------------------- writing


@dataclass
class ExportReport:
    path: str | None
    run_dir: str
    n_clips: int
    max_diff: float
    seconds: float
    describe: str
    size: int = 0

    def summary(self) -> str:
        same = "identical to" if self.max_diff == 0 else f"within {self.max_diff:.1g} of"
        where = f"wrote {self.path} ({self.size / 1e6:.1f} MB)" if self.path else "loaded"
        return (
            f"{where}: {self.describe}\n"
            f"  weights from the run folder's weights.pt; its clip probabilities on all {self.n_clips} clips are {same} the run's own "
            f"(features.npz); {self.seconds:.1f} s"
        )


def export_model(run: str | Path, out: str | Path | None = None, cache_dir: str | Path = "cache", fs=None) -> ExportReport:
    """Write run `run` (a runs/<hash> folder) as one model file `out` (default: model-<hash>.pt in the
    current folder); see the module's docstring. `fs`: the run's FeatureSet if already loaded, else read
    from `cache_dir`."""
    run = _run_folder(run)
    out = Path(out) if out else Path(f"model-{run.name}.pt")
    payload, report, _ = payload_from_run(run, cache_dir, fs)
    with atomic(out) as tmp:
        torch.save(payload, tmp)
    report.path, report.size = str(out), out.stat().st_size
    return report


def model_from_run(run: str | Path, cache_dir: str | Path = "cache", fs=None) -> tuple[LoadedModel, ExportReport]:
    """What `export_model` would write, in memory, as a LoadedModel (on the CPU), without a file."""
    _, report, lm = payload_from_run(_run_folder(run), cache_dir, fs)
    return lm.to("cpu"), report


def _run_folder(run: str | Path) -> Path:
    run = Path(run)
    if run.name == "result.json":
        run = run.parent
    if not run.is_dir():
        raise DataError(f"{run}: no such run folder (give runs/<hash>, a folder holding result.json)")
    return run


def payload_from_run(run: Path, cache_dir: str | Path = "cache", fs=None) -> tuple[dict, ExportReport, LoadedModel]:
    """The export's dict of a finished run, checked against the run's own predictions, a report, and the
    checked model (on the device the check ran on)."""
    from hgrlib.experiment.runs import read_result

    t0 = time.perf_counter()
    result = read_result(str(run))
    if result is None:
        raise ValueError(f"{run}: not a finished run (no valid result.json); train it first (hgrlib train)")
    cfg = Config.from_dict(result["config"])
    key = result.get("key") or {}
    if fs is None:
        from hgrlib.experiment.prepare import load_featureset

        fs = load_featureset(cfg.data, cfg.features, str(cache_dir))
    if key.get("data") and key["data"] != fs.fingerprint:
        raise ValueError(
            f"{run}: the features in {cache_dir} are not the ones this run trained on (data fingerprint "
            f"{fs.fingerprint}, the run's {key['data']}); give the feature cache it was trained from (--cache)"
        )
    state = _saved_weights(run)
    b = Batcher(fs, run_split(cfg, fs).train, torch.device("cpu"))  # the run's normalisation statistics
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "hgrlib_version": _version(),
        "code_version": key.get("code", ""),
        "feature_code": feature_code(),
        "feature_libs": _feature_libs(),
        "config": cfg.to_dict(),
        "classes": list(fs.classes),
        "norm": {"audio_mean": b.mean.float().contiguous(), "audio_std": b.std.float().contiguous(), **FACES_NORM},
        "state_dict": {k: v.detach().cpu().clone() for k, v in state.items()},
        "run": {
            "run_dir": str(run),
            "key": key,
            "test": result.get("test", {}),
            "features_sha256": result.get("features_sha256", ""),
        },
    }
    lm = from_payload(payload, str(run))
    on_gpu = str(key.get("exec", result.get("device", ""))).startswith("cuda")
    if on_gpu and torch.cuda.is_available():  # checked where the run computed its own predictions
        lm.to("cuda")
    max_diff, n = _check_against_run(lm, fs, run, TOLERANCE if on_gpu == (lm.device.type == "cuda") else CROSS_DEVICE_TOLERANCE)
    payload["run"]["max_diff"] = max_diff
    return payload, ExportReport(None, str(run), n, max_diff, time.perf_counter() - t0, lm.describe()), lm


def _saved_weights(run: Path) -> dict:
    """The run's best-epoch weights (<run>/weights.pt, checked against its result.json by read_result)."""
    return torch.load(run / WEIGHTS_FILE, map_location="cpu", weights_only=True)


def _check_against_run(lm: LoadedModel, fs, run: Path, tolerance: float = TOLERANCE) -> tuple[float, int]:
    """Largest |difference| between the model's clip probabilities and the run's features.npz, over every
    clip of `fs`; ValueError when above `tolerance` (the weights or the statistics are not the run's)."""
    with np.load(run / "features.npz", allow_pickle=False) as z:
        ids, saved = list(z["clip_ids"]), z["probs"]
    if ids != list(fs.clip_ids):
        raise ValueError(f"{run}: its features.npz lists other clips than the feature set ({len(ids)} vs {len(fs.clip_ids)})")
    probs = lm.segment_probs(fs.audio, fs.faces).mean(axis=1).astype(np.float32)
    diff = float(np.abs(probs - saved).max()) if len(saved) else 0.0
    if not diff <= tolerance:
        raise ValueError(
            f"{run}: the exported model does not reproduce the run's predictions (clip probabilities differ "
            f"by up to {diff:.3g} > {tolerance:g}); its weights are not the run's (training is not "
            f"reproducible here: other code, libraries or CPU?); nothing was written"
        )
    return diff, len(ids)


def _version() -> str:
    from hgrlib.version import __version__

    return __version__


def _feature_libs() -> dict:
    from hgrlib.base.provenance import FEATURE_LIBS, library_versions

    return dict(library_versions(FEATURE_LIBS))
