"""Soft-HGR against closed forms, and the baselines' basic properties."""

import math

import numpy as np
import pytest
import torch

from hgrlib.config import LossConfig
from hgrlib.core.losses import cca_corr, correlation, infonce, joint_loss, soft_hgr


def gaussian_pair(n: int, rho: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, generator=gen, dtype=torch.float64)
    e = torch.randn(n, 1, generator=gen, dtype=torch.float64)
    return x, rho * x + math.sqrt(1 - rho**2) * e


@pytest.mark.parametrize("rho,a,b", [(0.8, 1.0, 1.0), (0.5, 2.0, 0.3), (-0.6, 1.5, -0.7), (0.0, 1.0, 1.0)])
def test_soft_hgr_gaussian_closed_form(rho, a, b):
    # Population value for f = a·x, g = b·y with corr(x, y) = rho: a·b·rho − a²b²/2.
    x, y = gaussian_pair(400_000, rho)
    s = soft_hgr(a * x, b * y).item()
    assert s == pytest.approx(a * b * rho - (a * b) ** 2 / 2, abs=0.01)


def test_soft_hgr_maximum_is_rho_squared_over_two():
    rho = 0.7
    x, y = gaussian_pair(200_000, rho, seed=1)
    values = {ab: soft_hgr(ab * x, y).item() for ab in np.linspace(-1, 1.5, 26)}
    best = max(values, key=values.get)
    assert best == pytest.approx(rho, abs=0.06)
    assert values[best] == pytest.approx(rho**2 / 2, abs=0.01)


def test_soft_hgr_matches_definition_with_dxd_covariances():
    gen = torch.Generator().manual_seed(3)
    f, g = torch.randn(10, 4, generator=gen, dtype=torch.float64), torch.randn(10, 4, generator=gen, dtype=torch.float64)
    fc, gc = f - f.mean(0), g - g.mean(0)
    cov_f, cov_g = torch.tensor(np.cov(fc.T.numpy())), torch.tensor(np.cov(gc.T.numpy()))  # d×d, N−1
    want = (fc * gc).sum(1).mean() - 0.5 * torch.trace(cov_f @ cov_g)
    assert soft_hgr(f, g).item() == pytest.approx(want.item(), rel=1e-10)
    # The widely copied N×N variant tr(f fᵀ g gᵀ) is a different quantity: make sure we are not it.
    wrong = (fc * gc).sum(1).mean() - 0.5 * torch.trace(fc @ fc.T @ gc @ gc.T) / 9**2
    assert abs(soft_hgr(f, g).item() - wrong.item()) > 1e-3


def test_soft_hgr_invariances_and_errors():
    gen = torch.Generator().manual_seed(4)
    f, g = torch.randn(32, 5, generator=gen), torch.randn(32, 5, generator=gen)
    assert soft_hgr(f + 3.0, g - 1.0).item() == pytest.approx(soft_hgr(f, g).item(), abs=1e-5)  # centred
    assert soft_hgr(f, g).item() == pytest.approx(soft_hgr(g, f).item(), abs=1e-5)  # symmetric
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=gen))
    assert soft_hgr(f @ q, g @ q).item() == pytest.approx(soft_hgr(f, g).item(), abs=1e-4)  # rotation
    with pytest.raises(ValueError, match="at least 2"):
        soft_hgr(f[:1], g[:1])


def test_soft_hgr_multidim_maximum_is_half_sum_of_squared_singular_values():
    # Two independent Gaussian pairs with correlations 0.9 and 0.4: max = (0.81 + 0.16) / 2.
    x1, y1 = gaussian_pair(200_000, 0.9, seed=5)
    x2, y2 = gaussian_pair(200_000, 0.4, seed=6)
    f, g = torch.cat([x1, x2], 1), torch.cat([y1, y2], 1)
    scale = torch.diag(torch.tensor([0.9, 0.4], dtype=torch.float64).sqrt())  # optimal a·b = rho per pair
    s = soft_hgr(f @ scale, g @ scale)
    assert s.item() == pytest.approx((0.81 + 0.16) / 2, abs=0.01)


