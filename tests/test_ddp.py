"""DDP on 2 CPU processes (gloo): ranks see different data and end with identical weights."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, TINY


@pytest.mark.slow
def test_ddp_two_cpu_processes(tiny_shards, tmp_path):
    run_dir = tmp_path / "run"
    audit = tmp_path / "audit"
    args = [sys.executable, "train.py", *TINY, f"data.root={tiny_shards}", f"hydra.run.dir={run_dir}",
            "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true",
            "trainer.limit_val_batches=1",
            "+callbacks.audit._target_=tests.helpers.RankAudit", f"+callbacks.audit.out_dir={audit}"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((audit / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world_size"] == 2 for r in ranks)
    assert len(ranks[0]["keys"]) == len(ranks[1]["keys"]) == 4 * 8  # equal batch counts per rank
    assert ranks[0]["keys"] != ranks[1]["keys"]  # different data on each rank
    overlap = set(ranks[0]["keys"]) & set(ranks[1]["keys"])
    assert len(overlap) < len(ranks[0]["keys"]) / 2
    assert ranks[0]["net"] == ranks[1]["net"]  # gradients all-reduced: identical weights
    assert ranks[0]["ema"] == ranks[1]["ema"]
    assert "checkpoint: " in proc.stdout
