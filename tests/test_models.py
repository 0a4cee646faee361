"""hgrlib.core.models: what EmotionModel returns for each modality set, its sizes, and that the fused
representation z really combines both branches."""

from __future__ import annotations

import pytest
import torch

from hgrlib.config import ModelConfig
from hgrlib.core.models import EmotionModel

B, C_AUDIO, MELS, T, K, H, N_CLASSES, DIM = 4, 1, 32, 24, 3, 32, 6, 8


def _model(modalities: str) -> EmotionModel:
    torch.manual_seed(0)
    return EmotionModel(N_CLASSES, C_AUDIO, K, ModelConfig(dim=DIM, width=4, dropout=0.0, modalities=modalities)).eval()


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(B, C_AUDIO, MELS, T, generator=g),
        torch.randn(B, K, 3, H, H, generator=g),
        torch.randint(0, N_CLASSES, (B,), generator=g),
    )


@pytest.mark.parametrize(
    "modalities, keys",
    [
        ("a", {"f", "logits_a", "z", "logits", "h"}),
        ("v", {"g", "logits_v", "z", "logits", "h"}),
        ("av", {"f", "logits_a", "g", "logits_v", "z", "logits", "h"}),
    ],
)
def test_outputs_and_shapes_per_modality(modalities, keys):
    m = _model(modalities)
    audio, faces, y = _inputs()
    with torch.no_grad():
        out = m(audio if "a" in modalities else None, faces if "v" in modalities else None, y)
    assert set(out) == keys
    for k in ("f", "g", "h"):
        if k in out:
            assert out[k].shape == (B, DIM), k
    assert out["z"].shape == (B, 2 * DIM)
    for k in ("logits", "logits_a", "logits_v"):
        if k in out:
            assert out[k].shape == (B, N_CLASSES), k
    assert m.fusion[2].in_features == DIM * len(modalities)  # the classifier sees [f, g] for fusion, one branch alone
    assert (m.audio is None) == ("a" not in modalities) and (m.visual is None) == ("v" not in modalities)
    with torch.no_grad():
        assert "h" not in m(audio if "a" in modalities else None, faces if "v" in modalities else None)  # no label: no h(y)


def test_the_fused_z_depends_on_both_branches_and_each_head_on_its_own():
    m = _model("av")
    audio, faces, y = _inputs()
    audio2, faces2, _ = _inputs(seed=1)
    with torch.no_grad():
        base, new_a, new_v = m(audio, faces, y), m(audio2, faces, y), m(audio, faces2, y)
    assert not torch.allclose(base["z"], new_a["z"]) and not torch.allclose(base["z"], new_v["z"])
    assert not torch.allclose(base["logits"], new_a["logits"]) and not torch.allclose(base["logits"], new_v["logits"])
    torch.testing.assert_close(base["g"], new_a["g"])  # g(v) ignores the audio, f(a) the faces
    torch.testing.assert_close(base["logits_v"], new_a["logits_v"])
    torch.testing.assert_close(base["f"], new_v["f"])
    torch.testing.assert_close(base["logits_a"], new_v["logits_a"])
    torch.testing.assert_close(base["h"], new_a["h"])  # h(y) depends on the label alone


def test_each_sample_is_computed_on_its_own_in_eval_mode():
    """Batch norm in eval mode and no mixing across rows: a sample's outputs do not depend on its batch."""
    m = _model("av")
    audio, faces, y = _inputs()
    with torch.no_grad():
        full, one = m(audio, faces, y), m(audio[:1], faces[:1], y[:1])
    for k in full:
        torch.testing.assert_close(full[k][:1], one[k], rtol=1e-4, atol=1e-5)


def test_the_label_embedding_is_linear_in_the_one_hot_label():
    m = _model("av")
    y = torch.arange(N_CLASSES)
    with torch.no_grad():
        h = m.label(y)
    torch.testing.assert_close(h, m.label.linear.weight.T + m.label.linear.bias)


def test_unknown_modalities_are_refused():
    cfg = ModelConfig(dim=DIM, width=4)
    object.__setattr__(cfg, "modalities", "x")
    with pytest.raises(ValueError, match="modalities"):
        EmotionModel(N_CLASSES, C_AUDIO, K, cfg)
