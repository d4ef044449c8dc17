"""Resume parity of the data position: with loader workers, and for every sample decoder (video + audio, audio only)."""

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import open_dict
from pytorch_lightning.callbacks import ModelCheckpoint

from tests.test_resume import _run
from v2a.data.datamodule import ShardDataModule
from v2a.data.decoders import AudioDecoder, VideoAudioDecoder
from v2a.shapes import ClipSpec


@pytest.mark.slow
def test_resume_parity_with_two_workers(tiny_cfg, tmp_path):
    with open_dict(tiny_cfg):
        tiny_cfg.data.num_workers = 2
        tiny_cfg.data.spec.duration = 1.0  # random 1 s crops of the 2 s clips must replay as well
    full_model, full = _run(tiny_cfg.copy(), tmp_path / "full", 7)
    _, first = _run(tiny_cfg.copy(), tmp_path / "split", 3)  # 4 batches per epoch: resume on worker 1's batch
    ckpt = tmp_path / "split" / "checkpoints" / "last.ckpt"
    resumed_model, second = _run(tiny_cfg.copy(), tmp_path / "split", 7, ckpt_path=str(ckpt))
    assert sorted(second.losses) == [4, 5, 6, 7]
    for step in range(4, 8):
        assert second.keys[step] == full.keys[step], f"step {step} saw different clips after resume"
        assert abs(second.losses[step] - full.losses[step]) < 1e-5, (step, second.losses[step], full.losses[step])
    raw = max((a - b).abs().max().item() for a, b in zip(full_model.net.parameters(), resumed_model.net.parameters(), strict=True))
    assert raw < 1e-6


class _KeyModel(pl.LightningModule):
    """The smallest trainable module: one weight, a loss on the batch's audio; records the clips per step."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(()))
        self.keys: dict[int, list[str]] = {}

    def training_step(self, batch, batch_idx):
        self.keys[self.global_step + 1] = list(batch["key"])
        return (self.weight * batch["audio"].mean()) ** 2

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit_keys(root, decoder, out_dir, max_steps: int, ckpt_path: str | None = None) -> dict[int, list[str]]:
    data = ShardDataModule(root=str(root), spec=ClipSpec(duration=1.0), decoder=decoder, batch_size=4, num_workers=0,
                           shuffle_buffer=8, samples_per_epoch=16, seed=5)   # 4 batches per epoch
    model = _KeyModel()
    checkpoint = ModelCheckpoint(dirpath=str(out_dir), save_last=True, every_n_train_steps=1)
    trainer = pl.Trainer(max_steps=max_steps, accelerator="cpu", devices=1, logger=False, callbacks=[checkpoint],
                         limit_val_batches=0, num_sanity_val_steps=0, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return model.keys


@pytest.mark.parametrize("stop", [2, 4])  # mid-epoch, and an epoch's last batch
def test_audio_only_data_resumes_at_the_position_of_the_video_data(tiny_shards, tmp_path, stop):
    """Both decoders share one data module, hence one resume position: a finished run's last.ckpt, resumed
    to 6 steps, replays the clips of an uninterrupted 6-step run (the audio copy of the module once
    resumed from Lightning's epoch counter, which counts an epoch stopped by max_steps as processed)."""
    runs = {}
    for decoder in (VideoAudioDecoder(), AudioDecoder()):
        out = tmp_path / type(decoder).__name__
        full = _fit_keys(tiny_shards, decoder, out / "full", 6)
        first = _fit_keys(tiny_shards, decoder, out / "split", stop)
        ckpt = out / "split" / "last.ckpt"
        position = torch.load(ckpt, weights_only=True)["ShardDataModule"]
        second = _fit_keys(tiny_shards, decoder, out / "split", 6, ckpt_path=str(ckpt))
        assert sorted(first) == list(range(1, stop + 1)) and sorted(second) == list(range(stop + 1, 7))
        for step in range(stop + 1, 7):
            assert second[step] == full[step], f"{decoder}: step {step} saw other clips after resume"
        runs[type(decoder).__name__] = (position, full)
    (video_position, video_keys), (audio_position, audio_keys) = runs.values()
    assert video_position == audio_position == {"epoch": 0, "batches": stop, "readers": 1}
    assert video_keys == audio_keys  # the same stream of clips: decoding differs, sampling does not
