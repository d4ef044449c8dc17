"""Muxing generated audio into the input video: drop, keep (second track) or mix the original audio."""

import av
import numpy as np
import pytest

from v2a.media import MuxError, decode_audio, encode_mp4, mux, mux_audio


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


# --- every input: copies that lose no packet, lossless kept audio, codecs a container cannot hold ---------------

def _packets(path, kind="video"):
    """(pts in seconds, keyframe) of every non-empty packet of the first stream of ``kind``."""
    with av.open(str(path)) as container:
        stream = getattr(container.streams, kind)[0]
        return [(round(float(p.pts * p.time_base), 4), p.is_keyframe) for p in container.demux(stream) if p.size]


@pytest.mark.parametrize("source", ["bframes.mkv", "bframes.mp4"])
@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov"])
def test_copied_b_frame_video_keeps_every_packet(tmp_path, source, suffix):
    from tests.media_corpus import encode

    path = encode(tmp_path / source, "libx264", frames=60, options={"preset": "medium", "bf": "3"})
    with av.open(str(path)) as container:  # the demuxer gives MKV's first packets, keyframe included, no dts
        missing_dts = sum(p.dts is None for p in container.demux(container.streams.video[0]) if p.size)
    if source.endswith(".mkv"):
        assert missing_dts > 0
    muxed = mux(path, np.zeros(int(2.4 * 16000), np.float32), 16000, tmp_path / f"out{suffix}")
    assert muxed.video == "copied"
    before, after = _packets(path), _packets(muxed.path)
    assert sorted(after) == sorted(before) and after[0][1]  # same frames, same times, a keyframe first
    with av.open(str(muxed.path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 60


@pytest.mark.parametrize("suffix,kept_codec", [(".mp4", "flac"), (".mkv", "pcm_s24le"), (".mov", "pcm_s24le")])
def test_kept_192k_24bit_audio_is_bit_exact(tmp_path, suffix, kept_codec):
    from tests.media_corpus import pcm_192k
    from v2a.media.audio_io import frame_samples

    source = tmp_path / "studio.mov"
    pcm_192k(source)
    original, rate = decode_audio(source)
    muxed = mux(source, np.zeros(16000, np.float32), 16000, tmp_path / f"out{suffix}", original_audio="keep")
    assert (muxed.original_audio == "copied") == (kept_codec != "flac")  # an mp4 'ipcm' track plays as noise
    with av.open(str(muxed.path)) as container:
        stream = container.streams.audio[1]
        assert (stream.codec_context.name, stream.codec_context.sample_rate) == (kept_codec, 192000)
        kept = np.concatenate([frame_samples(f) for f in container.decode(stream)], axis=1)
    assert kept.shape == original.shape and np.array_equal(kept, original)  # every sample, all 24 bits


def test_codecs_a_container_cannot_hold_are_re_encoded_or_refused(tmp_path):
    from tests.media_corpus import encode

    cinepak = encode(tmp_path / "old.avi", "cinepak", pix_fmt="rgb24")
    tone = np.zeros(16000, np.float32)
    auto = mux(cinepak, tone, 16000, tmp_path / "auto.mp4")
    assert auto.video.startswith("re-encoded as h264") and "cinepak" in auto.video
    assert mux(cinepak, tone, 16000, tmp_path / "in.mov").video == "copied"  # a .mov holds Cinepak
    with pytest.raises(MuxError, match="video_codec=auto"):
        mux(cinepak, tone, 16000, tmp_path / "copy.mp4", video_codec="copy")
    h264 = encode(tmp_path / "new.mp4", "libx264")
    assert mux(h264, tone, 16000, tmp_path / "forced.mp4", video_codec="h264").video.startswith("re-encoded")
    assert not (tmp_path / "copy.mp4").exists() and not list(tmp_path.glob(".*"))


def test_audio_and_video_always_last_equally_long(tmp_path):
    from tests.media_checks import audio_extent, video_extent
    from tests.media_corpus import encode

    video = encode(tmp_path / "in.mkv", "libx264", frames=50, options={"bf": "2"})  # 2 s
    for seconds in (0.7, 2.0, 3.5):  # shorter: the video is cut there; longer: the audio is cut at the video's end
        muxed = mux(video, np.full(int(seconds * 16000), 0.1, np.float32), 16000, tmp_path / f"o{seconds}.mp4")
        start, end, frame = video_extent(muxed.path)
        assert abs((end - start) - min(seconds, 2.0)) <= frame and abs(audio_extent(muxed.path)[1] - (end - start)) <= frame
        assert (muxed.video == "copied") == (seconds >= 2.0)
    with pytest.raises(MuxError, match="shorter than the video"):
        mux(video, np.zeros(8000, np.float32), 16000, tmp_path / "c.mp4", video_codec="copy")


def test_the_output_is_never_the_input(tmp_path):
    video = tmp_path / "film.mp4"
    video.write_bytes(encode_mp4(np.zeros((10, 32, 32, 3), np.uint8), 25))
    before = video.read_bytes()
    for out in (video, tmp_path / "." / "film.mp4"):
        with pytest.raises(MuxError, match="is the input"):
            mux(video, np.zeros(8000, np.float32), 16000, out)
    assert video.read_bytes() == before
