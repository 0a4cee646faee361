"""Losses: Soft-HGR (the paper's common-information objective), its baselines, and the joint loss.

Correlation objectives take two feature batches f, g of shape (N, d) and return a scalar to
*maximise*; the joint loss subtracts them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from hgrlib.config import LossConfig


def _centre(x: Tensor) -> Tensor:
    return x - x.mean(dim=0, keepdim=True)


def soft_hgr(f: Tensor, g: Tensor) -> Tensor:
    """Soft-HGR objective (Wang et al., AAAI 2019): E[f(X)ᵀg(Y)] − ½·tr(cov(f(X))·cov(g(Y))).

    Both features are centred over the batch; the covariances are d×d with the unbiased N−1
    normaliser and the inner product a batch mean, as in Xu's MCR reference code.
    """
    n = f.shape[0]
    if n < 2:
        raise ValueError(f"soft_hgr needs a batch of at least 2 samples, got {n}")
    f, g = _centre(f), _centre(g)
    inner = (f * g).sum(dim=1).mean()
    cov_f = f.T @ f / (n - 1)
    cov_g = g.T @ g / (n - 1)
    return inner - 0.5 * (cov_f * cov_g).sum()  # tr(AB) = Σ A∘Bᵀ, and cov_g is symmetric


def cca_corr(f: Tensor, g: Tensor, k: int = 0, ridge: float = 1e-3, relative: bool = True) -> Tensor:
    """Total canonical correlation of the first k dimensions (DCCA, Andrew et al. 2013): Σᵢ ρᵢ = ‖T‖_*,

    T = Σ̃ff^{-1/2} Σfg Σ̃gg^{-1/2},  Σ̃ff = Σff + r·I,  Σ̃gg = Σgg + r·I   (k×k, batch covariances, N−1).

    f, g: (N, d); only f[:, :k], g[:, :k] enter (k = 0 or k ≥ d: all d). `relative`: r = ridge·tr(Σ)/k per
    covariance (its mean eigenvalue: the value does not change when f or g is rescaled); else r = ridge.
    The inverse square root is taken through Cholesky factors, Σ̃ = L·Lᵀ: L_f⁻¹ Σfg L_g⁻ᵀ has the singular
    values of T (L⁻¹ = Q·Σ̃^{-1/2}, Q orthogonal), and its gradient has no eigenvalue-gap terms.

    Regimes (notebook 07 measures them): k ≤ N/4 (e.g. k = 16 on a batch of 64) with the relative ridge is
    well-posed, not unbiased: on independent Gaussian data each ρᵢ is ≈ 0.85–0.9·√(k/N) (≈ 0.44 at k = N/4).
    When k ≥ N−1 the centred batch covariances are singular: with an absolute ridge around 1e-4 Σρᵢ
    saturates near N−1 whatever the data and its gradient vanishes; with a smaller one float32 round-off
    takes over (values beyond the bound min(k, N−1), erratic gradients, LinAlgError from the Cholesky
    factorisation); the failure the paper cites as the reason for Soft-HGR.
    """
    n, d = f.shape
    k = d if k <= 0 or k >= d else k
    f, g = _centre(f[:, :k]), _centre(g[:, :k])  # (N, k)
    eye = torch.eye(k, dtype=f.dtype, device=f.device)
    s_ff, s_gg, s_fg = f.T @ f / (n - 1), g.T @ g / (n - 1), f.T @ g / (n - 1)  # (k, k) each

    def ridged(s: Tensor) -> Tensor:
        r = ridge * torch.diagonal(s).sum() / k if relative else ridge
        return s + r * eye

    l_f, l_g = torch.linalg.cholesky(ridged(s_ff)), torch.linalg.cholesky(ridged(s_gg))  # lower triangular
    t = torch.linalg.solve_triangular(l_f, s_fg, upper=False)  # L_f⁻¹ Σfg
    t = torch.linalg.solve_triangular(l_g, t.T, upper=False).T  # (L_f⁻¹ Σfg) L_g⁻ᵀ
    return torch.linalg.svdvals(t).sum()


def infonce(f: Tensor, g: Tensor, temperature: float = 0.1) -> Tensor:
    """Symmetric InfoNCE (CLIP, Radford et al. 2021) as an objective: −½(CE(f→g) + CE(g→f))."""
    f, g = F.normalize(f, dim=1), F.normalize(g, dim=1)
    logits = f @ g.T / temperature
    target = torch.arange(f.shape[0], device=f.device)
    return -0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def correlation(f: Tensor, g: Tensor, kind: str, temperature: float = 0.1, cca_dim: int = 0, cca_ridge: float = 1e-3) -> Tensor:
    """The pair objective named by LossConfig.corr (cca_dim, cca_ridge: CCA-style only, relative ridge)."""
    if kind == "hgr":
        return soft_hgr(f, g)
    if kind == "cca":
        return cca_corr(f, g, k=cca_dim, ridge=cca_ridge)
    if kind == "infonce":
        return infonce(f, g, temperature)
    raise ValueError(f"unknown correlation objective {kind!r}; use 'hgr', 'cca' or 'infonce'")


def joint_loss(out: dict[str, Tensor], y: Tensor, labeled: Tensor, cfg: LossConfig) -> tuple[Tensor, dict[str, float]]:
    """The paper's joint loss on a batch of segments.

    L = w_ce·CE(fusion) + w_ce_uni·(CE(a) + CE(v)) − λ·(w_av·S(f,g) + w_ay·S(f,h) + w_vy·S(g,h)).
    CE and the label terms use the labeled rows only; S(f, g) needs no label and uses all rows
    (the semi-supervised generalisation). `out` holds "logits" and, when present, "logits_a",
    "logits_v", "f" (audio features), "g" (visual features), "h" (label embedding of y).
    """
    lab = labeled.bool()
    loss, parts = joint_terms(out, y, lab, int(lab.sum()), cfg)
    return loss, {k: float(v.detach()) for k, v in parts.items()} | {"loss": float(loss.detach())}


def joint_terms(out: dict[str, Tensor], y: Tensor, lab, n_lab: int, cfg: LossConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """joint_loss's loss and its parts as tensors (no host sync): `lab` selects the labeled rows (a boolean mask,
    or a slice when they are the first `n_lab` rows, as a CUDA graph needs), `n_lab` counts them."""
    parts: dict[str, Tensor] = {}
    zero = out["logits"].sum() * 0.0
    if n_lab > 0:
        parts["ce"] = F.cross_entropy(out["logits"][lab], y[lab])
        if cfg.w_ce_uni > 0:
            for m in ("logits_a", "logits_v"):
                if m in out:
                    parts[f"ce_{m[-1]}"] = F.cross_entropy(out[m][lab], y[lab])
    loss = cfg.w_ce * parts.get("ce", zero)
    loss = loss + cfg.w_ce_uni * (parts.get("ce_a", zero) + parts.get("ce_v", zero))
    if cfg.lam > 0:
        corr = lambda a, b: correlation(a, b, cfg.corr, cfg.temperature, cfg.cca_dim, cfg.cca_ridge)  # noqa: E731
        common = zero
        if cfg.w_av > 0 and "f" in out and "g" in out and out["f"].shape[0] >= 2:
            parts["s_av"] = corr(out["f"], out["g"])
            common = common + cfg.w_av * parts["s_av"]
        if n_lab >= 2 and "h" in out:
            for key, feat, w in (("s_ay", "f", cfg.w_ay), ("s_vy", "g", cfg.w_vy)):
                if w > 0 and feat in out:
                    parts[key] = corr(out[feat][lab], out["h"][lab])
                    common = common + w * parts[key]
        loss = loss - cfg.lam * common
    return loss, parts
