"""Networks: audio f(a), visual g(v), label embedding h(y), and the fusion classifier.

Shapes follow the authors' earlier design (Zhang et al. 2018): a 2D CNN on log-mel
segments, a 3D-then-2D CNN on short stacks of face crops. Sizes are small so the paper's
experiments run on a 2-core CPU; `ModelConfig.width` and `dim` scale them up.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hgrlib.config import ModelConfig


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """3×3 conv with stride 2, batch norm, ReLU: halves each spatial side.

    The weight is stored channels-last, so oneDNN runs this convolution, and the layers after it, in that
    layout: a training step is 1.2× faster on the CPU (benchmarks/README.md). The parameters and the
    state_dict are the same as in the default layout; only float rounding differs."""
    conv = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False).to(memory_format=torch.channels_last)
    return nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class AudioNet(nn.Module):
    """f: log-mel segment (B, C, n_mels, T) → feature (B, d)."""

    def __init__(self, in_ch: int, cfg: ModelConfig) -> None:
        super().__init__()
        w = cfg.width
        self.body = nn.Sequential(conv_block(in_ch, w), conv_block(w, 2 * w), conv_block(2 * w, 4 * w), conv_block(4 * w, 4 * w))
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(4 * w, cfg.dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x).mean(dim=(2, 3)))


class VisualNet(nn.Module):
    """g: face-crop stack (B, K, 3, H, W) → feature (B, d); the first conv spans all K frames (3D)."""

    def __init__(self, frames: int, cfg: ModelConfig) -> None:
        super().__init__()
        w = cfg.width
        self.stem = nn.Sequential(
            nn.Conv3d(3, w, (frames, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False), nn.BatchNorm3d(w), nn.ReLU(inplace=True)
        )
        self.body = nn.Sequential(conv_block(w, 2 * w), conv_block(2 * w, 4 * w), conv_block(4 * w, 4 * w))
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(4 * w, cfg.dim))

    def forward(self, v: Tensor) -> Tensor:
        x = self.stem(v.transpose(1, 2)).squeeze(2)  # (B, 3, K, H, W) → (B, w, H/2, W/2)
        return self.head(self.body(x).mean(dim=(2, 3)))


class LabelEmbedding(nn.Module):
    """h: one-hot emotion → feature (B, d), a single linear layer as in Xu's MCR code."""

    def __init__(self, n_classes: int, dim: int) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.linear = nn.Linear(n_classes, dim)

    def forward(self, y: Tensor) -> Tensor:
        return self.linear(F.one_hot(y, self.n_classes).float())


class EmotionModel(nn.Module):
    """Audio and/or visual branch, label embedding, fusion classifier on [f, g], per-modality heads."""

    def __init__(self, n_classes: int, audio_ch: int, frames: int, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.modalities not in ("av", "a", "v"):
            raise ValueError(f"ModelConfig.modalities must be 'av', 'a' or 'v', got {cfg.modalities!r}")
        self.modalities = cfg.modalities
        self.audio = AudioNet(audio_ch, cfg) if "a" in cfg.modalities else None
        self.visual = VisualNet(frames, cfg) if "v" in cfg.modalities else None
        self.label = LabelEmbedding(n_classes, cfg.dim)
        n_in = cfg.dim * len(cfg.modalities)
        self.fusion = nn.Sequential(nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(n_in, 2 * cfg.dim), nn.ReLU())
        self.classifier = nn.Linear(2 * cfg.dim, n_classes)
        self.head_a = nn.Linear(cfg.dim, n_classes) if self.audio is not None else None
        self.head_v = nn.Linear(cfg.dim, n_classes) if self.visual is not None else None

    def forward(self, audio: Tensor | None, faces: Tensor | None, y: Tensor | None = None) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        feats = []
        if self.audio is not None:
            out["f"] = self.audio(audio)
            out["logits_a"] = self.head_a(out["f"])
            feats.append(out["f"])
        if self.visual is not None:
            out["g"] = self.visual(faces)
            out["logits_v"] = self.head_v(out["g"])
            feats.append(out["g"])
        out["z"] = self.fusion(torch.cat(feats, dim=1))  # fused representation
        out["logits"] = self.classifier(out["z"])
        if y is not None:
            out["h"] = self.label(y)
        return out
