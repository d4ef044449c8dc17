"""Units of the watchable run: per-sample flow loss, flow-time buckets, module groups, the preemption hand-over,
the SLURM signal settings, logger-run continuation, streamed evaluation reading and device=auto."""

from __future__ import annotations

import signal

import pytest
import torch

from v2a.diffusion.flow_matching import RectifiedFlow, masked_mse, per_sample_mse
from v2a.training.health import flow_time_buckets, top_level_groups


def _velocity(x, t, keep):
    return x * 0.5 + t.view(-1, 1, 1)


@pytest.mark.parametrize("masked", [False, True])
def test_loss_details_leave_the_loss_unchanged_and_average_back_to_it(masked):
    x1 = torch.randn(6, 4, 12)
    mask = torch.ones(6, 12, dtype=torch.bool)
    if masked:
        mask[1, 8:] = False
        mask[4, 3:] = False
    flow = RectifiedFlow(time_sampling="logit_normal")
    plain = flow.loss(_velocity, x1, torch.Generator().manual_seed(3), mask=mask if masked else None)
    details = {}
    detailed = flow.loss(_velocity, x1, torch.Generator().manual_seed(3), mask=mask if masked else None, details=details)
    assert torch.equal(plain, detailed)
    assert details["t"].shape == details["per_sample"].shape == (6,)
    frames = mask.sum(dim=1).float()  # the pooled mean is the real-frame-weighted mean of the per-sample ones
    assert torch.allclose((details["per_sample"] * frames).sum() / frames.sum(), plain, atol=1e-6)


def test_per_sample_mse_ignores_padding_even_when_it_is_not_finite():
    prediction, target = torch.zeros(2, 3, 4), torch.ones(2, 3, 4)
    prediction[0, :, 2:] = float("inf")
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    assert torch.equal(per_sample_mse(prediction, target, mask), torch.ones(2))
    assert torch.equal(masked_mse(prediction, target, mask), torch.tensor(1.0))


def test_flow_time_buckets_split_small_middle_and_large_t():
    t = torch.tensor([0.1, 0.2, 0.5, 0.9, 0.95, 1 / 3])
    loss = torch.tensor([1.0, 3.0, 5.0, 7.0, 9.0, 11.0])
    buckets = {k: (float(s), int(c)) for k, (s, c) in flow_time_buckets(t, loss).items()}
    assert buckets == {"small": (4.0, 2), "middle": (16.0, 2), "large": (16.0, 2)}


def test_gradient_groups_are_the_top_level_modules_of_the_trained_network():
    class Stage(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.ModuleDict({"denoiser": torch.nn.Linear(2, 2), "visual_encoder": torch.nn.Linear(2, 2)})
            self.frozen = torch.nn.Linear(2, 2).requires_grad_(False)

    stage = Stage()
    groups = top_level_groups(stage)
    assert sorted(set(groups.values())) == ["denoiser", "visual_encoder"]
    assert id(stage.frozen.weight) not in groups


def test_preemption_hands_over_to_the_handler_installed_before_training():
    from v2a.training.preemption import Preemption

    calls = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: calls.append(signum))
    try:
        callback = Preemption(signals=["SIGTERM", "USR1"])
        callback.setup(None, None, "fit")
        callback.on_train_start(None, None)
        assert signal.getsignal(signal.SIGUSR1) == callback._on_signal
        signal.raise_signal(signal.SIGUSR1)   # a real signal: only raises the flag
        assert callback.received == signal.SIGUSR1 and calls == []
        callback.teardown(None, None, "fit")
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL   # the handlers from before are back
        callback.hand_over()
        assert calls == [signal.SIGUSR1]   # submitit's handler would requeue here
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_slurm_launcher_sends_usr1_before_the_limit_and_submitit_requeues_on_it(tmp_path):
    from hydra import compose, initialize_config_dir

    from v2a.conf import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path}",
                                           "hydra/launcher=slurm"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher.additional_parameters.signal == f"USR1@{launcher.signal_delay_s}"
    assert "export SUBMITIT_PREEMPT_SIGNAL=USR1" in launcher.setup
    assert "SIGUSR1" in cfg.callbacks.preemption.signals and "SIGTERM" in cfg.callbacks.preemption.signals


def test_logger_runs_continue_only_when_resuming_from_the_run_folder(tmp_path):
    from omegaconf import OmegaConf

    from v2a.training.loggers import continue_logger_runs

    def config():
        return OmegaConf.create({"paths": {"output_dir": str(tmp_path)}, "logger": {
            "wandb": {"_target_": "pytorch_lightning.loggers.WandbLogger", "save_dir": str(tmp_path), "id": None},
            "tensorboard": {"_target_": "pytorch_lightning.loggers.TensorBoardLogger", "save_dir": str(tmp_path),
                            "name": "tensorboard"}}})

    fresh = config()
    continue_logger_runs(fresh, None)
    (tmp_path / "tensorboard" / "version_0").mkdir(parents=True)
    resumed = config()
    continue_logger_runs(resumed, 40)
    assert resumed.logger.wandb.id == fresh.logger.wandb.id and resumed.logger.wandb.resume == "allow"
    assert resumed.logger.tensorboard.version == 0 and resumed.logger.tensorboard.purge_step == 40
    assert "version" not in fresh.logger.tensorboard
    again = config()
    continue_logger_runs(again, None)   # a fresh start in the same folder is a new wandb run
    assert again.logger.wandb.id != fresh.logger.wandb.id


def test_csv_logger_continues_its_file_without_rows_past_the_resumed_step(tmp_path):
    from v2a.training.loggers import CSVLogger

    first = CSVLogger(save_dir=str(tmp_path), name="csv", version=0)
    for step in range(6):
        first.log_metrics({"train/loss": float(step)}, step=step)
    first.save()
    second = CSVLogger(save_dir=str(tmp_path), name="csv", version=0, purge_step=4)   # checkpoint at step 4
    for step in range(4, 7):
        second.log_metrics({"train/loss": float(step), "sys/clips_per_s": 1.0}, step=step)
    second.save()
    import csv

    with open(tmp_path / "csv" / "version_0" / "metrics.csv", newline="") as file:
        assert [int(r["step"]) for r in csv.DictReader(file)] == list(range(7))


def test_evaluation_reads_batches_one_at_a_time_with_a_known_length(tiny_shards, tiny_spec):
    import types

    from v2a.evaluation.references import count_clips, iterate_batches, progress

    batches = iterate_batches(tiny_shards, "test", tiny_spec, 8, 12)
    assert isinstance(batches, types.GeneratorType)
    assert count_clips(tiny_shards, "test") == 16 and count_clips(tiny_shards, "test", 12) == 12
    bar = progress(batches, count_clips(tiny_shards, "test", 12), 8, "test")
    assert bar.total == 2 and [len(b["key"]) for b in bar] == [8, 4]


def test_device_auto_is_the_gpu_when_present():
    from v2a.utils.devices import resolve_device

    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
