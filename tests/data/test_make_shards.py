"""Real-video ingestion (v2a.data.ingest, data_prep/make_shards.py) on small videos made on the fly."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import webdataset as wds

from tests.conftest import ROOT
from tests.data.videos import frame_value, make_audio_only, make_video
from v2a.conf import CONFIG_DIR
from v2a.data.datamodule import ShardDataModule
from v2a.data.decode import decode_sample
from v2a.data.ingest import ClipOptions, IngestError, TextPolicy, clip_key, clip_windows, ingest
from v2a.data.shard_writer import read_index
from v2a.media import read_frames
from v2a.shapes import ClipSpec

SPEC = ClipSpec(duration=1.0, fps=25, sample_rate=16000, image_size=32)
KEY = re.compile(r"^[A-Za-z0-9_-]+_[0-9a-f]{8}_\d{9}$")
CLICKS = (0.25, 1.5, 2.75, 3.4)  # one click per 1 s clip of clicks.mp4, at a different offset in each


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """clicks.mp4 (64x48, 30 fps, B-frames, AAC), sub dir/square.mp4 (50x50, 24 fps), pcm.mkv, silent.webm."""
    root = tmp_path_factory.mktemp("videos")
    make_video(root / "clicks.mp4", size=(64, 48), fps=30, seconds=4, clicks=CLICKS, preset="medium")
    (root / "clicks.txt").write_text("a click every second\n")
    (root / "sub dir").mkdir()
    make_video(root / "sub dir" / "square.mp4", size=(50, 50), fps=24, seconds=3, rate=48000, clicks=(1.2,))
    (root / "sub dir" / "square.json").write_text(json.dumps({
        "caption": "a grey square", "transcript": "hello there", "negative_caption": "music",
        "license": "CC-BY-4.0", "source": "https://example.org/v/1"}))
    make_video(root / "pcm.mkv", size=(64, 48), fps=25, seconds=3, audio="pcm_s16le", rate=22050, clicks=(2.2,))
    make_video(root / "silent.webm", size=(50, 50), fps=24, seconds=2, audio=None, vcodec="libvpx")
    return root


@pytest.fixture(scope="module")
def built(videos, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("shards") / "mine"
    return out, ingest(videos, out, SPEC, shard_size=5, workers=2)


def read_samples(out: Path) -> dict[str, dict]:
    samples = {}
    for shard in read_index(out)["shards"]:
        for raw in wds.WebDataset(str(out / shard["name"]), shardshuffle=False, empty_check=False):
            assert raw["__key__"] not in samples
            samples[raw["__key__"]] = decode_sample(raw, SPEC)
    return samples


def assert_frames(sample: dict, source_fps: float) -> None:
    """Each clip frame shows the source frame on screen at its time (grey levels identify frames)."""
    start = sample["meta"]["clip_start"]
    for j in range(0, SPEC.n_video_frames, 6):
        expected = frame_value(int((start + j / SPEC.fps) * source_fps + 1e-3))
        got = sample["frames"][j, 0, 12:20, 12:20].float().mean().item()
        assert abs(got - expected) <= 3, (sample["key"], j, got, expected)


def assert_click(sample: dict, at: float) -> None:
    peak = int(np.abs(sample["audio"].numpy()).argmax())
    assert abs(peak - at * SPEC.sample_rate) <= 0.010 * SPEC.sample_rate, (sample["key"], peak / SPEC.sample_rate, at)


def test_folder_to_shards_round_trip(built):
    out, index = built
    assert index["samples"] == 4 + 3 + 3 + 2 and index["complete"]
    assert [s["samples"] for s in index["shards"]] == [5, 5, 2]
    assert index["skipped"] == [] and index["counts"]["notes"] == {"no_audio": 1}
    assert not list(out.glob("*.tmp")) and not (out / ".hydra").exists()

    module = ShardDataModule(root=str(out.parent), spec=SPEC, eval_batch_size=4, num_workers=0, test_split=out.name)
    batches = list(module.test_dataloader())
    keys = [k for b in batches for k in b["key"]]
    assert len(keys) == 12 == len(set(keys)) and all(KEY.match(k) for k in keys)
    assert batches[0]["frames"].shape == (4, 25, 3, 32, 32) and batches[0]["audio"].shape == (4, 16000)

    samples = read_samples(out)
    clicks = sorted(k for k in samples if k.startswith("clicks_"))
    assert [k[-9:] for k in clicks] == ["000000000", "000001000", "000002000", "000003000"]
    assert clicks[0] == clip_key("clicks.mp4", 0.0)
    for key, click in zip(clicks, CLICKS, strict=True):
        sample = samples[key]
        assert sample["meta"]["caption"] == "a click every second" and sample["meta"]["has_audio"]
        assert_click(sample, click - sample["meta"]["clip_start"])
        assert_frames(sample, 30)

    square = [s for k, s in samples.items() if k.startswith("sub_dir_square_")]
    meta = square[0]["meta"]
    assert len(square) == 3 and meta["source"] == "sub dir/square.mp4"
    assert (meta["caption"], meta["transcript"], meta["negative_caption"], meta["license"], meta["origin"]) == (
        "a grey square", "hello there", "music", "CC-BY-4.0", "https://example.org/v/1")
    assert meta["events"] == [] and meta["fps"] == 25 and meta["sample_rate"] == 16000 and meta["duration"] == 1.0
    assert_click(next(s for s in square if s["meta"]["clip_start"] == 1.0), 0.2)
    for sample in square:
        assert_frames(sample, 24)
    pcm = next(s for k, s in samples.items() if k.startswith("pcm_") and s["meta"]["clip_start"] == 2.0)
    assert_click(pcm, 0.2)
    assert_frames(pcm, 25)
    silent = [s for k, s in samples.items() if k.startswith("silent_")]
    assert len(silent) == 2 and not silent[0]["meta"]["has_audio"] and silent[0]["audio"].abs().max() == 0
    assert_frames(silent[1], 24)


def test_resume_rebuilds_only_the_missing_shard(built, videos):
    out, first = built
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")}
    (out / "mine-000001.tar").unlink()  # as if the run had died before this shard was finished
    (out / "mine-000002.tar.tmp").write_bytes(b"half a shard")  # and left this behind
    again = ingest(videos, out, SPEC, shard_size=5, workers=0)
    assert again["samples"] == first["samples"] and again["complete"]
    assert [s["sha256"] for s in again["shards"]] == [s["sha256"] for s in first["shards"]]  # identical rebuild
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")}
    assert after["mine-000000.tar"] == stamps["mine-000000.tar"] and after["mine-000002.tar"] == stamps["mine-000002.tar"]
    assert not list(out.glob("*.tmp")) and len(read_samples(out)) == 12  # no duplicate keys
    assert again["notes"] == first["notes"]  # planning notes recorded once
    with pytest.raises(IngestError, match="other inputs or settings"):
        ingest(videos, out, ClipSpec(duration=2.0, image_size=32), shard_size=5, workers=0)


def test_manifests_with_ranges_and_bad_rows(videos, tmp_path):
    (videos / "list.csv").write_text(
        "path,start,end,caption\n"
        "clicks.mp4,1.0,3.0,from the csv\n"
        "sub dir/square.mp4,,,\n"  # sidecar text, whole video
        "missing.mp4,,,\n"
        "clicks.mp4,abc,,\n"
        "clicks.mp4,2.0,1.0,\n"
        "pcm.mkv,100,,\n"  # starts past the end
        "clicks.mp4,2.0,3.0,\n"  # the same clip as row 1's second: a duplicate key
        "silent.webm,,,\n"  # no audio, refused with no_audio=skip
        ",1,2,\n"
    )
    out = tmp_path / "csv"
    index = ingest(videos / "list.csv", out, SPEC, shard_size=4, workers=0, clip_options=ClipOptions(no_audio="skip"))
    kinds = sorted(s["kind"] for s in index["skipped"])
    assert kinds == ["bad_range", "bad_range", "bad_range", "bad_row", "duplicate", "missing", "no_audio"], kinds
    assert all(s["reason"] for s in index["skipped"])
    samples = read_samples(out)
    clicks = sorted(k for k in samples if k.startswith("clicks_"))
    assert [k[-9:] for k in clicks] == ["000001000", "000002000"] and index["samples"] == 5
    second = samples[clicks[1]]
    assert second["meta"]["caption"] == "from the csv"
    assert_click(second, 2.75 - 2.0)
    assert_frames(second, 30)
    square = next(s for k, s in samples.items() if k.startswith("sub_dir_square_"))
    assert square["meta"]["caption"] == "a grey square" and square["meta"]["source"] == "sub dir/square.mp4"

    (tmp_path / "list.jsonl").write_text(
        json.dumps({"path": str(videos / "pcm.mkv"), "start": 1, "end": 2, "transcript": "t"}) + "\n"
        "{not json\n" + json.dumps({"caption": "no path"}) + "\n" + json.dumps(["a", "list"]) + "\n"
    )
    index = ingest(tmp_path / "list.jsonl", tmp_path / "jsonl", SPEC, workers=0)
    assert index["samples"] == 1 and sorted(s["kind"] for s in index["skipped"]) == ["bad_row"] * 3
    (sample,) = read_samples(tmp_path / "jsonl").values()
    assert sample["meta"]["source"] == (videos / "pcm.mkv").resolve().as_posix() and sample["meta"]["transcript"] == "t"


def test_bad_inputs_are_skipped_with_reasons_through_the_cli(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    good = make_video(tmp_path / "good.mp4", size=(32, 32), fps=25, seconds=1.2, rate=16000, clicks=(0.5,)).read_bytes()
    rng = np.random.default_rng(0)
    (bad / "garbage.mp4").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (bad / "truncated.mp4").write_bytes(good[: len(good) // 2])  # moov atom (at the end) cut off
    (bad / "empty.mp4").write_bytes(b"")
    make_audio_only(bad / "audio_only.mp4")
    make_video(bad / "one_frame.mp4", size=(32, 32), fps=25, seconds=0.04, audio=None)
    make_video(bad / "huge.mp4", size=(80, 80), fps=25, seconds=0.08, audio=None)  # > max_resolution=64
    make_video(bad / "long.mp4", size=(16, 16), fps=2, seconds=12, audio=None)  # > max_duration_s=10
    (bad / "folder.mp4").mkdir()
    (bad / "dangling.mkv").symlink_to(bad / "nowhere.mkv")
    (bad / "notes.md").write_text("not a video, ignored")
    kept = ["latin1.mp4", "transcript.mp4", "bad_json.mp4", "with space.mp4", "quo'te\".mp4", "semi;colon.mp4",
            "-leading-dash.mp4", "ünïcødé 视频.mp4"]
    for name in kept:
        (bad / name).write_bytes(good)
    (bad / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (bad / "transcript.json").write_text(json.dumps({"transcript": " ".join(["word"] * 10_000)}))
    (bad / "bad_json.json").write_text("{not json")
    (bad / "-leading-dash.txt").write_text("dash caption")

    cwd, out = tmp_path / "cwd", tmp_path / "out" / "train"
    cwd.mkdir()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "data_prep" / "make_shards.py"), f"input={bad}", f"out={out}", "workers=1",
         "shard_size=3", "max_resolution=64", "max_duration_s=10", "max_transcript_chars=500"],
        cwd=cwd, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert list(cwd.iterdir()) == []  # nothing written to the working directory
    assert not list(out.parent.rglob("*.tmp"))
    index = json.loads((out / "index.json").read_text())
    skipped = {s["path"]: s["kind"] for s in index["skipped"]}
    assert skipped == {
        "garbage.mp4": "unreadable", "truncated.mp4": "unreadable", "empty.mp4": "empty",
        "audio_only.mp4": "no_video", "one_frame.mp4": "too_short", "huge.mp4": "too_large",
        "long.mp4": "too_long", "folder.mp4": "not_a_file", "dangling.mkv": "missing",
    }, index["skipped"]
    assert all(s["path"] in proc.stdout and s["reason"] for s in index["skipped"])  # each skip logged
    notes = {n["path"]: n["kind"] for n in index["notes"]}
    assert notes == {"latin1.mp4": "bad_text", "transcript.mp4": "text_truncated", "bad_json.mp4": "bad_sidecar"}
    samples = read_samples(out)
    assert index["samples"] == len(samples) == len(kept) and all(KEY.match(k) for k in samples)
    by_source = {s["meta"]["source"]: s for s in samples.values()}
    assert sorted(by_source) == sorted(kept)
    assert by_source["latin1.mp4"]["meta"]["caption"] == ""
    assert 0 < len(by_source["transcript.mp4"]["meta"]["transcript"]) <= 500
    assert by_source["-leading-dash.mp4"]["meta"]["caption"] == "dash caption"
    assert_click(by_source["ünïcødé 视频.mp4"], 0.5)

    missing = subprocess.run([sys.executable, str(ROOT / "data_prep" / "make_shards.py"), f"input={tmp_path / 'nope'}",
                              f"out={tmp_path / 'x'}"], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr


def test_clip_windows_and_keys():
    windows = clip_windows(0.0, 3.4, duration=1.0, stride=1.0, min_fraction=0.5, max_clips=None)
    assert windows == [(0.0, 1.0), (1.0, 1.0), (2.0, 1.0)]  # a 0.4 s tail is dropped
    assert clip_windows(0.0, 3.6, duration=1.0, stride=1.0, min_fraction=0.5, max_clips=None)[-1] == pytest.approx((3.0, 0.6))
    assert len(clip_windows(1.0, 10.0, duration=1.0, stride=0.5, min_fraction=1.0, max_clips=None)) == 17
    assert len(clip_windows(0.0, 100.0, duration=1.0, stride=1.0, min_fraction=0.5, max_clips=3)) == 3
    assert clip_windows(0.0, 0.3, duration=1.0, stride=1.0, min_fraction=0.5, max_clips=None) == []
    key = clip_key("a dir/-x;y 'z'.mp4", 2.0)
    assert KEY.match(key) and key.startswith("a_dir_-x_y_z_") and key.endswith("_000002000")
    assert clip_key("a b.mp4", 0) != clip_key("a;b.mp4", 0) and clip_key("视频.mp4", 0).startswith("video_")
    with pytest.raises(ValueError):
        TextPolicy(bad_text="guess")


def test_rotated_video_is_read_upright(tmp_path):
    path = make_video(tmp_path / "phone.mp4", size=(32, 32), fps=25, seconds=0.2, audio=None, rotation=90)
    with av.open(str(path)) as container:
        assert next(container.decode(video=0)).rotation == 90
    frames, _ = read_frames(str(path), np.array([0.0]), origin=0.0, size=32, rotation=90)
    marker = frames[0, :, :, 0] > 200  # the white square, top-left in the coded picture
    assert marker[-3:, :3].all() and not marker[:4, :4].any()  # turned a quarter counter-clockwise


def test_a_failing_shard_is_left_for_a_rerun(videos, tmp_path, monkeypatch):
    import v2a.data.ingest.writer as writer

    real_meta = writer._meta

    def flaky_meta(source, clip, spec):
        if clip[3].startswith("pcm_"):
            raise OSError("disk full (simulated)")
        return real_meta(source, clip, spec)

    monkeypatch.setattr(writer, "_meta", flaky_meta)
    first = ingest(videos, tmp_path / "out", SPEC, shard_size=5, workers=0)
    # pcm.mkv's clips fall in shards 0 and 1 (sources in path order, 5 clips a shard): only shard 2 is written
    assert not first["complete"] and [s["name"] for s in first["shards"]] == ["out-000002.tar"]
    assert first["samples"] == 2 and not list((tmp_path / "out").glob("*.tmp"))
    monkeypatch.setattr(writer, "_meta", real_meta)
    second = ingest(videos, tmp_path / "out", SPEC, shard_size=5, workers=0)
    assert second["complete"] and second["samples"] == 12


def test_config_matches_the_options():
    from dataclasses import fields

    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(CONFIG_DIR / "data_prep"), version_base="1.3"):
        cfg = compose(config_name="shards", overrides=["input=videos", "out=shards/train", "no_audio=skip"])
    for cls in (ClipOptions, TextPolicy):
        assert {f.name for f in fields(cls)} <= set(cfg), cls  # every option is settable from the command line
    assert ClipOptions(**{f.name: cfg[f.name] for f in fields(ClipOptions)}).no_audio == "skip"
    assert instantiate(cfg.spec) == ClipSpec()
