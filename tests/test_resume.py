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


def _logged_cfg(tiny_shards, out, *extra):
    from tests.conftest import TINY, compose_config

    return compose_config(TINY + [f"paths.root_dir={out}", f"paths.output_dir={out / 'run'}", f"data.root={tiny_shards}",
                                  "logger=[csv,tensorboard,wandb]", "trainer.max_steps=8", "model.scheduler.total_steps=8",
                                  "callbacks.demo_samples=null", *extra])


def test_sigterm_saves_a_resume_state_and_the_resumed_run_matches_and_continues_its_logger_runs(tiny_shards, tmp_path):
    """A real SIGTERM at step 3 (what SLURM sends): the run saves last.ckpt after the batch, stops cleanly
    (no export, no end-of-training work), and the rerun (ckpt_path=auto) lands on the weights of an
    uninterrupted run — and writes into the same wandb run id, TensorBoard version and CSV file."""
    import csv
    import signal

    from tests.logger_files import tensorboard_scalars, wandb_history

    straight = train(_logged_cfg(tiny_shards, tmp_path / "straight"))
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored after a normal run
    run = tmp_path / "split" / "run"
    stopped = train(_logged_cfg(tiny_shards, tmp_path / "split", "+callbacks.kill._target_=tests.helpers.SignalAtStep",
                                "+callbacks.kill.step=3"))
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored after the preemption
    at = stopped["preempted_at"]
    assert 3 <= at < 8  # the batch the signal arrived in, or the next one
    assert torch.load(stopped["checkpoint"], weights_only=True)["global_step"] == at
    assert not (run / "export").exists()  # the end-of-training work was skipped
    resumed = train(_logged_cfg(tiny_shards, tmp_path / "split"))
    assert resumed["checkpoint"] == stopped["checkpoint"]
    a = torch.load(straight["checkpoint"], weights_only=True)
    b = torch.load(resumed["checkpoint"], weights_only=True)
    assert a["global_step"] == b["global_step"] == 8
    assert max((a["state_dict"][k].float() - b["state_dict"][k].float()).abs().max().item() for k in a["state_dict"]) < 1e-6

    # the logger runs continue: one wandb id (two offline folders to sync into it), one TensorBoard version, one CSV
    run_id = (run / "wandb_run_id").read_text().strip()
    folders = sorted((run / "wandb").glob("offline-run-*"))
    assert len(folders) == 2 and all(f.name.endswith(run_id) for f in folders)
    steps = [int(row["trainer/global_step"]) for f in folders for row in wandb_history(f) if "train/loss" in row]
    assert steps == sorted(set(steps)) and len(steps) == 8   # every step once, in order
    [version] = (run / "tensorboard").iterdir()
    assert len(list(version.glob("events.out.tfevents.*"))) == 2
    assert [s for s, _ in tensorboard_scalars(version, "train/loss")] == list(range(8))
    [csv_version] = (run / "csv").iterdir()
    with open(csv_version / "metrics.csv", newline="") as file:
        assert [int(r["step"]) for r in csv.DictReader(file) if r["train/loss"]] == list(range(8))
