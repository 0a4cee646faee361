"""A deterministic synthetic audio-visual emotion corpus, written as real files in RAVDESS's layout.

Design:
  * Six classes (EMOTIONS6). Files are named exactly like RAVDESS,
    ``root/Actor_XX/MM-01-EE-II-SS-RR-XX.{mp4,wav}`` with MM = 01 (audio-visual .mp4: H.264 + AAC)
    and 03 (audio-only .wav, the same waveform); EE uses RAVDESS's emotion codes, II intensity,
    SS statement, RR repetition, XX actor (odd = male, lower F0, as in RAVDESS).
  * Each clip's factors (expression strengths, ambiguity, nuisances) are sampled from a seed derived
    from (cfg.seed, actor, file name); the rendering noise from another stream of the same seed. So
    any clip regenerates byte for byte on its own, whatever the order or number of workers (the
    encoder is pinned in `write_video`). ``corpus.json`` records the sha256 of every clip file, and
    every `generate_corpus` call checks them and regenerates what is missing or differs.
  * Subjects carry voice traits (F0, formant scale, rate, breathiness) and face traits (face size,
    skin tone, eye spacing, brow thickness, mouth width): identity is a nuisance, and
    subject-independent splits mean something.
  * Audio: source-filter speech: a glottal pulse train on an F0 contour, a syllable envelope (one
    fixed pattern per statement), vowel formants by biquad resonators, consonant noise bursts,
    breath noise, spectral tilt, background noise at ``audio_snr_db`` and a random recording gain.
    Emotion moves prosody (F0 level/range/slope, rate, energy, jitter, tilt, breath). The profiles
    make anger~happiness (high arousal) and sadness~disgust (low arousal) confusable in audio.
  * Video: a shaded face drawn with OpenCV (hair, skin ellipse, eye sockets, eyes, brows, nose
    bridge highlight, nostrils, mouth) under head-pose, lighting and pixel noise. Emotion moves
    brows (height, tilt), eye openness, mouth curvature/opening/width; the mouth also opens with the
    audio's syllable envelope. The profiles make fear~surprise and anger~disgust confusable in
    video, i.e. different pairs than in audio, so fusion has something to gain.
  * Ambiguity: in ``ambiguous_frac`` of the clips one modality (chosen at random) gets a strength
    near 0; every clip also gets a random strength. All of it is written to ``factors.csv``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
from scipy.signal import lfilter

from hgrlib.base.io import write_text
from hgrlib.base.provenance import file_sha256
from hgrlib.data.media import write_video, write_wav
from hgrlib.data.records import EMOTIONS6, DataError

GENERATOR_VERSION = 2  # 2: deterministic video encoding; corpus.json records every file's sha256
RAVDESS_CODE = {"happiness": 3, "sadness": 4, "anger": 5, "fear": 6, "disgust": 7, "surprise": 8}

# Audio prosody per emotion, at full strength, relative to neutral:
# F0 shift (semitones), F0 range (+ = wider), rate (+ = faster), energy (dB), jitter, tilt (+ = brighter),
# breath (noise share), F0 slope over the utterance (semitones).
AUDIO_PROFILE = {
    "anger": dict(f0=3.0, rng=0.6, rate=0.20, energy=7.0, jitter=0.3, tilt=1.0, breath=0.0, slope=-1.0),
    "happiness": dict(f0=4.0, rng=0.7, rate=0.15, energy=5.5, jitter=0.2, tilt=0.7, breath=0.1, slope=0.0),
    "sadness": dict(f0=-2.0, rng=-0.5, rate=-0.20, energy=-6.0, jitter=0.4, tilt=-1.0, breath=0.5, slope=-1.5),
    "disgust": dict(f0=-1.5, rng=-0.4, rate=-0.15, energy=-4.0, jitter=0.5, tilt=-0.7, breath=0.3, slope=-0.5),
    "fear": dict(f0=6.0, rng=-0.2, rate=0.30, energy=0.0, jitter=1.0, tilt=0.0, breath=0.6, slope=0.5),
    "surprise": dict(f0=5.0, rng=1.0, rate=0.00, energy=2.0, jitter=0.2, tilt=0.4, breath=0.2, slope=4.0),
}
# Face expression per emotion, at full strength: brow height (+ up), brow tilt (+ inner end up),
# eye openness, mouth curvature (+ smile), mouth opening, mouth width.
VISUAL_PROFILE = {
    "anger": dict(brow=-1.0, tilt=-1.0, eye=-0.5, curve=-0.3, open=0.05, width=-0.2),
    "disgust": dict(brow=-0.8, tilt=-0.7, eye=-0.6, curve=-0.6, open=0.15, width=-0.05),
    "fear": dict(brow=0.8, tilt=0.8, eye=0.9, curve=-0.3, open=0.6, width=0.3),
    "surprise": dict(brow=1.0, tilt=0.2, eye=1.0, curve=0.0, open=0.9, width=-0.2),
    "happiness": dict(brow=0.1, tilt=0.0, eye=-0.2, curve=1.0, open=0.3, width=0.6),
    "sadness": dict(brow=0.1, tilt=1.0, eye=-0.4, curve=-1.0, open=0.0, width=-0.3),
}
# The two statements: syllables as (relative duration, stress, vowel index into VOWELS).
STATEMENTS = {
    1: [(1.0, 0.9, 1), (0.6, 0.5, 0), (1.0, 1.0, 0), (0.8, 0.6, 2), (0.7, 0.5, 1), (0.5, 0.4, 2), (1.3, 0.9, 3)],
    2: [(1.1, 1.0, 3), (0.6, 0.5, 0), (1.0, 0.9, 1), (0.8, 0.6, 1), (0.7, 0.5, 1), (0.5, 0.4, 2), (1.3, 0.9, 3)],
}
VOWELS = [(730, 1090, 2440), (270, 2290, 3010), (530, 1840, 2480), (570, 840, 2410)]  # a, i, e, o (Hz)


@dataclass(frozen=True)
class SyntheticConfig:
    """What the corpus is; its JSON is stored in root/corpus.json and must match on resume."""

    n_subjects: int = 24
    clips_per_emotion: int = 4  # 1..8: (intensity, statement, repetition) combinations
    seed: int = 0
    duration: float = 2.2  # seconds
    sr: int = 16000
    fps: int = 25
    height: int = 120
    width: int = 160
    audio_snr_db: float = 12.0  # background noise, relative to the clip's speech power
    audio_factor_noise: float = 0.6  # per-clip prosody noise, in units of a typical emotion effect
    video_noise: float = 8.0  # pixel noise std (0..255 scale)
    visual_factor_noise: float = 0.35  # per-clip expression noise, in units of a full expression
    ambiguous_frac: float = 0.2  # share of clips where one modality is near-neutral
    strength_range: tuple[float, float] = (0.45, 1.0)  # per-clip expression strength (x1.3 for intensity 02)


def clip_names(cfg: SyntheticConfig) -> list[tuple[int, str]]:
    """All (actor, AV file stem) of the corpus, in a fixed order."""
    if not 1 <= cfg.clips_per_emotion <= 8:
        raise ValueError("clips_per_emotion must be in 1..8")
    combos = [(i, s, r) for i in (1, 2) for s in (1, 2) for r in (1, 2)]
    combos = combos[::2] + combos[1::2]  # 4 clips: both intensities and statements, repetition 01
    out = []
    for actor in range(1, cfg.n_subjects + 1):
        for emo in EMOTIONS6:
            for i, s, r in combos[: cfg.clips_per_emotion]:
                out.append((actor, f"01-01-{RAVDESS_CODE[emo]:02d}-{i:02d}-{s:02d}-{r:02d}-{actor:02d}"))
    return out


def _rng(*key) -> np.random.Generator:
    h = hashlib.sha256("/".join(map(str, key)).encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "little"))


def subject_traits(cfg: SyntheticConfig, actor: int) -> dict:
    """Voice and face traits of one actor (odd = male)."""
    r = _rng(cfg.seed, "subject", actor)
    male = actor % 2 == 1
    return dict(
        f0_base=float(r.uniform(95, 140) if male else r.uniform(175, 240)),
        formant_scale=float(r.uniform(0.9, 1.02) if male else r.uniform(1.05, 1.18)),
        rate=float(r.uniform(0.85, 1.15)),
        breath=float(r.uniform(0.0, 0.3)),
        face_w=float(r.uniform(0.9, 1.1)),
        face_h=float(r.uniform(0.92, 1.08)),
        skin=float(r.uniform(0.0, 1.0)),
        eye_spacing=float(r.uniform(0.9, 1.1)),
        brow_thick=float(r.uniform(0.8, 1.3)),
        mouth_w=float(r.uniform(0.85, 1.15)),
    )


def clip_factors(cfg: SyntheticConfig, actor: int, name: str) -> dict:
    """All generating factors of one clip (emotion, strengths, ambiguity, nuisances)."""
    r = _rng(cfg.seed, actor, name)
    code = name.split("-")
    emo = {v: k for k, v in RAVDESS_CODE.items()}[int(code[2])]
    intensity = int(code[3])
    boost = 1.3 if intensity == 2 else 1.0
    a_str, v_str = (float(r.uniform(*cfg.strength_range)) * boost for _ in range(2))
    amb = "none"
    if r.random() < cfg.ambiguous_frac:
        amb = "audio" if r.random() < 0.5 else "visual"
        if amb == "audio":
            a_str = float(r.uniform(0.0, 0.15))
        else:
            v_str = float(r.uniform(0.0, 0.15))
    f = dict(
        file=name,
        actor=actor,
        emotion=emo,
        intensity=intensity,
        statement=int(code[4]),
        repetition=int(code[5]),
        audio_strength=round(a_str, 4),
        visual_strength=round(v_str, 4),
        ambiguous=amb,
    )
    f.update(subject_traits(cfg, actor))
    f.update(  # per-clip nuisances
        gain_db=float(r.uniform(-5, 5)),
        rate_jitter=float(r.uniform(0.92, 1.08)),
        onset=float(r.uniform(0.15, 0.4)),
        yaw=float(r.uniform(-0.12, 0.12)),
        pitch=float(r.uniform(-0.08, 0.08)),
        roll=float(r.uniform(-6, 6)),
        light=float(r.uniform(0.8, 1.15)),
        light_dir=float(r.uniform(-1, 1)),
        bg=float(r.uniform(0, 1)),
    )
    an = r.normal(0, cfg.audio_factor_noise, 8)
    vn = r.normal(0, cfg.visual_factor_noise, 6)
    for k, (key, scale) in enumerate(dict(f0=2.0, rng=0.3, rate=0.1, energy=3.0, jitter=0.3, tilt=0.5, breath=0.2, slope=1.5).items()):
        f[f"a_{key}"] = float(AUDIO_PROFILE[emo][key] * a_str + an[k] * scale)
    for k, key in enumerate(VISUAL_PROFILE[emo]):
        f[f"v_{key}"] = float(VISUAL_PROFILE[emo][key] * v_str + vn[k])
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in f.items()}


def _biquad_resonator(fc: float, bw: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.exp(-np.pi * bw / sr)
    th = 2 * np.pi * fc / sr
    return np.array([1 - r]), np.array([1, -2 * r * np.cos(th), r * r])


def synth_audio(cfg: SyntheticConfig, f: dict, r: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Waveform (n,) float32 and its syllable envelope (n,) in [0, 1]."""
    sr, n = cfg.sr, int(round(cfg.duration * cfg.sr))
    t = np.arange(n) / sr
    rate = f["rate"] * f["rate_jitter"] * max(0.5, 1.0 + f["a_rate"])
    syl = STATEMENTS[f["statement"]]
    dur = np.array([d for d, _, _ in syl]) * 0.2 / rate
    starts = f["onset"] + np.concatenate([[0], np.cumsum(dur)[:-1]])
    env = np.zeros(n)
    vowel_w = np.zeros((len(VOWELS), n))
    for (d, stress, v), s0, dd in zip(syl, starts, dur):
        m = (t >= s0) & (t < s0 + dd)
        ph = (t[m] - s0) / dd
        shape = np.sin(np.pi * ph) ** 0.7
        env[m] = np.maximum(env[m], stress * shape)
        vowel_w[v, m] += shape
    speaking = env > 0.02
    # F0 contour: base * emotion shift, declination/slope, syllable accents scaled by range, jitter
    span = (t - f["onset"]) / max(1e-3, dur.sum())
    semis = f["a_f0"] + f["a_slope"] * np.clip(span, 0, 1) + 2.5 * max(0.2, 1 + f["a_rng"]) * (env - 0.5)
    jit = lfilter([0.05], [1, -0.95], r.normal(0, 1, n)) * (0.3 + max(0.0, f["a_jitter"])) * 1.2
    f0 = f["f0_base"] * 2 ** ((semis + jit) / 12)
    phase = np.cumsum(f0 / sr) % 1.0
    flow = np.where(phase < 0.6, 0.5 * (1 - np.cos(np.pi * phase / 0.6)), np.cos(np.pi * (phase - 0.6) / 0.8))
    src = np.diff(flow, prepend=flow[0]) * 20
    tilt = np.clip(0.55 - 0.25 * f["a_tilt"], 0.05, 0.95)  # one-pole low-pass: more = darker
    src = lfilter([1 - tilt], [1, -tilt], src)
    breath = np.clip(f["breath"] + f["a_breath"], 0, 1)
    src = src * (1 - 0.6 * breath) + r.normal(0, 0.25 + 0.6 * breath, n) * 0.5
    voiced = np.zeros(n)
    vw = vowel_w / np.maximum(vowel_w.sum(0), 1e-6)
    for k, formants in enumerate(VOWELS):
        if not vw[k].any():
            continue
        y = src
        for fc, bw in zip(formants, (80, 100, 140)):
            b, a = _biquad_resonator(fc * f["formant_scale"], bw, sr)
            y = lfilter(b, a, y)
        voiced += y * vw[k]
    # consonant bursts at syllable onsets (high-passed noise)
    cons = np.zeros(n)
    for s0 in starts:
        m = (t >= s0 - 0.03) & (t < s0 + 0.02)
        cons[m] = r.normal(0, 1, m.sum()) * np.hanning(m.sum())
    cons = lfilter([1, -0.95], [1], cons)
    sig = voiced * env * speaking + 0.15 * cons
    sig /= np.sqrt(np.mean(sig[speaking] ** 2)) + 1e-9
    sig *= 10 ** ((f["a_energy"] + f["gain_db"] - 20) / 20)
    p = np.mean(sig[speaking] ** 2)
    noise = lfilter([1], [1, -0.7], r.normal(0, 1, n))
    noise *= np.sqrt(p / 10 ** (cfg.audio_snr_db / 10) / np.mean(noise**2))
    x = np.clip(sig + noise, -0.99, 0.99)
    return x.astype(np.float32), env


