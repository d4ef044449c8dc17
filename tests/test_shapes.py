import pytest
import torch

from v2a.models.denoiser import MelDenoiser
from v2a.shapes import ClipSpec


def test_clip_spec_derives_every_length():
    spec = ClipSpec(duration=2.0, fps=25, sample_rate=16000, hop_length=160, n_mels=80, mel_frames_per_token=2)
    assert spec.mel_rate == 100
    assert spec.token_rate == 50
    assert spec.tokens_per_video_frame == 2
    assert spec.n_video_frames == 50
    assert spec.n_audio_tokens == 100
    assert spec.n_mel_frames == 200
    assert spec.n_samples == 32000
    assert spec.token_dim == 160
    assert spec.with_duration(4.0).n_samples == 64000


@pytest.mark.parametrize(
    "kwargs",
    [dict(fps=30), dict(hop_length=170), dict(duration=0.0), dict(duration=1.01), dict(mel_frames_per_token=3)],
)
def test_clip_spec_rejects_misaligned_grids(kwargs):
    with pytest.raises(ValueError):
        ClipSpec(**kwargs)


def test_visual_tokens_are_aligned_in_time():
    spec = ClipSpec()
    denoiser = MelDenoiser(spec=spec, visual_dim=8, width=32, depth=1, heads=4)
    visual = torch.arange(spec.n_video_frames, dtype=torch.float32)[None, :, None].expand(2, -1, 8)
    aligned = denoiser.align(visual, spec.n_audio_tokens)
    assert aligned.shape == (2, spec.n_audio_tokens, 8)
    frame_of_token = torch.arange(spec.n_audio_tokens) // spec.tokens_per_video_frame
    assert torch.equal(aligned[0, :, 0], frame_of_token.float())


def test_tokenize_round_trip_and_token_time_order():
    spec = ClipSpec()
    denoiser = MelDenoiser(spec=spec, visual_dim=8, width=32, depth=1, heads=4)
    mel = torch.randn(3, spec.n_mels, spec.n_mel_frames)
    tokens = denoiser.tokenize(mel)
    assert tokens.shape == (3, spec.n_audio_tokens, spec.token_dim)
    assert torch.equal(denoiser.untokenize(tokens), mel)
    # token 7 holds mel frames 14 and 15 (and nothing else)
    marked = torch.zeros_like(mel)
    marked[:, :, 14:16] = 1
    assert torch.nonzero(denoiser.tokenize(marked).sum(-1)[0]).flatten().tolist() == [7]


def test_denoiser_output_shape_and_visual_dependence():
    torch.manual_seed(0)
    spec = ClipSpec()
    denoiser = MelDenoiser(spec=spec, visual_dim=8, width=32, depth=1, heads=4)
    for p in denoiser.parameters():  # zero-initialised output layers would hide any dependence
        torch.nn.init.normal_(p, std=0.05)
    x = torch.randn(2, spec.n_mels, spec.n_mel_frames)
    t = torch.rand(2)
    visual, pooled = torch.randn(2, spec.n_video_frames, 8), torch.randn(2, 8)
    out = denoiser(x, t, visual_tokens=visual, pooled=pooled)
    assert out.shape == x.shape
    other = denoiser(x, t, visual_tokens=visual.roll(5, dims=1), pooled=pooled)
    assert not torch.allclose(out, other)
    dropped = denoiser(x, t, visual_tokens=visual, pooled=pooled, visual_mask=torch.tensor([False, False]))
    dropped_other = denoiser(x, t, visual_tokens=visual.roll(5, dims=1), pooled=pooled.flip(0),
                             visual_mask=torch.tensor([False, False]))
    assert torch.allclose(dropped, dropped_other)  # dropped condition: the video no longer matters
