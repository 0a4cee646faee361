"""The conditions' names and their Config.with_ changes, defined once: notebooks 02, 03, 05, 06 and 07,
hgrlib.experiment.claims and hgrlib.analysis.baselines name them from here. A condition is a name → change (Config.with_
sections); a function returns an ordered dict, in the order the notebooks train them (the order of the runs)."""

from __future__ import annotations

# notebook 02 (and 05, 06 read back): one network per name
AUDIO_CE = "audio only (CE)"
VISUAL_CE = "visual only (CE)"
FUSION_CE = "fusion (CE)"
FUSION_HGR = "fusion (CE + Soft-HGR)"  # the paper's model: CE + Soft-HGR on its three pairs
# notebook 02's mechanism controls
FUSION_UNI = "fusion (CE + unimodal CE)"
FUSION_LABEL_PAIRS = "fusion (CE + label pairs)"
FUSION_AV_PAIR = "fusion (CE + a–v pair)"
# notebook 07's one-pair baselines (the audio–visual pair only)
FUSION_HGR_AV = "fusion (CE + Soft-HGR, a–v)"
FUSION_CCA_AV = "fusion (CE + CCA, a–v)"
FUSION_INFONCE_AV = "fusion (CE + InfoNCE, a–v)"
# notebook 03's arms
LABELED_CE = "labeled only (CE)"
LABELED_HGR = "labeled only (CE + Soft-HGR)"
SEMI_HGR = "labeled + unlabeled (CE + Soft-HGR)"

FUSION = {"model": {"modalities": "av"}}
AV_PAIR = {"w_av": 1.0, "w_ay": 0.0, "w_vy": 0.0}  # the label-free audio–visual pair alone


def fusion_pair(lam) -> dict[str, dict]:
    """Fusion with CE and with CE + Soft-HGR at `lam` (notebooks 02's replication, 05 and 06)."""
    return {
        FUSION_CE: {"model": {"modalities": "av"}, "loss": {"lam": 0.0}},
        FUSION_HGR: {"model": {"modalities": "av"}, "loss": {"lam": lam}},
    }


def supervised(lam) -> dict[str, dict]:
    """Notebook 02's four conditions: audio only, visual only, fusion with CE, fusion with CE + Soft-HGR."""
    return {
        AUDIO_CE: {"model": {"modalities": "a"}, "loss": {"lam": 0.0}},
        VISUAL_CE: {"model": {"modalities": "v"}, "loss": {"lam": 0.0}},
        **fusion_pair(lam),
    }


def mechanism(lam, w_uni: float) -> dict[str, dict]:
    """Notebook 02's controls of where the gain comes from: per-modality CE heads (weight `w_uni`, no Soft-HGR),
    the label pairs alone, the audio–visual pair alone."""
    return {
        FUSION_UNI: {"model": {"modalities": "av"}, "loss": {"lam": 0.0, "w_ce_uni": w_uni}},
        FUSION_LABEL_PAIRS: {"model": {"modalities": "av"}, "loss": {"lam": lam, "w_av": 0.0}},
        FUSION_AV_PAIR: {"model": {"modalities": "av"}, "loss": {"lam": lam, "w_ay": 0.0, "w_vy": 0.0}},
    }


def tuned(name: str) -> str:
    """A one-pair baseline's name with its settings picked per fold: "fusion (CE + CCA, a–v, tuned per fold)"."""
    return f"{name[:-1]}, tuned per fold)"
