"""`--verify` in two tiers: exact on the machine identity that made the committed results, through the claims on
another (made-up run tables and stamps; the regeneration is simulated, so these tests train nothing)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hgrlib.base.io import write_json
from hgrlib.base.provenance import machine_identity
from hgrlib.experiment.claims import write_claims
from hgrlib.reproduce import verify

TAG = "synthetic-default"
INTEL = {
    "cpu": "Intel(R) Xeon(R) Platinum 8581C",
    "vendor": "GenuineIntel",
    "family": "6",
    "model": "207",
    "isa": "amx",
    "torch_dispatch": "AVX512",
    "torch": "2.14.1+cu130",
    "mkl": "2024.2",
    "onednn": "3.12.0",
    "dispatch_env": {},
}


def runs_table(gain: float, noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Runs of notebook 02's two fusion conditions on 4 folds x 3 seeds; CE + Soft-HGR `gain` points above CE."""
    r = np.random.default_rng(seed)
    rows = []
    for fold in range(4):
        for s in range(3):
            base = 0.60 + 0.02 * fold + 0.01 * r.standard_normal()
            for cond, extra in (("fusion (CE)", 0.0), ("fusion (CE + Soft-HGR)", gain / 100)):
                acc = base + extra + 0.01 * r.standard_normal() + noise * r.standard_normal()
                rows.append(
                    {"corpus": "synthetic seed 0", "condition": cond, "fold": fold, "seed": s, "acc": round(acc, 6), "seconds": 10.0 + s}
                )
    return pd.DataFrame(rows)


@pytest.fixture
def committed(tmp_path):
    """A committed results folder: notebook 02's runs, the claims read off them, and run stamps (machine set by the test)."""
    folder = tmp_path / "results" / TAG
    folder.mkdir(parents=True)
    runs_table(gain=6.0).to_csv(folder / "02_supervised_runs.csv", index=False)
    write_claims(folder)
    (tmp_path / "figures" / TAG).mkdir(parents=True)

    def stamp(machine):
        for nb in ("01_data_prep", "02_supervised"):
            write_json(folder / f".{nb}.stamp.json", {"stamp": "x"} | ({"machine": machine} if machine is not None else {}))

    return folder, stamp


def run_verify(tmp_path, monkeypatch, regenerated: pd.DataFrame | None, name: str, tier: str = "auto") -> int:
    """verify() with the regeneration simulated: the committed folder copied, its runs table replaced, claims rewritten."""
    committed = tmp_path / "results"

    def regenerate(profile, dataset, root, classes, only, jobs, force, results_dir, figures_dir, cache_dir, runs_dir, dispatch):
        assert force and cache_dir.startswith(str(tmp_path / name))  # from nothing, elsewhere
        shutil.copytree(committed, results_dir)
        shutil.copytree(tmp_path / "figures", figures_dir)
        folder = Path(results_dir) / TAG
        if regenerated is not None:
            regenerated.to_csv(folder / "02_supervised_runs.csv", index=False)
            write_claims(folder)

    return verify.verify(
        regenerate, scratch=str(tmp_path / name), results_dir=str(committed), figures_dir=str(tmp_path / "figures"), tier=tier
    )


def test_same_machine_identity_keeps_the_exact_tier(committed, tmp_path, monkeypatch, capsys):
    folder, stamp = committed
    stamp(machine_identity())
    assert run_verify(tmp_path, monkeypatch, None, "a") == 0
    out = capsys.readouterr().out
    assert "exact tier: same machine identity" in out and "reproduced exactly" in out
    drifted = runs_table(gain=6.0)
    drifted.loc[0, "acc"] += 0.001  # a last-digit change is a failure in the exact tier
    assert run_verify(tmp_path, monkeypatch, drifted, "b") == 1
    out = capsys.readouterr().out
    assert "DIFF 02_supervised_runs.csv row 1" in out and "FAILED" in out


