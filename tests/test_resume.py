"""Resume parity: train N steps == train k steps, stop, resume from the checkpoint, train N - k."""

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import open_dict

from v2a.training.run import train


class RecordLosses(pl.Callback):
    def __init__(self):
        self.losses: dict[int, float] = {}
        self.keys: dict[int, list[str]] = {}

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses[trainer.global_step] = float(outputs["loss"])
        self.keys[trainer.global_step] = list(batch["key"])


def _run(cfg, out_dir, max_steps, ckpt_path=None):
    with open_dict(cfg):
        cfg.trainer.max_steps = max_steps
        cfg.model.scheduler.total_steps = 8  # the schedule must not depend on where a run stops
        cfg.paths.output_dir = str(out_dir)
        cfg.ckpt_path = ckpt_path
        cfg.callbacks.model_checkpoint.every_n_train_steps = 1
        cfg.callbacks.demo_samples = None
        cfg.callbacks.lr_monitor = None
        cfg.trainer.val_check_interval = 1000
        cfg.trainer.limit_val_batches = 0
        cfg.logger = None
    recorder = RecordLosses()
    pl.seed_everything(cfg.seed, workers=True)
    model = instantiate(cfg.model)
    callbacks = [instantiate(c) for c in cfg.callbacks.values() if c is not None] + [recorder]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=False)
    trainer.fit(model, datamodule=instantiate(cfg.data), ckpt_path=ckpt_path)
    return model, recorder


def test_resume_parity(tiny_cfg, tmp_path):
    # samples_per_epoch=32 with batch 8: 4 batches per epoch, so the resume lands mid-epoch (step 3 of 8)
    full_model, full = _run(tiny_cfg.copy(), tmp_path / "full", 8)
    _, first = _run(tiny_cfg.copy(), tmp_path / "split", 3)
    ckpt = tmp_path / "split" / "checkpoints" / "last.ckpt"
    resumed_model, second = _run(tiny_cfg.copy(), tmp_path / "split", 8, ckpt_path=str(ckpt))
    assert sorted(first.losses) == [1, 2, 3] and sorted(second.losses) == [4, 5, 6, 7, 8]
    for step in range(4, 9):
        assert second.keys[step] == full.keys[step], f"step {step} saw different clips after resume"
        assert abs(second.losses[step] - full.losses[step]) < 1e-5, (step, second.losses[step], full.losses[step])
    raw = max((a - b).abs().max().item() for a, b in zip(full_model.net.parameters(), resumed_model.net.parameters(), strict=True))
    ema = max((a - b).abs().max().item() for a, b in zip(full_model.ema.module.parameters(), resumed_model.ema.module.parameters(), strict=True))
    assert int(full_model.ema.n_averaged) == int(resumed_model.ema.n_averaged) == 8
    assert raw < 1e-6 and ema < 1e-6


def test_auto_resume_from_run_folder(tiny_cfg, tmp_path):
    """Continuing a finished run from its final last.ckpt (train 2 steps, then ``ckpt_path=auto`` to 4)
    lands where an uninterrupted 4-step run does. That checkpoint is written after ``max_steps`` stopped
    the run mid-epoch, which Lightning counts as a processed epoch: resuming from its epoch counter
    once skipped to the next epoch's clips."""
    with open_dict(tiny_cfg):
        tiny_cfg.trainer.max_steps = 2
        tiny_cfg.callbacks.demo_samples = None
        tiny_cfg.model.scheduler.total_steps = 4
    first = train(tiny_cfg)
    with open_dict(tiny_cfg):
        tiny_cfg.trainer.max_steps = 4
        tiny_cfg.ckpt_path = "auto"
    second = train(tiny_cfg)
    assert first["checkpoint"] == second["checkpoint"]
    resumed = torch.load(second["checkpoint"], weights_only=True)
    assert resumed["global_step"] == 4
    with open_dict(tiny_cfg):
        tiny_cfg.ckpt_path = None
        tiny_cfg.paths.output_dir = str(tmp_path / "uninterrupted")
    straight = torch.load(train(tiny_cfg)["checkpoint"], weights_only=True)
    a, b = straight["state_dict"], resumed["state_dict"]
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) < 1e-6