def _skin_rgb(tone: float) -> np.ndarray:
    light, dark = np.array([235, 195, 170]), np.array([150, 102, 76])
    return light * (1 - tone) + dark * tone


def render_frames(cfg: SyntheticConfig, f: dict, env: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """uint8 RGB frames (T, H, W, 3) of a talking face showing the clip's expression."""
    H, W, T = cfg.height, cfg.width, int(round(cfg.duration * cfg.fps))
    S = 4  # drawing sub-pixel bits: coordinates are scaled by 2**S for cv2's shift argument
    sc = 1 << S
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    light = (f["light"] * (1 + 0.18 * f["light_dir"] * (xx - W / 2) / (W / 2)))[..., None]
    bg = np.array([90, 100, 110]) * (0.6 + 0.8 * f["bg"])
    skin = _skin_rgb(f["skin"])
    hair = np.array([40, 30, 25]) * (1.0 - 0.4 * f["skin"])
    frames = np.empty((T, H, W, 3), np.uint8)
    hop = cfg.sr / cfg.fps
    drift = np.cumsum(r.normal(0, 0.3, (T, 4)), axis=0) * np.array([0.6, 0.6, 0.004, 0.5])  # dx, dy, ds, droll
    for i in range(T):
        e = env[int(i * hop) : int((i + 1) * hop)].mean() if int(i * hop) < len(env) else 0.0
        img = np.empty((H, W, 3), np.float32)
        img[:] = bg
        s = 1.0 + drift[i, 2]
        a, b = 31 * f["face_w"] * s, 41 * f["face_h"] * s  # half axes (px)
        cx, cy = W / 2 + drift[i, 0] + f["yaw"] * 20, H / 2 + 3 + drift[i, 1] + f["pitch"] * 15
        ang = np.deg2rad(f["roll"] + drift[i, 3])
        ca, sa = np.cos(ang), np.sin(ang)
        du, dv = f["yaw"] * 0.5, f["pitch"] * 0.5  # features shift with yaw/pitch

        def P(u, v):  # face coordinates (units of a, b; v down) -> fixed-point pixel coordinates
            x, y = (u + du) * a, (v + dv) * b
            return (int((cx + ca * x - sa * y) * sc), int((cy + sa * x + ca * y) * sc))

        def ell(u, v, ru, rv, col, extra=0.0):
            cv2.ellipse(
                img, P(u, v), (int(ru * a * sc), int(max(rv * b, 0.3) * sc)), np.rad2deg(ang) + extra, 0, 360, col, -1, cv2.LINE_AA, S
            )

        deg = np.rad2deg(ang)
        cv2.ellipse(
            img, (int(cx * sc), int((cy - 0.12 * b) * sc)), (int(a * 1.12 * sc), int(b * 1.0 * sc)), deg, 0, 360, hair, -1, cv2.LINE_AA, S
        )
        cv2.ellipse(img, (int(cx * sc), int(cy * sc)), (int(a * sc), int(b * sc)), deg, 0, 360, skin, -1, cv2.LINE_AA, S)
        cv2.ellipse(
            img,
            (int(cx * sc), int((cy - 0.75 * b) * sc)),
            (int(a * 1.02 * sc), int(0.42 * b * sc)),
            deg,
            180,
            360,
            hair,
            -1,
            cv2.LINE_AA,
            S,
        )  # fringe
        eo = float(np.clip(1 + 0.45 * f["v_eye"], 0.3, 1.9))
        sp = 0.38 * f["eye_spacing"]
        for side in (-1, 1):
            ell(side * sp, -0.13, 0.27, 0.13, skin * 0.58)  # eye socket shadow
            ell(side * sp, -0.12, 0.17, 0.055 * eo, (235, 235, 230))
            ell(side * sp, -0.12, 0.075, min(0.055 * eo, 0.07), (40, 30, 25))
            bh = -0.3 - 0.07 * f["v_brow"]
            tl = 0.05 * f["v_tilt"]
            cv2.line(
                img, P(side * 0.12, bh - tl), P(side * 0.6, bh + 0.03), hair * 0.8, max(1, int(3.5 * f["brow_thick"] * s)), cv2.LINE_AA, S
            )
        cv2.line(img, P(0, -0.15), P(0, 0.12), skin * 1.12, max(1, int(5 * s)), cv2.LINE_AA, S)  # bridge
        for side in (-1, 1):
            ell(side * 0.1, 0.18, 0.07, 0.035, skin * 0.55)  # nostrils
        mw = 0.34 * f["mouth_w"] * (1 + 0.25 * f["v_width"])
        mo = float(np.clip(0.02 + 0.06 * f["v_open"] + 0.1 * e, 0.0, 0.2))
        cu = 0.07 * f["v_curve"]
        my = 0.5
        lip = (150, 60, 60)
        upper = [P(u, my - cu * (u / mw) ** 2 - mo * 0.35 * (1 - (u / mw) ** 2)) for u in np.linspace(-mw, mw, 9)]
        lower = [P(u, my - cu * (u / mw) ** 2 + mo * (1 - (u / mw) ** 2)) for u in np.linspace(mw, -mw, 9)]
        cv2.fillPoly(img, [np.array(upper + lower, np.int32)], (60, 20, 25), cv2.LINE_AA, S)
        cv2.polylines(img, [np.array(upper, np.int32), np.array(lower, np.int32)], False, lip, max(1, int(2 * s)), cv2.LINE_AA, S)
        img = cv2.GaussianBlur(img, (3, 3), 0.8)
        flick = 1 + 0.03 * r.normal()
        img = img * light * flick + r.normal(0, cfg.video_noise, (H, W, 1)).astype(np.float32)
        frames[i] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def render_clip(cfg: SyntheticConfig, f: dict) -> tuple[np.ndarray, np.ndarray]:
    """(frames uint8 (T,H,W,3), audio float32 (n,)) of the clip described by factors `f`."""
    r = _rng(cfg.seed, f["actor"], f["file"], "render")
    audio, env = synth_audio(cfg, f, r)
    return render_frames(cfg, f, env, r), audio


def _clip_files(f: dict) -> dict[str, str]:
    """Suffix -> path relative to the corpus root (posix) of one clip's two files."""
    folder = f"Actor_{f['actor']:02d}"
    return {".mp4": f"{folder}/{f['file']}.mp4", ".wav": f"{folder}/03{f['file'][2:]}.wav"}


def _write_clip(args: tuple[SyntheticConfig, str, dict, tuple[str, ...]]) -> dict[str, str]:
    """Render one clip, write the files of suffixes `exts`; their {relative path: sha256}."""
    cfg, root, f, exts = args
    cv2.setNumThreads(1)
    frames, audio = render_clip(cfg, f)
    rel = _clip_files(f)
    if ".wav" in exts:
        write_wav(Path(root) / rel[".wav"], audio, cfg.sr)
    if ".mp4" in exts:
        write_video(Path(root) / rel[".mp4"], frames, cfg.fps, audio=audio, sr=cfg.sr)
    return {rel[e]: file_sha256(Path(root) / rel[e]) for e in exts}


@dataclass
class CorpusReport:
    """What one `generate_corpus` call found and did; counts are of clip files (.mp4 and .wav)."""

    root: Path
    clips: int
    verified: int = 0  # files whose sha256 matched corpus.json
    generated: int = 0  # files written by this call
    # (path, reason) of the files corpus.json records that were missing or changed, and were regenerated
    regenerated: list[tuple[str, str]] = field(default_factory=list)
    upgraded_from: int | None = None  # generator version of a corpus regenerated in place

    def summary(self) -> str:
        lines = [f"synthetic corpus {self.root}: {self.clips} clips, {self.verified} files verified by sha256, {self.generated} generated"]
        if self.upgraded_from is not None:
            lines.append(
                f"  made by generator version {self.upgraded_from}: every clip regenerated in place with version {GENERATOR_VERSION}"
            )
        lines += [f"  {p}: {r}" for p, r in self.regenerated[:10]]
        if len(self.regenerated) > 10:
            lines.append(f"  ... and {len(self.regenerated) - 10} more files regenerated")
        return "\n".join(lines)


def generate_corpus(root: str | Path, cfg: SyntheticConfig = SyntheticConfig(), workers: int = 2, progress: bool = True) -> CorpusReport:
    """Write, complete or repair the corpus under `root`, checking every clip file against corpus.json.

    corpus.json records the config and the sha256 of every clip file written. A file missing, not
    recorded, or whose sha256 differs is (re)generated; a corpus of an older generator version is
    regenerated in place; one of another config is a DataError.
    """
    from hgrlib.base.progress import bar as progress_bar

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    meta = {"generator": "hgrlib.data.synthetic", "version": GENERATOR_VERSION, "config": asdict(cfg)}
    meta = json.loads(json.dumps(meta))  # tuples -> lists, as read back
    cj = root / "corpus.json"
    old = json.loads(cj.read_text()) if cj.exists() else meta
    if {k: old.get(k) for k in ("generator", "config")} != {k: meta[k] for k in ("generator", "config")}:
        raise DataError(f"{root}: holds a synthetic corpus made with a different config ({cj}); pick another folder or delete this one")
    if old["version"] > GENERATOR_VERSION:
        raise DataError(
            f"{root}: holds a corpus of generator version {old['version']}, newer than this "
            f"hgrlib's ({GENERATOR_VERSION}); update hgrlib or pick another folder"
        )
    facs = [clip_factors(cfg, actor, name) for actor, name in clip_names(cfg)]
    report = CorpusReport(root, len(facs))
    if old["version"] < GENERATOR_VERSION:
        report.upgraded_from = old["version"]
    recorded = old.get("files", {}) if report.upgraded_from is None else {}
    files, jobs = {}, []
    for f in facs:
        exts = []
        for ext, rel in _clip_files(f).items():
            if rel in recorded and (root / rel).exists() and file_sha256(root / rel) == recorded[rel]:
                files[rel] = recorded[rel]
                report.verified += 1
                continue
            if rel in recorded:
                why = f"differs from what seed {cfg.seed} makes" if (root / rel).exists() else "missing"
                report.regenerated.append((rel, why + "; regenerated"))
            exts.append(ext)
        if exts:
            jobs.append((cfg, str(root), f, tuple(exts)))

    def save() -> None:
        text = json.dumps(dict(meta, files=dict(sorted(files.items()))), indent=2)
        if not cj.exists() or cj.read_text() != text:
            write_text(cj, text)

    save()  # records the config (and the version) before any clip is written
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(facs[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(facs)
    write_text(root / "factors.csv", buf.getvalue())
    if report.upgraded_from is not None and progress:
        print(f"{root}: corpus of generator version {report.upgraded_from}; regenerating every clip in place")
    bar = progress_bar(total=len(facs), initial=len(facs) - len(jobs), desc="synthetic corpus", unit="clip", disable=not progress)
    parallel = workers > 1 and len(jobs) > 1  # spawn, not fork: fork is unsafe after torch/OpenMP start
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if parallel else nullcontext() as ex:
        for k, written in enumerate(ex.map(_write_clip, jobs, chunksize=4) if parallel else map(_write_clip, jobs)):
            files.update(written)
            report.generated += len(written)
            bar.update()
            if k % 32 == 31:  # an interrupted run keeps the record of what it finished
                save()
    bar.close()
    save()
    return report
