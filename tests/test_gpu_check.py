"""bench/gpu_check.py on the CPU with the debug configs: the same code path the GPU run takes (bf16 autocast,
a two-step resume, generation), so it is known to work before a GPU is lent."""

import json
import subprocess
import sys

from conftest import REPO


def test_gpu_check_runs_tiny_on_cpu(tmp_path):
    res = subprocess.run([sys.executable, "bench/gpu_check.py", "--size", "tiny", "--device", "cpu", "--workdir", str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=600, env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [r["check"].split()[0] for r in result["rows"]] == ["VAE", "LDM", "generate"]
    assert [r["precision"] for r in result["rows"]] == ["bf16", "bf16", "fp32"]  # the pipeline generates in fp32
    assert all(r["steps_per_s"] > 0 for r in result["rows"])
    for stage in ("vae", "ldm"):  # trained 2 steps, then resumed to 6 from the step-2 checkpoint
        assert (tmp_path / "ckpts" / f"{stage}_bf16" / "checkpoints" / "step_00000006").is_dir()
        assert "resumed from" in res.stderr and "step_00000002" in res.stderr
