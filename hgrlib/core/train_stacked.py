"""Which runs may train as one stack, and `fit_stacked` (hgrlib.core.train.fit with a list of configs).

Each member is the run `hgrlib.core.train.fit` would train alone: the same split and data order, the same
initialisation and (on the CPU) dropout masks drawn from its own generator, its own AdamW and one-cycle
schedule (its own steps per epoch: a member with fewer sits the extra steps out), its own non-finite skips,
validation selection, checkpoint, features.npz and result.json. The forward is EmotionModel's own, vmapped
(hgrlib.core.stacked); only the summation order inside the batched operators differs, so a member matches its solo
run to float tolerance, not bit for bit: hgrlib.experiment.runs keys stacked runs apart (`exec ...-stacked`).
"""

from __future__ import annotations

from hgrlib.config import Config
from hgrlib.core.train import fit
from hgrlib.data.featureset import FeatureSet


def fit_stacked(
    cfgs: list[Config], fs: FeatureSet, run_dirs: list[str], progress: bool = True, keys: list[dict] | None = None
) -> list[dict]:
    """Train the configs (one stack_signature, all stackable) as one stack: hgrlib.core.train.fit(cfgs, ...)."""
    return fit(list(cfgs), fs, list(run_dirs), progress, keys)
