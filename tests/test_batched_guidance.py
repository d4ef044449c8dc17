"""Classifier-free guidance as one batched forward (2B rows) equals the two-forward formula."""

import pytest
import torch

from v2a.audio.mel import LogMel
from v2a.diffusion import ODESampler, guided_velocity
from v2a.models.denoiser import MelDenoiser
from v2a.models.phoneme_track import PhonemeTrackEncoder
from v2a.models.text_encoder import TextEncoder
from v2a.models.v2a_net import V2ANet
from v2a.models.visual_encoder import FrameCNNEncoder
from v2a.models.vocoder import GriffinLimVocoder
from v2a.pipeline import V2APipeline
from v2a.pipeline.pipeline import stack_conditions
from v2a.shapes import MODALITIES, ClipSpec

SPEC = ClipSpec(duration=1.0)


def pipeline(*, prompt: bool, transcript: bool, phonemes: bool) -> V2APipeline:
    torch.manual_seed(0)
    streams = [name for name, on in (("prompt", prompt), ("transcript", transcript)) if on]
    text = {f"{name}_encoder": TextEncoder(vocab_size=50, dim=16, depth=1, heads=2) for name in streams}
    net = V2ANet(visual_encoder=FrameCNNEncoder(dim=16, channels=(8, 8), temporal_layers=1),
                 denoiser=MelDenoiser(spec=SPEC, visual_dim=16, width=32, depth=2, heads=2,
                                      text_dim=16 if streams else None, text_streams=streams,
                                      phoneme_dim=16 if phonemes else None),
                 phoneme_encoder=PhonemeTrackEncoder(vocab_size=20, dim=16, layers=1) if phonemes else None, **text)
    with torch.no_grad():  # every zero-initialised path live
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    features = LogMel(spec=SPEC)
    return V2APipeline(net=net.eval(), features=features, sampler=ODESampler(steps=1),
                       vocoder=GriffinLimVocoder(features=features, n_iter=1), cfg_scale=2.5)


def ids(rows: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(rows, length, dtype=torch.bool)
    mask[0, length - 2:] = False  # a padded row
    return torch.randint(1, 50, (rows, length), generator=g), mask


@pytest.mark.parametrize("kind", ["video", "text", "text+phonemes"])
@pytest.mark.parametrize("negative", [False, True])
def test_one_batched_forward_is_the_two_forward_formula(kind, negative):
    if kind == "video" and negative:
        pytest.skip("a video-only model takes no negative prompt")
    text = kind != "video"
    pipe = pipeline(prompt=text, transcript=kind == "text", phonemes=kind == "text+phonemes")
    net, rows, scale = pipe.net, 2, 2.5
    frames = torch.randint(0, 255, (rows, SPEC.n_video_frames, 3, 32, 32), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(1))
    kwargs = {}
    if text:
        kwargs["prompt"] = ids(rows, 7, 2)
        if kind == "text":
            kwargs["transcript"] = ids(rows, 5, 3)
        if negative:
            kwargs["negative_prompt"] = ids(rows, 4, 4)  # shorter than the prompt: padded in the batch of 2B
    phonemes = None
    if kind == "text+phonemes":
        g = torch.Generator().manual_seed(5)
        phonemes = (torch.randint(0, 20, (rows, SPEC.n_audio_tokens), generator=g), torch.rand(rows, SPEC.n_audio_tokens, generator=g))
    x = torch.randn(rows, SPEC.n_mels, SPEC.n_mel_frames, generator=torch.Generator().manual_seed(6))
    t = torch.full((rows,), 0.3)

    calls = []
    hook = net.denoiser.register_forward_hook(lambda _m, args, _out: calls.append(args[0].shape[0]))
    batched = pipe.guided_velocity(frames, cfg_scale=scale, phonemes=phonemes, **kwargs)(x, t)
    hook.remove()
    assert calls == [2 * rows]  # one network pass of 2B rows

    with torch.no_grad():  # the reference: two passes, as before
        texts = {name: kwargs[name] for name in ("prompt", "transcript") if name in kwargs}
        cond = net(frames=frames, text=texts or None, phonemes=phonemes)
        on, off = torch.ones(rows, dtype=torch.bool), torch.zeros(rows, dtype=torch.bool)
        uncond, keep = dict(cond), dict.fromkeys(MODALITIES, off)
        if negative:
            uncond.update(net(text={"prompt": kwargs["negative_prompt"]}))
            keep["prompt"] = on
        conditional = lambda x, t: net(x, t, cond, on)  # noqa: E731
        unconditional = (lambda x, t: net(x, t, uncond, off)) if kind == "video" else (lambda x, t: net(x, t, uncond, keep))  # noqa: E731
        reference = guided_velocity(conditional, unconditional, scale)(x, t)
    torch.testing.assert_close(batched, reference, atol=1e-5, rtol=1e-5)
    assert (reference - conditional(x, t)).abs().max() > 1e-3  # guidance really did something


def test_scale_one_and_kept_video_need_one_pass_of_b_rows():
    pipe = pipeline(prompt=False, transcript=False, phonemes=False)
    frames = torch.zeros(3, SPEC.n_video_frames, 3, 32, 32, dtype=torch.uint8)
    x, t = torch.randn(3, SPEC.n_mels, SPEC.n_mel_frames), torch.full((3,), 0.5)
    calls = []
    pipe.net.denoiser.register_forward_hook(lambda _m, args, _out: calls.append(args[0].shape[0]))
    pipe.guided_velocity(frames, cfg_scale=1.0)(x, t)
    pipe.guided_velocity(frames, cfg_modalities=["prompt"])(x, t)  # nothing this model reads is dropped
    assert calls == [3, 3]


def test_stack_conditions_pads_text_of_different_lengths():
    a = {"prompt_tokens": torch.ones(2, 3, 4), "prompt_mask": torch.ones(2, 3, dtype=torch.bool), "pooled": torch.ones(2, 4)}
    b = {"prompt_tokens": torch.ones(2, 5, 4), "prompt_mask": torch.ones(2, 5, dtype=torch.bool), "pooled": torch.zeros(2, 4)}
    both = stack_conditions(a, b)
    assert both["prompt_tokens"].shape == (4, 5, 4) and both["pooled"].shape == (4, 4)
    assert both["prompt_mask"][:2, 3:].sum() == 0 and both["prompt_mask"][2:].all()
    with pytest.raises(ValueError, match="conditions differ"):
        stack_conditions(a, {"pooled": torch.ones(2, 4)})