def _mean_cca(n: int, d: int, draws: int = 40, seed: int = 0, **kw) -> float:
    """Mean over `draws` batches of cca_corr / k on independent Gaussian features (N = n)."""
    gen = torch.Generator().manual_seed(seed)
    k = kw.get("k", 0) or d
    vals = [
        cca_corr(torch.randn(n, d, generator=gen, dtype=torch.float64), torch.randn(n, d, generator=gen, dtype=torch.float64), **kw).item()
        for _ in range(draws)
    ]
    return float(np.mean(vals)) / k


def test_cca_recovers_planted_canonical_correlations():
    x1, y1 = gaussian_pair(50_000, 0.9, seed=7)
    x2, y2 = gaussian_pair(50_000, 0.4, seed=8)
    f, g = torch.cat([x1, x2], 1), torch.cat([y1, y2], 1)
    assert cca_corr(f, g, ridge=0.0).item() == pytest.approx(1.3, abs=0.02)
    assert cca_corr(f, g, k=1, ridge=0.0).item() == pytest.approx(0.9, abs=0.01)  # the first dimension only
    assert cca_corr(f, g).item() == pytest.approx(1.3, abs=0.02)  # the relative ridge 1e-3 barely shrinks
    mix = torch.tensor([[2.0, 0.5], [-1.0, 3.0]], dtype=torch.float64)  # CCA is invariant to invertible maps of f
    assert cca_corr(f @ mix, g * 1e-3, ridge=1e-6).item() == pytest.approx(1.3, abs=0.02)


def test_cca_on_k_le_n_over_4_of_independent_features_is_far_below_saturation():
    # Independent data: the per-dimension value is the sample-size bias only, ≈ 0.85–0.9·√(k/N) (a null law,
    # measured), far below the ≈ 1 of the singular regime; it shrinks with k/N, and does not reach 0 at k = N/4.
    d, n = 64, 64
    quarter = _mean_cca(n, d, k=16)
    assert 0.35 < quarter < 0.5
    assert _mean_cca(1024, d, k=16, draws=10) < 0.13  # k/N = 1/64: ≈ 0.1
    assert _mean_cca(n, d, k=0, ridge=1e-4, relative=False, draws=10) > 0.9  # k ignored (all 64 dims): saturated


def test_cca_relative_ridge_is_scale_free_and_keeps_singular_batches_finite():
    gen = torch.Generator().manual_seed(11)
    f, g = torch.randn(64, 16, generator=gen), torch.randn(64, 16, generator=gen)
    base = cca_corr(f, g).item()
    # features of tiny variance (as Soft-HGR's penalty and weight decay make them): an absolute ridge of the
    # same size then sets the value, the relative one does not see the scale
    assert cca_corr(1e-3 * f, 1e-3 * g).item() == pytest.approx(base, rel=1e-4)
    assert cca_corr(1e-3 * f, 1e-3 * g, ridge=1e-3, relative=False).item() < 0.1 * base
    # N = 8 < k = 16: singular covariances; the relative ridge keeps the value finite and within its bound
    # min(k, N−1) (each ρᵢ ≤ 1), with a finite gradient
    fs, gs = f[:8].clone().requires_grad_(True), g[:8].clone().requires_grad_(True)
    v = cca_corr(fs, gs)
    v.backward()
    assert torch.isfinite(v) and v.item() <= 7.0 + 1e-3 and torch.isfinite(fs.grad).all()


def test_full_d_absolute_ridge_cca_saturates_when_n_le_d():
    # The documented failure: N ≤ d, absolute ridge 1e-4: independent data, yet Σρᵢ ≈ N−1, its maximum.
    gen = torch.Generator().manual_seed(9)
    for n, d in ((8, 16), (16, 32)):
        vals = [
            cca_corr(torch.randn(n, d, generator=gen), torch.randn(n, d, generator=gen), ridge=1e-4, relative=False).item()
            for _ in range(5)
        ]
        assert min(vals) > 0.95 * (n - 1) and max(vals) <= (n - 1) * 1.01  # float32: ±0.1%
        f, g = torch.randn(n, d, generator=gen), torch.randn(n, d, generator=gen)
        assert soft_hgr(f, g).item() < 1.0


