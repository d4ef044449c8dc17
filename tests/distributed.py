"""Launch v2a_tiny on 2 CPU processes (gloo) and collect each rank's audit (see tests.helpers.RankAudit)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from tests.conftest import ROOT, TINY


def run_two_processes(shards: Path, tmp_path: Path, name: str, strategy_args: list[str]) -> tuple[list[dict], list[dict]]:
    """Train on 2 CPU processes; per-rank audit records (keys, digests) and gathered weights."""
    audit = tmp_path / f"audit_{name}"
    args = [sys.executable, "train.py", *TINY, f"data.root={shards}", f"hydra.run.dir={tmp_path / name}",
            "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true", "trainer.limit_val_batches=1",
            *strategy_args, "+callbacks.audit._target_=tests.helpers.RankAudit",
            f"+callbacks.audit.out_dir={audit}", "+callbacks.audit.save_weights=true"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "checkpoint: " in proc.stdout
    records = [json.loads((audit / f"rank{r}.json").read_text()) for r in (0, 1)]
    weights = [torch.load(audit / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    return records, weights


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Largest absolute element difference between two state dicts with the same keys."""
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a if a[k].numel())
