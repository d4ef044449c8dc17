"""v2a.media: frames scaled inside the decoder match decode-then-resize; one audio decoder for bytes and files."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
import soundfile as sf

from tests.data.videos import frame_value, make_video
from v2a.media import (
    audio_blocks,
    decode_audio,
    decode_mono,
    decode_video,
    encode_flac,
    encode_mp4,
    read_frames,
    resample,
    square_resize,
)


def _textured(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth moving blobs (H.264 keeps them; pure noise would test the codec, not the scaling)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    phases = rng.uniform(0, 2 * np.pi, (3, 2))
    frames = [np.stack([np.sin(6 * xx + phases[c, 0] + 0.2 * t) * np.cos(5 * yy + phases[c, 1]) for c in range(3)], -1)
              for t in range(count)]
    return ((np.stack(frames) + 1) * 110 + 15).astype(np.uint8)


@pytest.mark.parametrize("height,width,rotation", [(48, 64, 0), (96, 64, 0), (64, 64, 0), (36, 64, 90), (240, 320, 0)])
def test_frames_scaled_in_the_decoder_match_decode_then_resize(tmp_path, height, width, rotation):
    path = tmp_path / "clip.mp4"
    path.write_bytes(encode_mp4(_textured(10, height, width), 25))
    full, fps = decode_video(path)
    at_size, last = read_frames(path, np.arange(10) / fps, origin=0.0, size=32, rotation=rotation)
    reference = square_resize(np.rot90(full, rotation // 90, axes=(1, 2)), 32)
    assert at_size.shape == reference.shape == (10, 32, 32, 3) and last == pytest.approx(9 / 25)
    error = np.abs(at_size.astype(int) - reference.astype(int))
    assert error.mean() < 1.5 and np.percentile(error, 99) <= 5, (error.mean(), np.percentile(error, 99))


def test_rotation_and_mpegts_are_read_as_shown(tmp_path):
    phone = make_video(tmp_path / "phone.mp4", size=(48, 32), fps=25, seconds=0.2, audio=None, rotation=90)
    frames, _ = decode_video(phone.read_bytes())  # shard bytes take the same path as files
    assert frames.shape[1:] == (48, 32, 3)  # upright: portrait
    marker = frames[0, :, :, 0] > 200  # the white square, top-left in the coded picture
    assert marker[-3:, :3].all() and not marker[:4, :4].any()
    ts = make_video(tmp_path / "clip.ts", size=(32, 32), fps=30, seconds=1.0, audio=None, fmt="mpegts")
    direct, _ = decode_video(ts)
    at_times, _ = read_frames(ts, np.arange(30) / 30, origin=0.0, size=32)
    assert np.abs(direct.astype(int) - at_times.astype(int)).max() == 0


def test_mpegts_seeks_that_land_after_the_target_go_back(tmp_path):
    """ffmpeg's MPEG-TS seek lands on the keyframe *after* the target: frames must still be the ones on screen."""
    path = tmp_path / "gop.ts"
    with av.open(str(path), "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": "50", "keyint_min": "50", "sc_threshold": "0"}  # keyframes at 0, 2, 4 s
        for index in range(150):
            image = av.VideoFrame.from_ndarray(np.full((32, 48, 3), frame_value(index), np.uint8), format="rgb24")
            for packet in stream.encode(image):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    for start in (1.3, 2.3, 3.3):
        frames, _ = read_frames(path, start + np.arange(5) / 25, origin=0.0, size=32)
        expected = [frame_value(round(start * 25) + k) for k in range(5)]
        np.testing.assert_allclose(frames.mean(axis=(1, 2, 3)), expected, atol=3)


def test_one_audio_decoder_for_bytes_and_files(tmp_path):
    rng = np.random.default_rng(0)
    stereo = (0.2 * rng.standard_normal((2, 44100))).astype(np.float32)
    path = tmp_path / "a.wav"
    sf.write(path, stereo.T, 44100, subtype="FLOAT")
    from_file, from_bytes = decode_mono(path, 16000), decode_mono(path.read_bytes(), 16000)
    assert from_file.dtype == np.float32 and np.array_equal(from_file, from_bytes)
    np.testing.assert_allclose(from_file, resample(stereo.mean(axis=0), 44100, 16000), atol=1e-6)
    flac = encode_flac(stereo[0], 16000)
    expected, _ = sf.read(io.BytesIO(flac), dtype="float32")
    assert np.array_equal(decode_mono(flac, 16000), expected)  # 16-bit PCM decodes exactly as libsndfile does
    channels, rate = decode_audio(io.BytesIO(path.read_bytes()))
    assert rate == 44100 and channels.shape == (2, 44100) and np.array_equal(channels, stereo)


def test_audio_blocks_reblock_a_file_lazily(tmp_path):
    tone = (0.3 * np.sin(np.arange(5000) / 7)).astype(np.float32)
    path = tmp_path / "t.flac"
    sf.write(path, tone, 16000, subtype="PCM_16")
    blocks = list(audio_blocks(path, 1024))
    assert [len(b) for b in blocks] == [1024] * 4 + [904]
    np.testing.assert_allclose(np.concatenate(blocks), tone, atol=1 / 32768)
    assert [len(b) for b in audio_blocks(tone, 2000)] == [2000, 2000, 1000]


def test_aac_in_a_video_decodes_at_its_rate(tmp_path):
    path = make_video(tmp_path / "v.mp4", size=(32, 32), fps=25, seconds=1.0, rate=44100, clicks=(0.5,))
    audio, rate = decode_audio(path)
    assert rate == 44100 and audio.shape[0] == 2
    mono = decode_mono(path, 16000)
    assert abs(int(np.abs(mono).argmax()) - 8000) < 0.02 * 16000  # the click at 0.5 s (AAC priming < 20 ms)
    with av.open(str(path)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
