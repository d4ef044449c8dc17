"""Callbacks used by tests that run training in subprocesses (importable as ``tests.helpers``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytorch_lightning as pl
import torch


def state_digest(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class RankAudit(pl.Callback):
    """Writes, per rank, the clip keys it trained on and a digest of its final weights and EMA."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.keys: list[str] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.keys += list(batch["key"])

    def on_train_end(self, trainer, module) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        record = {"rank": trainer.global_rank, "world_size": trainer.world_size, "keys": self.keys,
                  "net": state_digest(module.net), "ema": state_digest(module.ema)}
        (self.out_dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))
