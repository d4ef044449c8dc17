"""Checkpoint retention: a run of N steps keeps exactly last.ckpt, the best K by the monitored metric and
every M-th step, each kept one with its inference export; nothing else stays on disk."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from tests.conftest import TINY, compose_config
from v2a.pipeline import V2APipeline
from v2a.training.run import train


class RecordValidation(pl.Callback):
    """(global step, val/loss) of every validation of the run (class-level: the config instantiates it)."""

    seen: list[tuple[int, float]] = []

    def on_validation_end(self, trainer, module) -> None:
        RecordValidation.seen.append((trainer.global_step, float(trainer.callback_metrics["val/loss"])))


def test_a_run_keeps_last_the_best_and_every_kth_checkpoint_with_exports(tiny_shards, tmp_path):
    RecordValidation.seen = []
    run = tmp_path / "run"
    cfg = compose_config(TINY + [
        f"paths.root_dir={tmp_path}", f"paths.output_dir={run}", f"data.root={tiny_shards}", "~logger",
        "trainer.max_steps=12", "trainer.val_check_interval=3", "callbacks.model_checkpoint.every_n_train_steps=2",
        "callbacks.best_checkpoints.save_top_k=2", "callbacks.kept_checkpoints.every_n_train_steps=6",
        "callbacks.demo_samples=null", "+callbacks.record._target_=tests.test_checkpoint_retention.RecordValidation"])
    train(cfg)
    assert [s for s, _ in RecordValidation.seen] == [3, 6, 9, 12]
    best = sorted(RecordValidation.seen, key=lambda sv: sv[1])[:2]
    steps = sorted({s for s, _ in best} | {6, 12})   # 6 may leave the best 2: it stays, as a 6th step
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt", *[f"step_{s:07d}.ckpt" for s in steps]]
    assert sorted(p.name for p in (run / "exports").iterdir()) == [f"step_{s:07d}" for s in steps]
    for s in steps:  # each kept file is the state of its step, and its export loads for inference
        assert torch.load(run / "checkpoints" / f"step_{s:07d}.ckpt", weights_only=True)["global_step"] == s
    V2APipeline.from_pretrained(run / "exports" / f"step_{steps[0]:07d}")
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 12