def test_infonce_of_aligned_and_of_independent_pairs():
    gen = torch.Generator().manual_seed(10)
    n = 64
    f = torch.randn(n, 32, generator=gen)
    # perfectly aligned pairs at a low temperature: every row picks its own partner, loss ≈ 0
    assert infonce(f, 3.0 * f, temperature=0.02).item() == pytest.approx(0.0, abs=1e-3)
    # independent pairs at a high temperature: logits ≈ 0, the loss is chance, −log N
    g = torch.randn(n, 32, generator=gen)
    assert infonce(f, g, temperature=10.0).item() == pytest.approx(-math.log(n), abs=0.01)
    # closed form: two orthogonal pairs have logits [[1/τ, 0], [0, 1/τ]], loss log(1 + e^{−1/τ}) both ways
    e = torch.eye(2, 3, dtype=torch.float64)
    for t in (0.5, 1.0, 2.0):
        assert infonce(5.0 * e, e, temperature=t).item() == pytest.approx(-math.log1p(math.exp(-1 / t)), rel=1e-9)
    # shuffled partners score far worse than aligned ones at the training temperature
    assert infonce(f, f[torch.randperm(n, generator=gen)]).item() < infonce(f, f).item() - 2.0
    with pytest.raises(ValueError, match="unknown correlation"):
        correlation(f, f, "dcca2")


def test_correlation_and_joint_loss_pass_the_cca_settings():
    gen = torch.Generator().manual_seed(12)
    f, g = torch.randn(64, 32, generator=gen), torch.randn(64, 32, generator=gen)
    assert correlation(f, g, "cca", cca_dim=8, cca_ridge=1e-2).item() == pytest.approx(cca_corr(f, g, k=8, ridge=1e-2).item(), rel=1e-6)
    out, y = _outputs(n=64, d=32)
    lab = torch.ones(64, dtype=torch.bool)
    cfg = LossConfig(lam=1.0, corr="cca", cca_dim=8, cca_ridge=1e-2, w_ay=0.0, w_vy=0.0)
    _, p = joint_loss(out, y, lab, cfg)
    assert p["s_av"] == pytest.approx(cca_corr(out["f"], out["g"], k=8, ridge=1e-2).item(), rel=1e-5)
    assert p["s_av"] != pytest.approx(cca_corr(out["f"], out["g"]).item(), rel=1e-2)  # k and ridge not ignored


def _outputs(n=16, d=4, c=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(n, d, generator=gen, requires_grad=True) for k in "fgh"} | {
        "logits": torch.randn(n, c, generator=gen, requires_grad=True)
    }, torch.randint(0, c, (n,), generator=gen)


def test_joint_loss_composition():
    out, y = _outputs()
    lab = torch.ones(16, dtype=torch.bool)
    ce_only, p = joint_loss(out, y, lab, LossConfig(lam=0.0))
    assert set(p) == {"ce", "loss"}
    full, p = joint_loss(out, y, lab, LossConfig(lam=0.5))
    want = p["ce"] - 0.5 * (p["s_av"] + p["s_ay"] + p["s_vy"])
    assert full.item() == pytest.approx(want, rel=1e-6)
    assert p["s_av"] == pytest.approx(soft_hgr(out["f"], out["g"]).item(), rel=1e-6)
    full.backward()
    assert all(out[k].grad is not None for k in "fgh")


def test_joint_loss_semi_supervised_uses_unlabeled_rows_only_for_audio_visual_term():
    out, y = _outputs()
    lab = torch.zeros(16, dtype=torch.bool)
    lab[:6] = True
    loss, p = joint_loss(out, y, lab, LossConfig(lam=1.0))
    assert p["s_av"] == pytest.approx(soft_hgr(out["f"], out["g"]).item(), rel=1e-6)
    assert p["s_ay"] == pytest.approx(soft_hgr(out["f"][:6], out["h"][:6]).item(), rel=1e-6)
    import torch.nn.functional as F

    assert p["ce"] == pytest.approx(F.cross_entropy(out["logits"][:6], y[:6]).item(), rel=1e-6)
    # No labels at all: only the label-free term remains, and it still trains f and g.
    loss, p = joint_loss(out, y, torch.zeros(16, dtype=torch.bool), LossConfig(lam=1.0))
    assert set(p) == {"s_av", "loss"}
    loss.backward()
    assert out["f"].grad.abs().sum() > 0
    assert out["logits"].grad is None or out["logits"].grad.abs().sum() == 0
