"""benchmarks/gpu.sh's CPU-side parts: bench_step.py quick on the CPU, through the script, writes its JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_sh_runs_bench_step_quick_on_the_cpu(tmp_path):
    env = os.environ | {"DEVICE": "cpu", "QUICK": "1", "RUN_ALL": "0", "KS": "1 2", "OUT": str(tmp_path), "PYTHON": sys.executable}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    before = set(Path("/tmp").glob("hgrlib-gpu-*"))
    p = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh")], env=env, capture_output=True, text=True, timeout=600)
    assert set(Path("/tmp").glob("hgrlib-gpu-*")) <= before, "gpu.sh left its scratch folder behind"
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    res = json.loads((tmp_path / "results_step_cpu.json").read_text())
    names = [v["variant"] for v in res["variants"]]
    assert names == ["eager", "device_checks", "stacked_1", "stacked_2"]
    assert res["matmul_flops_per_s"] > 0 and res["step_flops"] > 0
    assert all(v["ms_per_step"] > 0 and v["share_of_matmul"] > 0 for v in res["variants"])
    assert (tmp_path / "machine.txt").is_file() and not (tmp_path / "run_all.log").exists()
