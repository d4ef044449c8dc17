"""What generation reads: user videos as training saw them (rotation, MPEG-TS, centre crop), text options."""

import hashlib
import math

import numpy as np
import pytest

import v2a.media.video as media_video
from tests.data.videos import frame_value, make_audio_only, make_video
from v2a.generation.options import model_sha256, read_text_option
from v2a.media import VideoInputError, encode_mp4, open_video, read_windows
from v2a.pipeline.video import check_texts
from v2a.shapes import ClipSpec

SPEC = ClipSpec()  # 25 fps, 32 x 32


def _grey(frames):
    return frames[..., 8:, 8:].float().mean(dim=(-3, -2, -1))  # away from the white marker


@pytest.mark.parametrize("fmt,suffix", [(None, ".mp4"), ("mpegts", ".ts")])
def test_frames_are_the_ones_on_screen_at_model_times(tmp_path, fmt, suffix):
    path = make_video(tmp_path / f"clip{suffix}", fps=30, seconds=3.0, fmt=fmt)
    video = open_video(path)
    assert video.fps == pytest.approx(30) and video.duration == pytest.approx(3.0, abs=0.04)
    frames = read_windows(video, [0, 30], 10, SPEC)  # the second window starts at 1.2 s: read after a seek
    assert frames.shape == (2, 10, 3, 32, 32) and frames.dtype.__str__() == "torch.uint8"
    for window, start in enumerate((0, 30)):
        expected = [frame_value(math.floor((start + k) * 30 / 25 + 1e-6)) for k in range(10)]
        np.testing.assert_allclose(_grey(frames[window]).numpy(), expected, atol=3)


def test_phone_rotation_is_applied(tmp_path):
    upright = open_video(make_video(tmp_path / "plain.mp4", size=(32, 32), seconds=0.4, audio=None))
    phone = open_video(make_video(tmp_path / "phone.mp4", size=(32, 32), seconds=0.4, audio=None, rotation=90))
    assert phone.info.rotation == 90 and upright.info.rotation == 0
    marker = read_windows(phone, [0], 2, SPEC)[0, 0, 0] > 200  # the white square, top-left when coded
    assert marker[-3:, :3].all() and not marker[:4, :4].any()  # shown a quarter turn counter-clockwise
    marker = read_windows(upright, [0], 2, SPEC)[0, 0, 0] > 200
    assert marker[:3, :3].all() and not marker[-4:, :4].any()


def test_wide_video_is_centre_cropped_not_squashed(tmp_path):
    frames = np.zeros((5, 32, 96, 3), np.uint8)
    frames[:, :, :32], frames[:, :, 32:64], frames[:, :, 64:] = 40, 130, 220  # thirds
    path = tmp_path / "wide.mp4"
    path.write_bytes(encode_mp4(frames, 25))
    out = read_windows(open_video(path), [0], 3, SPEC).float()
    assert out.shape[-2:] == (32, 32) and (out[..., 2:-2] - 130).abs().max() <= 6  # only the middle third


def test_windows_decode_only_what_they_need(tmp_path, monkeypatch):
    """Each batch asks the reader for its own frame times once (streaming), never for the whole video."""
    video = open_video(make_video(tmp_path / "long.mp4", size=(48, 32), fps=25, seconds=8.0, audio=None))
    asked = []
    real = media_video.read_frames

    def spy(path, times, **kwargs):
        asked.append(np.asarray(times))
        return real(path, times, **kwargs)

    monkeypatch.setattr(media_video, "read_frames", spy)
    read_windows(video, [100, 138], 50, SPEC)
    (times,) = asked
    assert len(times) == 88 and np.all(np.diff(times) > 0)  # shared frames of overlapping windows read once
    assert times[0] == pytest.approx(4.0) and times[-1] == pytest.approx(187 / 25)


def test_unusable_videos_say_why(tmp_path):
    (tmp_path / "folder.mp4").mkdir()
    (tmp_path / "garbage.mp4").write_bytes(bytes(range(256)) * 20)
    cases = {
        tmp_path / "missing.mp4": "no such file",
        tmp_path / "folder.mp4": "not a file",
        tmp_path / "garbage.mp4": "unreadable",
        make_audio_only(tmp_path / "sound.mp4"): "no video stream",
    }
    for path, reason in cases.items():
        with pytest.raises(VideoInputError, match=reason):
            open_video(path)


def test_text_options_are_text_or_utf8_files(tmp_path):
    assert read_text_option("transcript", None) is None
    assert read_text_option("transcript", "Hello there. General Kenobi.") == "Hello there. General Kenobi."
    good = tmp_path / "lines.txt"
    good.write_text("Bonjour à tous\n", encoding="utf-8")
    assert read_text_option("transcript", str(good)) == "Bonjour à tous\n"
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        read_text_option("transcript", str(latin))
    with pytest.raises(ValueError, match="does not exist"):
        read_text_option("transcript", str(tmp_path / "typo.txt"))
    assert read_text_option("prompt", "rain on a tin roof.txt") == "rain on a tin roof.txt"  # spaces: text


def test_text_inputs_are_refused_by_video_only_models(tmp_path):
    from types import SimpleNamespace

    def model(inputs, streams, tokenizer):
        return SimpleNamespace(text_inputs=inputs, net=SimpleNamespace(text_streams=streams),
                               text_conditioning=SimpleNamespace(tokenizer=tokenizer))

    video_only, prompted = model((), (), None), model(("prompt", "negative_prompt"), ("prompt",), object())
    check_texts(video_only, {"prompt": None, "transcript": ""})
    with pytest.raises(ValueError, match="no conditioning for prompt, transcript .*video only"):
        check_texts(video_only, {"prompt": "dog", "transcript": "hi"})
    check_texts(prompted, {"prompt": "dog", "negative_prompt": "music"})
    with pytest.raises(ValueError, match="no conditioning for transcript"):
        check_texts(prompted, {"prompt": "dog", "transcript": "hi"})
    with pytest.raises(ValueError, match="no tokenizer"):
        check_texts(model(("prompt",), ("prompt",), None), {"prompt": "dog"})
    check_texts(model(("transcript",), (), None), {"transcript": "hi"})  # a phoneme track needs no tokenizer
    export = tmp_path / "export"
    export.mkdir()
    assert model_sha256(export) is None
    (export / "model.safetensors").write_bytes(b"weights")
    assert model_sha256(export) == hashlib.sha256(b"weights").hexdigest()
