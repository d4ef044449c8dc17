"""The Python API: ``audio, sr = pipe(video, ...)`` in memory and ``pipe.generate_to(video, out)`` on disk."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.data.videos import make_video
from v2a.media import decode_audio, probe
from v2a.utils.timing import StageClock

KEY = "api-test-key"


@pytest.fixture(scope="module")
def pipe(one_step_checkpoint):
    from v2a import V2APipeline

    return V2APipeline.from_pretrained(Path(one_step_checkpoint).parent.parent / "export")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api_videos")
    return [make_video(folder / "long.mp4", size=(80, 48), fps=30, seconds=4.7),
            make_video(folder / "short.mp4", size=(48, 48), fps=24, seconds=1.3, audio=None)]


def test_call_in_memory_equals_v2a_generate_on_the_file(pipe, one_step_checkpoint, videos, tmp_path, monkeypatch):
    from v2a.generation.job import generate
    from v2a.watermark import Watermarker

    monkeypatch.setenv("V2A_WATERMARK_KEY", KEY)
    audio, sr = pipe(str(videos[0]), seed=5, steps=2)
    assert sr == pipe.spec.sample_rate and audio.dtype == np.float32 and audio.shape == (round(4.7 * sr),)
    export = Path(one_step_checkpoint).parent.parent / "export"
    written = generate(video=str(videos[0]), ckpt=str(export), out=str(tmp_path / "cli.mp4"), seed=5, steps=2,
                       watermarker=Watermarker(key=KEY))[0]
    reference, _ = sf.read(written["audio"], dtype="float32")
    np.testing.assert_allclose(audio, reference, atol=1.5 / 32768)  # the same soundtrack, up to the 16-bit wav
    assert Watermarker(key=KEY).detect(audio, sr).p_value < 1e-4  # marked by default
    unmarked, _ = pipe(str(videos[0]), seed=5, steps=2, watermark=False)
    assert Watermarker(key=KEY).detect(unmarked, sr).p_value > 1e-3
    other, _ = pipe(str(videos[0]), seed=6, steps=2)
    assert np.abs(other - audio).max() > 1e-3  # the seed matters


def test_a_batch_of_videos_and_frames_in_memory(pipe, videos):
    batch, sr = pipe([str(v) for v in videos], seed=1, steps=1, watermark=False)
    assert [len(a) for a in batch] == [round(4.7 * sr), round(31 / 24 * sr)]  # 31 frames at 24 fps
    alone, _ = pipe(str(videos[1]), seed=1, steps=1, watermark=False)
    np.testing.assert_array_equal(batch[1], alone)  # each video as if alone
    frames = np.random.default_rng(0).integers(0, 255, (45, 60, 90, 3), dtype=np.uint8)  # 1.5 s at 30 fps
    audio, _ = pipe(frames, fps=30, steps=1, watermark=False)
    assert audio.shape == (round(1.5 * sr),) and np.isfinite(audio).all()
    channels_first, _ = pipe(frames.transpose(0, 3, 1, 2).copy(), fps=30, steps=1, watermark=False)
    np.testing.assert_array_equal(audio, channels_first)
    clip, _ = pipe(str(videos[0]), duration=2.5, steps=1, watermark=False)
    assert len(clip) == round(2.5 * sr)


def test_generate_to_writes_the_muxed_video_audio_and_sidecar(pipe, videos, tmp_path):
    clock = StageClock()
    result = pipe.generate_to(str(videos[0]), tmp_path / "one.mp4", seed=2, steps=1, clock=clock)
    out = Path(result["video"])
    info = probe(str(out), max_resolution=8192, max_duration_s=3600)
    assert abs(info.duration - 4.7) < 0.1
    audio, rate = decode_audio(out)
    assert rate == pipe.spec.sample_rate and abs(audio.shape[-1] / rate - 4.7) < 0.1
    assert json.loads(out.with_suffix(".json").read_text())["seed"] == 2 and Path(result["audio"]).exists()
    assert {"decode+resize", "visual encoder", "sampling", "vocoder", "watermark", "mux"} <= set(clock.seconds)
    many = pipe.generate_to([str(v) for v in videos], tmp_path / "folder", steps=1, watermark=False)
    assert [Path(r["video"]).name for r in many] == ["long_v2a.mp4", "short_v2a.mp4"]
    assert all(Path(r["video"]).exists() and Path(r["audio"]).exists() for r in many)


def test_clear_errors_before_any_work(pipe, videos, tmp_path):
    with pytest.raises(ValueError, match="must end in"):
        pipe.generate_to(str(videos[0]), tmp_path / "out.wav")
    with pytest.raises(ValueError, match="no conditioning for prompt"):
        pipe(str(videos[0]), prompt="a dog barking")  # a video-only model
    with pytest.raises(ValueError, match="2 values for 1 videos|one per video"):
        pipe([str(videos[0])], prompt=["a", "b"])
    with pytest.raises(ValueError, match="uint8"):
        pipe(np.zeros((10, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="give a video file"):
        pipe.generate_to(np.zeros((10, 32, 32, 3), np.uint8), tmp_path / "x.mp4")
    from v2a.media import VideoInputError

    with pytest.raises(VideoInputError, match="no such file"):
        pipe(str(tmp_path / "missing.mp4"))
