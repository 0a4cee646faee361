"""K EmotionModels as one network: grouped convolutions (members as `groups=K`) and batched matrix products.

Member k of a stack is exactly `EmotionModel` with the weights `member_state(stack, k)`: each parameter and
buffer of the stack is the members' tensors stacked on a leading K axis, under the same names. The forward
pass below follows hgrlib.models layer for layer; BatchNorm statistics stay per member (a grouped tensor's
channels are the members' channels side by side), and each member draws its dropout masks from its own
generator, the way the solo model draws them on the CPU (so a member's masks do not depend on the others).
Bigger operators are the point: the networks are small, so a solo step is bound by per-operator overhead.

Layouts: conv activations (B, K·C, H, W), member k's channels at [k·C, (k+1)·C); everything after the
pooling (K, B, C).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from hgrlib.models import EmotionModel

BN_MOMENTUM, BN_EPS = 0.1, 1e-5  # nn.BatchNorm's defaults, as hgrlib.models uses them


@dataclass
class Stack:
    """The members' parameters (leaves with gradients) and buffers, each (K, ...), named as in EmotionModel."""

    params: dict[str, Tensor]
    buffers: dict[str, Tensor]
    modalities: str
    dropout: float
    n_classes: int

    @property
    def k(self) -> int:
        return next(iter(self.params.values())).shape[0]


def stack_models(models: list[EmotionModel]) -> Stack:
    """One Stack from K EmotionModels of the same shape (their weights copied)."""
    first = models[0]
    names = dict(first.named_parameters())
    states = [m.state_dict() for m in models]
    params = {n: torch.stack([s[n] for s in states]).detach().clone().requires_grad_() for n in names}
    buffers = {n: torch.stack([s[n] for s in states]).clone() for n in states[0] if n not in names}
    drop = next(m.p for m in first.modules() if isinstance(m, torch.nn.Dropout))
    return Stack(params, buffers, first.modalities, drop, first.label.n_classes)


def member_state(stack: Stack, k: int) -> dict[str, Tensor]:
    """Member k's state_dict, for EmotionModel.load_state_dict (copies, on the CPU)."""
    return {n: t[k].detach().cpu().clone() for n, t in (stack.params | stack.buffers).items()}


def stack_inputs(audio: list[Tensor], faces: list[Tensor], labels: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """Members' batches (B, C, M, L), (B, F, 3, H, W), (B,) → (B, K·C, M, L), (B, K·3, F, H, W), (K, B)."""
    a = torch.cat(audio, dim=1)
    v = torch.stack(faces, dim=1).transpose(2, 3)  # (B, K, 3, F, H, W)
    return a, v.flatten(1, 2), torch.stack(labels)


def _conv_bn_relu(x: Tensor, s: Stack, name: str, k: int, training: bool, stride, padding) -> Tensor:
    """hgrlib.models.conv_block (or the visual stem), per member: conv → batch norm → ReLU."""
    w = s.params[f"{name}.0.weight"]  # (K, C_out, C_in, *kernel)
    conv = F.conv2d if w.dim() == 5 else F.conv3d
    x = conv(x, w.flatten(0, 1), stride=stride, padding=padding, groups=k)
    x = F.batch_norm(
        x,
        s.buffers[f"{name}.1.running_mean"].view(-1),
        s.buffers[f"{name}.1.running_var"].view(-1),
        s.params[f"{name}.1.weight"].flatten(),
        s.params[f"{name}.1.bias"].flatten(),
        training,
        BN_MOMENTUM,
        BN_EPS,
    )
    return F.relu(x)


def _linear(x: Tensor, s: Stack, name: str) -> Tensor:
    """nn.Linear per member: (K, B, in) → (K, B, out)."""
    return torch.baddbmm(s.params[f"{name}.bias"].unsqueeze(1), x, s.params[f"{name}.weight"].transpose(1, 2))


def _dropout(x: Tensor, p: float, gens: list[torch.Generator] | None) -> Tensor:
    """Dropout with member k's mask from gens[k], drawn as F.dropout draws it on the CPU (bernoulli_, then /(1-p))."""
    if gens is None or p == 0:
        return x
    noise = torch.stack([torch.empty(x.shape[1:], device=x.device).bernoulli_(1 - p, generator=g) for g in gens])
    return x * noise.div_(1 - p)


def _pooled(x: Tensor, k: int) -> Tensor:
    """(B, K·C, H, W) → spatial mean per channel, (K, B, C)."""
    return x.mean(dim=(2, 3)).unflatten(1, (k, -1)).transpose(0, 1)


def stacked_forward(
    s: Stack, audio: Tensor | None, faces: Tensor | None, y: Tensor | None = None, gens: list[torch.Generator] | None = None
) -> dict[str, Tensor]:
    """EmotionModel.forward for every member at once; `gens` given: training mode (batch statistics, running
    averages updated, dropout), else evaluation. Inputs as stack_inputs makes them; outputs (K, B, ·)."""
    k, train = s.k, gens is not None
    out: dict[str, Tensor] = {}
    feats = []
    if "a" in s.modalities:
        x = audio
        for i in range(4):
            x = _conv_bn_relu(x, s, f"audio.body.{i}", k, train, 2, 1)
        out["f"] = _linear(_dropout(_pooled(x, k), s.dropout, gens), s, "audio.head.1")
        out["logits_a"] = _linear(out["f"], s, "head_a")
        feats.append(out["f"])
    if "v" in s.modalities:
        x = _conv_bn_relu(faces, s, "visual.stem", k, train, (1, 2, 2), (0, 1, 1)).squeeze(2)
        for i in range(3):
            x = _conv_bn_relu(x, s, f"visual.body.{i}", k, train, 2, 1)
        out["g"] = _linear(_dropout(_pooled(x, k), s.dropout, gens), s, "visual.head.1")
        out["logits_v"] = _linear(out["g"], s, "head_v")
        feats.append(out["g"])
    z = _dropout(F.relu(torch.cat(feats, dim=2)), s.dropout, gens)
    out["z"] = F.relu(_linear(z, s, "fusion.2"))
    out["logits"] = _linear(out["z"], s, "classifier")
    if y is not None:
        out["h"] = _linear(F.one_hot(y, s.n_classes).float(), s, "label.linear")
    return out
