"""v2a.media audio: the writer round-trips through the decoder and never leaves half files."""

from __future__ import annotations

import numpy as np
import pytest

from v2a.media import decode_audio, write_audio

SR = 16_000


def _tone(seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".mp3", ".m4a"])
def test_write_round_trips(tmp_path, suffix: str) -> None:
    path = write_audio(tmp_path / f"a{suffix}", _tone(), SR)
    audio, sr = decode_audio(path)
    assert sr == SR and audio.shape[0] == 1
    n = min(audio.shape[1], SR)
    assert abs(audio.shape[1] - SR) < 0.1 * SR                    # codecs pad a little
    lossless = suffix in (".wav", ".flac")
    assert np.sqrt(np.mean(audio[0, :n] ** 2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.02 if lossless else 0.15)
    assert [p.name for p in tmp_path.iterdir()] == [f"a{suffix}"]  # no temporary file left behind


def test_failed_write_keeps_the_old_file(tmp_path) -> None:
    path = write_audio(tmp_path / "a.wav", _tone(), SR)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="channels, samples"):
        write_audio(path, np.full(SR, np.nan, dtype=np.float32)[None, None], SR)   # 3-D: refused
    with pytest.raises(ValueError, match="unknown audio format"):
        write_audio(tmp_path / "b.unknownformat", _tone(), SR)                      # no writer for it
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav"]
