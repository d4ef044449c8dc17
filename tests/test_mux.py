"""Muxing generated audio into the input video: drop, keep (second track) or mix the original audio."""

import av
import numpy as np
import pytest

from v2a.data.media import encode_mp4
from v2a.generation.mux import mux_audio


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
