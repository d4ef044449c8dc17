import io
import json
import logging
import tarfile

import numpy as np
import pytest
import soundfile as sf

from v2a.data.datamodule import ShardDataModule
from v2a.data.decode import decode_sample
from v2a.data.shard_writer import read_index, write_shard
from v2a.data.synthetic import render_impact_clip
from v2a.data.synthetic.build import build_split
from v2a.media import decode_video, encode_flac, encode_mp4
from v2a.utils.hashing import sha256_file


def test_media_round_trip(tiny_spec):
    clip = render_impact_clip(np.random.default_rng(0), tiny_spec)
    frames, fps = decode_video(encode_mp4(clip.frames, tiny_spec.fps))
    assert fps == tiny_spec.fps and frames.shape == clip.frames.shape
    assert np.abs(frames.astype(int) - clip.frames.astype(int)).mean() < 3  # H.264 at crf 18, yuv444
    audio, rate = sf.read(io.BytesIO(encode_flac(clip.audio, tiny_spec.sample_rate)), dtype="float32")
    assert rate == tiny_spec.sample_rate and np.abs(audio - clip.audio).max() < 1e-4


def test_shards_round_trip_through_the_datamodule(tiny_shards, tiny_spec):
    module = ShardDataModule(root=str(tiny_shards), spec=tiny_spec, batch_size=4, eval_batch_size=5, num_workers=0)
    batches = list(module.test_dataloader())
    keys = [k for b in batches for k in b["key"]]
    assert len(keys) == 16 and len(set(keys)) == 16  # every test clip exactly once
    batch = batches[0]
    assert batch["frames"].shape == (5, 50, 3, 32, 32) and batch["frames"].dtype.is_floating_point is False
    assert batch["audio"].shape == (5, 32000)
    assert all("events" in m and m["sample_rate"] == 16000 for m in batch["meta"])
    assert batch["mask"].shape == (5, 50) and batch["mask"].all() and batch["audio_mask"].shape == (5, 32000)
    assert all(m["crop_start"] == 0 for m in batch["meta"])  # evaluation crops are deterministic: the clip's start
    assert all(s.endswith(".tar") for s in batch["shard"])
    train = next(iter(module.train_dataloader()))
    assert train["audio"].shape == (4, 32000)


def test_index_and_resume_skip_finished_shards(tmp_path, tiny_spec):
    first = build_split(tmp_path, "val", 20, 7, tiny_spec, shard_size=8, max_objects=1, workers=1)
    assert first["samples"] == 20 and [s["samples"] for s in first["shards"]] == [8, 8, 4]
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "val").glob("*.tar")}
    (tmp_path / "val" / "val-000001.tar").unlink()  # as if a run died before this shard finished
    second = build_split(tmp_path, "val", 20, 7, tiny_spec, shard_size=8, max_objects=1, workers=1)
    assert second["samples"] == 20
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "val").glob("*.tar")}
    assert after["val-000000.tar"] == stamps["val-000000.tar"]  # untouched
    assert not list((tmp_path / "val").glob("*.tmp"))
    for shard in second["shards"]:
        assert sha256_file(tmp_path / "val" / shard["name"]) == shard["sha256"]
    assert read_index(tmp_path / "val")["samples"] == 20


def test_bad_samples_are_skipped_with_a_logged_reason(tmp_path, tiny_spec, caplog):
    clip = render_impact_clip(np.random.default_rng(1), tiny_spec)
    good = {"__key__": "good", "mp4": encode_mp4(clip.frames, 25), "flac": encode_flac(clip.audio, 16000),
            "json": clip.meta}
    bad_video = dict(good, __key__="bad_video", mp4=b"not a video")
    no_audio = {k: v for k, v in good.items() if k != "flac"} | {"__key__": "no_audio"}
    split = tmp_path / "test"
    split.mkdir()
    write_shard(split / "test-000000.tar", [good, bad_video, no_audio])
    with tarfile.open(split / "test-000000.tar") as tar:
        assert len(tar.getnames()) == 3 + 3 + 2
    module = ShardDataModule(root=str(tmp_path), spec=tiny_spec, eval_batch_size=8, num_workers=0)
    with caplog.at_level(logging.WARNING):
        batches = list(module.test_dataloader())
    assert [k for b in batches for k in b["key"]] == ["good"]
    assert "bad_video" in caplog.text and "no_audio" in caplog.text


def test_decode_resamples_foreign_rates_and_sizes(tiny_spec):
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 255, (30, 64, 48, 3), dtype=np.uint8)  # 15 fps, 64x48
    audio = (0.1 * rng.standard_normal(44100)).astype(np.float32)  # 1 s at 44.1 kHz
    sample = {"__key__": "x", "mp4": encode_mp4(frames, 15), "flac": encode_flac(audio, 44100),
              "json": json.dumps({"events": []}).encode()}
    out = decode_sample(sample, tiny_spec)
    assert out["frames"].shape == (50, 3, 32, 32)
    assert out["audio"].shape == (32000,)
    assert out["audio"][16000:].abs().max() == 0  # 1 s of audio padded with silence to the 2 s clip
    assert int(out["audio_mask"].sum()) == 16000 and int(out["mask"].sum()) == 25  # ... and masked


def test_hidden_material_clips_hide_only_the_colour(tiny_spec, tmp_path):
    """Grey objects: same sounds and events as the coloured clip, no material colour on screen."""
    from v2a.data.synthetic.impacts import NEUTRAL_COLOUR
    from v2a.data.synthetic.materials import MATERIALS

    def colours(frames: np.ndarray) -> set[tuple[int, ...]]:
        return {tuple(int(c) for c in px) for px in np.unique(frames.reshape(-1, 3), axis=0)}

    shown = render_impact_clip(np.random.default_rng(5), tiny_spec, max_objects=2)
    hidden = render_impact_clip(np.random.default_rng(5), tiny_spec, max_objects=2, hidden_material_prob=1.0)
    assert np.array_equal(shown.audio, hidden.audio) and shown.meta["events"] == hidden.meta["events"]
    assert hidden.meta["material_hidden"] is True and "material_hidden" not in shown.meta
    palette = {m.colour for m in MATERIALS}
    assert colours(shown.frames) & palette and not colours(hidden.frames) & palette
    assert tuple(NEUTRAL_COLOUR) in colours(hidden.frames)
    build_split(tmp_path, "train", 2, 0, tiny_spec, shard_size=2, max_objects=1, workers=1, hidden_material_prob=0.5)
    with pytest.raises(ValueError, match="another impacts"):  # a folder of another recipe is refused, not mixed
        build_split(tmp_path, "train", 4, 0, tiny_spec, shard_size=2, max_objects=1, workers=1)
