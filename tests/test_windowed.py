"""Windowed generation: windows cover the video, crossfades are seamless, and the mel streams out in order."""

import pytest
import torch

from v2a.pipeline.windowed import crossfade_join, generate_long, stream_mel, window_starts
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


def _fake(spec):
    mel_per_frame = spec.tokens_per_video_frame * spec.mel_frames_per_token
    seen = []

    def read_windows(starts, count):
        seen.append((list(starts), count))
        index = torch.tensor(starts)[:, None] + torch.arange(count)[None, :]
        return index.float()[:, :, None, None, None].expand(-1, -1, 3, 2, 2)

    def fake_mel(frames, starts):  # mel value = index of the video frame it belongs to
        values = frames[:, :, 0, 0, 0].repeat_interleave(mel_per_frame, dim=1)
        return values[:, None, :].expand(-1, spec.n_mels, -1)

    return read_windows, fake_mel, seen, mel_per_frame


def test_generate_long_has_the_video_length_and_follows_each_window():
    spec = ClipSpec()
    read_windows, fake_mel, seen, mel_per_frame = _fake(spec)
    n_frames = 173  # 6.92 s: several overlapping windows and a partial tail
    mel = generate_long(read_windows, n_frames, spec, fake_mel, overlap_s=0.5, batch_windows=2)
    assert mel.shape == (spec.n_mels, n_frames * mel_per_frame)
    expected = torch.arange(n_frames, dtype=torch.float32).repeat_interleave(mel_per_frame)
    assert torch.allclose(mel[0], expected, atol=1e-4)  # every output frame comes from its own video frame
    assert all(len(starts) <= 2 and count == spec.n_video_frames for starts, count in seen)  # 2 windows at a time
    short = generate_long(read_windows, 20, spec, fake_mel)
    assert short.shape == (spec.n_mels, 20 * mel_per_frame)


def test_stream_mel_yields_final_pieces_as_it_goes():
    """The joined mel comes out batch by batch (bounded memory), equal to joining everything at the end."""
    spec = ClipSpec()
    read_windows, _, seen, mel_per_frame = _fake(spec)
    torch.manual_seed(0)
    noise = {}

    def random_mel(frames, starts):  # a different random mel per window: the crossfade really mixes
        assert starts == frames[:, 0, 0, 0, 0].long().tolist()  # the start frames of the windows in the batch
        return torch.stack([noise.setdefault(s, torch.randn(spec.n_mels, spec.n_video_frames * mel_per_frame))
                            for s in starts])

    n_frames = 500  # 20 s, 14 windows
    pieces = []
    for piece in stream_mel(read_windows, n_frames, spec, random_mel, overlap_s=0.5, batch_windows=3):
        pieces.append(piece)
        assert len(seen) <= len(pieces) + 1  # a piece is out before the next batch is even read
    assert len(pieces) >= 4 and max(p.shape[1] for p in pieces) < n_frames * mel_per_frame / 2
    streamed = torch.cat(pieces, dim=1)
    starts = window_starts(n_frames, spec.n_video_frames, round(0.5 * spec.fps))
    joined = crossfade_join([noise[s] for s in starts], [s * mel_per_frame for s in starts],
                            n_frames * mel_per_frame, ramp=round(0.5 * spec.fps) * mel_per_frame)
    assert torch.allclose(streamed, joined, atol=1e-5)
