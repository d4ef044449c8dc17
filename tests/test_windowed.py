import pytest
import torch

from v2a.generation.windowed import crossfade_join, generate_long, window_starts
from v2a.shapes import ClipSpec


def test_window_starts_cover_the_video():
    assert window_starts(30, 50, 12) == [0]
    starts = window_starts(230, 50, 12)
    assert starts[0] == 0 and starts[-1] == 180
    assert all(b - a <= 38 for a, b in zip(starts, starts[1:], strict=False))
    with pytest.raises(ValueError):
        window_starts(100, 10, 10)


def test_crossfade_of_equal_windows_is_seamless():
    windows = [torch.full((2, 40), 3.0) for _ in range(4)]
    out = crossfade_join(windows, [0, 30, 60, 80], 120)
    assert out.shape == (2, 120) and torch.allclose(out, torch.full((2, 120), 3.0))


def test_generate_long_has_the_video_length_and_follows_each_window():
    spec = ClipSpec()
    mel_per_frame = spec.tokens_per_video_frame * spec.mel_frames_per_token
    seen = []

    def read_frames(start, count):
        seen.append((start, count))
        return torch.arange(start, start + count, dtype=torch.float32)[:, None, None, None].expand(count, 3, 2, 2)

    def fake_mel(frames):  # mel value = index of the video frame it belongs to
        values = frames[:, :, 0, 0, 0].repeat_interleave(mel_per_frame, dim=1)
        return values[:, None, :].expand(-1, spec.n_mels, -1)

    n_frames = 173  # 6.92 s: several overlapping windows and a partial tail
    mel = generate_long(read_frames, n_frames, spec, fake_mel, overlap_s=0.5, batch_windows=2)
    assert mel.shape == (spec.n_mels, n_frames * mel_per_frame)
    expected = torch.arange(n_frames, dtype=torch.float32).repeat_interleave(mel_per_frame)
    assert torch.allclose(mel[0], expected, atol=1e-4)  # every output frame comes from its own video frame
    assert max(c for _, c in seen) == spec.n_video_frames  # never more than one window of video at a time
    short = generate_long(read_frames, 20, spec, fake_mel)
    assert short.shape == (spec.n_mels, 20 * mel_per_frame)
