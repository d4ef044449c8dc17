"""Muxing generated audio into the input video: drop, keep (second track) or mix the original audio."""

import av
import numpy as np
import pytest

from v2a.media import encode_mp4, mux_audio


def _audio_streams(path):
    with av.open(str(path)) as container:
        return len(container.streams.video), len(container.streams.audio)


def test_mux_modes(tmp_path):
    silent = tmp_path / "silent.mp4"
    silent.write_bytes(encode_mp4(np.zeros((50, 32, 32, 3), np.uint8), 25))
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(32000) / 16000)).astype(np.float32)
    with_sound = mux_audio(silent, tone, 16000, tmp_path / "a.mp4")
    assert _audio_streams(with_sound) == (1, 1)
    assert _audio_streams(mux_audio(with_sound, tone, 16000, tmp_path / "keep.mp4", original_audio="keep")) == (1, 2)
    assert _audio_streams(mux_audio(with_sound, tone, 16000, tmp_path / "mix.mp4", original_audio="mix")) == (1, 1)
    assert _audio_streams(mux_audio(silent, tone, 16000, tmp_path / "k2.mp4", original_audio="keep")) == (1, 1)
    with pytest.raises(ValueError, match="original_audio"):
        mux_audio(silent, tone, 16000, tmp_path / "x.mp4", original_audio="swap")
    assert not list(tmp_path.glob(".*tmp*"))


def test_mux_streams_from_a_file_keeps_the_original_untouched_and_mixes_in_time(tmp_path):
    import soundfile as sf

    from tests.data.videos import make_video
    from v2a.media import decode_audio

    video = make_video(tmp_path / "in.mp4", size=(32, 32), fps=25, seconds=3.0, clicks=(1.5,))  # 44.1 kHz stereo
    generated = tmp_path / "gen.wav"
    tone = (0.2 * np.sin(2 * np.pi * 300 * np.arange(48000) / 16000)).astype(np.float32)
    sf.write(generated, tone, 16000)
    kept = mux_audio(video, generated, 16000, tmp_path / "keep.mkv", original_audio="keep")
    with av.open(str(kept)) as container:
        first, second = container.streams.audio
        assert (first.codec_context.sample_rate, second.codec_context.sample_rate) == (16000, 44100)
        assert second.codec_context.channels == 2  # copied, not re-encoded to mono
        packets = [(p.stream.type, float(p.pts * p.time_base)) for p in container.demux() if p.pts is not None]
    # interleaved: audio packets are spread through the file, not all after the video
    audio_positions = [i for i, (kind, _) in enumerate(packets) if kind == "audio"]
    assert audio_positions[0] < len(packets) // 3
    mixed = mux_audio(video, generated, 16000, tmp_path / "mix.mp4", original_audio="mix")
    audio, rate = decode_audio(mixed)
    envelope = np.abs(audio.mean(0) - 0.5 * np.interp(np.arange(audio.shape[1]) / rate, np.arange(48000) / 16000,
                                                        tone))
    peak = np.argmax(envelope) / rate
    assert abs(peak - 1.5) < 0.05  # the original's click, at its time, under the new audio
