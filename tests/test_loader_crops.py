"""Random time crops keep audio and video aligned (checked on impact events); short clips are padded and masked."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from v2a.data.crops import CenterCrop, RandomCrop, StartCrop, choose_window
from v2a.data.decode import decode_sample, frames_to_tensor
from v2a.data.synthetic import render_impact_clip
from v2a.media import decode_mono, decode_video, encode_flac, encode_mp4
from v2a.shapes import ClipSpec

CROP = ClipSpec()  # the model's 2 s grid


def stored_sample(seconds: float, seed: int, **meta) -> tuple[dict, dict]:
    """A shard sample of an impact clip lasting ``seconds`` (mp4 + flac + json), and its ground truth."""
    clip = render_impact_clip(np.random.default_rng(seed), ClipSpec(duration=seconds), max_objects=2)
    info = {**clip.meta, **meta}
    sample = {"__key__": f"clip{seed}", "mp4": encode_mp4(clip.frames, 25), "flac": encode_flac(clip.audio, 16000),
              "json": json.dumps(info).encode()}
    return sample, info


def onset_near(audio: np.ndarray, t: float, search: float = 0.04) -> float:
    """Time of the steepest rise of the 1 ms peak envelope within ``search`` s of ``t``."""
    env = np.abs(audio[: len(audio) // 16 * 16]).reshape(-1, 16).max(1)
    first, last = max(3, int((t - search) * 1000)), min(len(env), int((t + search) * 1000))
    rise = [env[k] - env[k - 3 : k].max() for k in range(first, last)]
    return (first + int(np.argmax(rise))) / 1000


def test_random_crops_cut_audio_and_video_at_the_same_instant():
    errors, kept, starts = [], 0, set()
    for seed in range(4):
        sample, info = stored_sample(4.0, seed)
        full_frames = frames_to_tensor(decode_video(sample["mp4"])[0], CROP)
        full_audio = decode_mono(sample["flac"], 16000)
        for draw in range(3):
            out = decode_sample(sample, CROP, crop=RandomCrop(), rng=random.Random(10 * seed + draw))
            start = out["meta"]["crop_start"]
            first = round(start * CROP.fps)
            starts.add(first)
            assert abs(first / CROP.fps - start) < 1e-9 and 0 <= first <= 50  # on the frame grid, inside the clip
            # video and audio come from the same instant of the stored clip
            assert torch.equal(out["frames"], full_frames[first : first + 50])
            offset = first * 16000 // CROP.fps
            assert torch.equal(out["audio"], torch.from_numpy(full_audio[offset : offset + 32000]))
            # events move with the crop: exactly those inside it, at shifted times, with an onset there
            inside = [e for e in info["events"] if start <= e["time"] < start + 2.0]
            assert [e["time"] for e in out["meta"]["events"]] == pytest.approx([e["time"] - start for e in inside])
            for event in out["meta"]["events"]:
                if event["time"] > 0.05:
                    errors.append(onset_near(out["audio"].numpy(), event["time"]) - event["time"])
            kept += len(inside)
            assert out["mask"].all() and out["audio_mask"].all()  # a crop inside a longer clip: no padding
    assert len(starts) >= 6 and kept >= 20
    errors = np.abs(np.array(errors))
    assert np.median(errors) <= 0.001 and (errors <= 0.002).mean() >= 0.8, errors


def test_short_clips_are_padded_and_masked():
    sample, _ = stored_sample(1.2, seed=7)
    out = decode_sample(sample, CROP, crop=RandomCrop(), rng=random.Random(0))
    assert out["frames"].shape == (50, 3, 32, 32) and out["audio"].shape == (32000,)
    assert out["mask"].tolist() == [True] * 30 + [False] * 20
    assert out["audio_mask"].sum() == 19200 and bool(out["audio_mask"][19199]) and not out["audio_mask"][19200]
    assert out["audio"][19200:].abs().max() == 0 and out["audio"][:19200].abs().max() > 0
    assert torch.equal(out["frames"][30:], out["frames"][29:30].expand(20, -1, -1, -1))  # last frame held
    assert out["meta"]["crop_start"] == 0 and out["meta"]["valid_duration"] == pytest.approx(1.2)


def test_recorded_valid_duration_of_a_padded_clip_is_masked():
    sample, _ = stored_sample(2.0, seed=8, valid_duration=1.5)  # as make_shards writes a video's final clip
    out = decode_sample(sample, CROP, crop=StartCrop())
    assert int(out["mask"].sum()) == 38 and int(out["audio_mask"].sum()) == 24000
    assert out["audio"][24000:].abs().max() == 0


def test_eval_crops_are_deterministic_and_random_crops_need_a_generator():
    window = choose_window(4.0, CROP, StartCrop(), None)
    assert (window.start_frame, window.valid_s) == (0, 2.0)
    assert choose_window(4.0, CROP, CenterCrop(), None).start_frame == 25
    assert choose_window(4.0, CROP, RandomCrop(), random.Random(1)).start_frame in range(51)
    with pytest.raises(ValueError, match="random generator"):
        choose_window(4.0, CROP, RandomCrop(), None)
    with pytest.raises(ValueError, match="no content"):
        choose_window(0.0, CROP, StartCrop(), None)


def test_eval_loader_is_deterministic(tiny_shards):
    from v2a.data.datamodule import ShardDataModule

    module = ShardDataModule(root=str(tiny_shards), spec=ClipSpec(duration=1.0), eval_batch_size=8, num_workers=0,
                             eval_crop=RandomCrop())  # even random eval crops are a function of the clip
    first, second = list(module.val_dataloader()), list(module.val_dataloader())
    assert [b["key"] for b in first] == [b["key"] for b in second]
    assert all(torch.equal(a["frames"], b["frames"]) and torch.equal(a["audio"], b["audio"])
               for a, b in zip(first, second, strict=True))
    assert len({m["crop_start"] for b in first for m in b["meta"]}) > 1


def test_per_frame_tracks_follow_the_crop():
    """A talking head's mouth track (one value per stored frame) is cut with the frames it describes."""
    track = [round(0.01 * i, 2) for i in range(100)]  # 4 s at 25 fps: value = frame index / 100
    sample, _ = stored_sample(4.0, seed=3, mouth=track, fps=25)
    for draw in range(3):
        out = decode_sample(sample, CROP, crop=RandomCrop(), rng=random.Random(draw))
        first = round(out["meta"]["crop_start"] * CROP.fps)
        assert out["meta"]["mouth"] == track[first : first + 50]
    short, _ = stored_sample(1.2, seed=4, mouth=track[:30], fps=25)
    assert decode_sample(short, CROP, crop=StartCrop())["meta"]["mouth"] == track[:30]  # padding adds no values
