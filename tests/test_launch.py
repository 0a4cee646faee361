"""Grid points launched through submitit (its local executor here; SLURM on a cluster) are the same runs:
the same runs/<hash>/result.json as training in this process, read back by whoever asks next."""

from __future__ import annotations

import pytest
import torch
from fixtures import random_featureset

from hgrlib.config import Config
from hgrlib.experiment.launch import load_shared_featureset, share_featureset, slurm_parameters, train_all
from hgrlib.experiment.runs import cached_fit

CFG = Config().with_(model={"dim": 8, "width": 4}, train={"epochs": 1, "batch_size": 16, "threads": 1})


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="uses device='cuda' as a config that fails")
def test_submitit_local_jobs_write_the_runs_a_process_trains(tmp_path):
    fs = random_featureset()
    cfgs = [CFG.with_(train={"seed": s}) for s in (0, 1)] + [CFG.with_(train={"device": "cuda"})]  # no GPU: fails
    out = train_all(cfgs, fs, str(tmp_path / "jobs"), progress=False, jobs=2, catch=(RuntimeError,), executor="submitit-local")
    assert isinstance(out[2], RuntimeError) and "cuda" in str(out[2])  # a caught failure comes back in its place
    assert len(list((tmp_path / "jobs" / ".submitit").iterdir())) >= 1  # went through submitit, logs kept
    for cfg, job in zip(cfgs[:2], out[:2]):
        here = cached_fit(cfg, fs, str(tmp_path / "here"), progress=False)
        assert job["test"] == here["test"] and job["history"] == here["history"]
        assert job["key"] == here["key"]  # the same run: a notebook reading it back finds it
    again = train_all(cfgs[:2], fs, str(tmp_path / "jobs"), progress=False, executor="submitit-local")
    assert [r["seconds"] for r in again] == [r["seconds"] for r in out[:2]]  # read back, nothing submitted


def test_shared_features_are_checked_when_read(tmp_path):
    fs = random_featureset()
    path = share_featureset(fs, str(tmp_path))
    assert load_shared_featureset(path).fingerprint == fs.fingerprint
    other = tmp_path / ".featuresets" / ("0" * 16 + ".pkl")
    other.write_bytes(open(path, "rb").read())  # right bytes, wrong name: as good as damaged
    with pytest.raises(ValueError, match="fingerprint"):
        load_shared_featureset(str(other))


def test_slurm_parameters_and_unknown_executor():
    assert slurm_parameters("slurm_partition=gpu, timeout_min=60,mem_gb=3.5") == {
        "slurm_partition": "gpu",
        "timeout_min": 60,
        "mem_gb": 3.5,
    }
    with pytest.raises(ValueError, match="key=value"):
        slurm_parameters("gpu")
    with pytest.raises(ValueError, match="unknown executor"):
        train_all([CFG], random_featureset(), executor="kubernetes")
