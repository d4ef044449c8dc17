"""The sync stage: lag bookkeeping, a short training run, and initialising the V2A visual encoder from it."""

import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from tests.conftest import TINY, compose_config
from v2a.sync.lags import lag_scores, shifted_windows
from v2a.training.run import train


def test_shifted_windows_label_is_the_lag_where_picture_and_sound_agree():
    """Frames and mel carry their absolute frame index; the lag scores must peak at the returned label."""
    batch, total, mel_per_frame, dim = 16, 50, 4, 64
    identity = F.one_hot(torch.arange(total), dim).float()  # frame t -> one-hot(t)
    frames = identity.expand(batch, total, dim)
    mel = identity.repeat_interleave(mel_per_frame, dim=0).T.expand(batch, dim, total * mel_per_frame)
    visual, audio, target = shifted_windows(frames, mel, window=24, max_lag=5, mel_per_frame=mel_per_frame,
                                            generator=torch.Generator().manual_seed(0))
    pooled = audio.unfold(2, mel_per_frame, mel_per_frame).mean(-1).transpose(1, 2)  # [B, 34, dim]
    scores = lag_scores(visual, pooled, max_lag=5)
    assert scores.shape == (batch, 11)
    assert torch.equal(scores.argmax(-1), target)
    assert len(set(target.tolist())) > 3  # the lags really vary


def test_lag_scores_sign_positive_means_sound_late():
    visual = torch.randn(1, 20, 8)
    late = torch.cat([torch.randn(1, 5 + 2, 8), visual, torch.randn(1, 5 - 2, 8)], dim=1)  # sound 2 frames late
    assert lag_scores(visual, late, max_lag=5).argmax().item() - 5 == 2


SYNC_TINY = [o for o in TINY if not o.startswith(("experiment=", "callbacks.demo_samples", "model.scheduler"))]


def test_sync_training_then_v2a_init_from_it(tiny_shards, tmp_path):
    sync_cfg = compose_config(["experiment=sync_base", *SYNC_TINY, "model.scheduler.warmup_steps=1",
                               f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path / 'sync'}",
                               f"data.root={tiny_shards}"])
    result = train(sync_cfg)
    assert {"val/acc_1frame", "val/offset_loss", "train/loss"} <= result["metrics"].keys()
    checkpoint = result["checkpoint"]

    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    sync = instantiate(sync_cfg.model)
    sync.load_state_dict(state)
    sync.eval()
    module = instantiate(sync_cfg.data)
    module.setup("test")
    batch = next(iter(module.test_dataloader()))
    offsets = sync.predict_offset(batch["frames"], batch["audio"])
    assert offsets.shape == (batch["audio"].shape[0],) and offsets.abs().max() <= 5 / 25
    # evaluation loads the SyncModel alone (no Lightning), and it predicts what the trained module predicts
    from v2a.checkpoints.sync_model import load_sync_model

    assert torch.equal(load_sync_model(checkpoint).predict_offset(batch["frames"], batch["audio"]), offsets)
    prefix = "model.visual_encoder."
    visual = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    assert visual

    v2a_cfg = compose_config(TINY + [f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path / 'v2a'}",
                                     f"data.root={tiny_shards}", f"model.visual_init={checkpoint}",
                                     "model.freeze_visual=true"])
    result = train(v2a_cfg)
    trained = torch.load(result["checkpoint"], weights_only=True)["state_dict"]
    for name, tensor in visual.items():  # started from the sync encoder and, frozen, stayed there
        assert torch.equal(trained[f"pipeline.net.visual_encoder.{name}"], tensor), name


def test_delay_audio_moves_a_click_by_whole_frames():
    from v2a.sync.offsets import delay_audio

    audio = torch.zeros(1, 32000)
    audio[0, 16000] = 1.0
    assert delay_audio(audio, 640).argmax().item() == 16640
    assert delay_audio(audio, -640).argmax().item() == 15360
    assert torch.equal(delay_audio(audio, 0), audio)


def test_training_windows_stay_inside_the_real_frames():
    """Padding (a frozen picture over silence) has no offset to learn: windows stay in the real part."""
    frames = torch.arange(60).float()[None, :, None].expand(8, 60, 1).contiguous()  # frame index as content
    mel = torch.zeros(8, 4, 60 * 4)
    valid = torch.tensor([60, 60, 40, 40, 30, 30, 25, 25])
    for seed in range(20):
        full = shifted_windows(frames, mel, window=10, max_lag=2, mel_per_frame=4,
                               generator=torch.Generator().manual_seed(seed))
        masked = shifted_windows(frames, mel, window=10, max_lag=2, mel_per_frame=4,
                                 generator=torch.Generator().manual_seed(seed), valid_frames=valid)
        assert torch.equal(full[0][:2], masked[0][:2]) and torch.equal(full[2], masked[2])  # full clips: unchanged
        last_frame = masked[0][:, -1, 0]
        # the window and the audio around it (max_lag either side, plus the lag) end inside the real frames
        assert bool((last_frame + 1 + 2 * 2 <= valid.float()).all()), (seed, last_frame)