def test_another_cpu_is_verified_through_the_claims(committed, tmp_path, monkeypatch, capsys):
    folder, stamp = committed
    stamp(INTEL)
    redrawn = runs_table(gain=6.0, noise=0.004, seed=0)  # every run moves, the effect stays
    assert run_verify(tmp_path, monkeypatch, redrawn, "a") == 0
    out = capsys.readouterr().out
    assert "claims tier: committed on Intel(R) Xeon(R)" in out and "(differs in cpu, vendor, family, model" in out
    assert "agrees   main claim: supported" in out and "every claim agrees" in out
    assert "02_supervised_runs.csv: largest differences: acc" in out and "DIFF" not in out  # drift summarised, not listed
    assert "seconds" not in out.split("table drift")[1]  # wall-clock columns are not drift


def test_a_flipped_verdict_fails_and_names_the_claim(committed, tmp_path, monkeypatch, capsys):
    _, stamp = committed
    stamp(INTEL)
    assert run_verify(tmp_path, monkeypatch, runs_table(gain=0.0, seed=0), "a") == 1
    out = capsys.readouterr().out
    assert "DISAGREE main claim: FRAGILE, the verdict changed: supported" in out and "inconclusive" in out
    assert "FAILED, 1 claim(s) disagree" in out


def test_an_effect_outside_the_other_interval_fails_with_the_same_verdict(committed, tmp_path, monkeypatch, capsys):
    _, stamp = committed
    stamp(INTEL)
    assert run_verify(tmp_path, monkeypatch, runs_table(gain=15.0, seed=0), "a") == 1
    out = capsys.readouterr().out
    assert "DISAGREE main claim: the effect moved outside the other's interval: supported" in out


def test_tier_choice_and_its_reasons():
    here = machine_identity()
    assert verify.choose_tier([here, here], here)[0] == "exact"
    assert verify.choose_tier([here, INTEL], here) == ("claims", "the committed notebooks were made on more than one machine identity")
    assert "do not all say" in verify.choose_tier([here, None], here)[1]
    assert "no run stamps" in verify.choose_tier([], here)[1]
    pinned = here | {"dispatch_env": {"ONEDNN_MAX_CPU_ISA": "AVX2"}}
    assert verify.choose_tier([pinned], here)[1].endswith("so tables are compared through the claims")
    assert "differs in dispatch_env" in verify.choose_tier([pinned], here)[1]
    assert verify.choose_tier([INTEL], here, "exact") == ("exact", "asked for with --tier exact")


def test_stamps_without_a_machine_are_verified_through_the_claims(committed, tmp_path, monkeypatch, capsys):
    _, stamp = committed
    stamp(None)
    assert run_verify(tmp_path, monkeypatch, runs_table(gain=6.0), "a") == 0
    assert "claims tier: the committed run stamps do not all say where they were made" in capsys.readouterr().out


def test_results_say_where_they_were_made(tmp_path):
    """The manifest, results/README.md and the README's generated section name the machine the stamps record."""
    from hgrlib.base.io import read_json
    from hgrlib.base.provenance import machine_text
    from hgrlib.reproduce.results_index import readme_results, write_manifest

    folder = tmp_path / "results" / TAG
    folder.mkdir(parents=True)
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "02_supervised.ipynb").write_text("{}")
    (folder / "02_supervised.ipynb").write_text("{}")
    runs_table(gain=6.0).to_csv(folder / "02_supervised_runs.csv", index=False)
    write_json(
        folder / ".02_supervised.stamp.json", {"stamp": "x", "commit": "c" * 40, "finished": "2026-12-05T12:00:00+00:00", "machine": INTEL}
    )
    write_manifest(tmp_path)
    said = machine_text(INTEL)
    assert said.startswith("Intel(R) Xeon(R) Platinum 8581C (GenuineIntel family 6 model 207, amx); torch 2.14.1+cu130")
    assert {e["machine"] for e in read_json(tmp_path / "results" / "manifest.json")} == {said}
    assert f"It ran on {said}." in (tmp_path / "results" / "README.md").read_text()
    assert f"on {said}. Do not edit" in readme_results(tmp_path, TAG)
