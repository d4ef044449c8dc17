"""Text conditioning: prompt / negative prompt / transcript encoders, cross-attention, per-modality dropout, CFG.

Zero-initialised text paths make text irrelevant at initialisation, so the tests that check what text
*does* first give every parameter random values.
"""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import train_tiny_text_model
from tests.data.videos import make_video
from v2a.diffusion import RectifiedFlow
from v2a.models.denoiser import MelDenoiser
from v2a.models.text_encoder import TextEncoder
from v2a.models.v2a_net import V2ANet
from v2a.models.visual_encoder import FrameCNNEncoder
from v2a.shapes import ClipSpec

SPEC = ClipSpec()


def _randomise(module: torch.nn.Module, seed: int = 0, std: float = 0.05) -> torch.nn.Module:
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, std)
    return module


def _net(streams=("prompt", "transcript"), *, text_dim: int = 16) -> V2ANet:
    encoders = {f"{s}_encoder": TextEncoder(vocab_size=40, dim=text_dim, depth=1, heads=2) for s in streams}
    denoiser = MelDenoiser(spec=SPEC, visual_dim=8, width=32, depth=2, heads=2, text_dim=text_dim if streams else None,
                           text_streams=streams)
    net = V2ANet(visual_encoder=FrameCNNEncoder(dim=8, channels=(8,), temporal_layers=1), denoiser=denoiser, **encoders)
    return _randomise(net).eval()


def _ids(batch: int, length: int, lengths: list[int], seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, 40, (batch, length), generator=g)
    mask = torch.arange(length)[None] < torch.tensor(lengths)[:, None]
    return torch.where(mask, ids, torch.zeros_like(ids)), mask


def _inputs(batch: int = 3, seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, SPEC.n_mels, SPEC.n_mel_frames, generator=g)
    frames = torch.randint(0, 255, (batch, SPEC.n_video_frames, 3, 32, 32), generator=g, dtype=torch.uint8)
    t = torch.rand(batch, generator=g)
    return x, frames, t


def test_text_encoder_shapes_padding_and_empty_rows():
    encoder = _randomise(TextEncoder(vocab_size=40, dim=16, depth=2, heads=2)).eval()
    ids, mask = _ids(3, 10, [10, 4, 0])
    features, pooled = encoder(ids, mask)
    assert features.shape == (3, 10, 16) and pooled.shape == (3, 16)
    assert torch.isfinite(features).all() and torch.isfinite(pooled).all()  # an empty row is no NaN
    assert (features[~mask] == 0).all() and (pooled[2] == 0).all()
    other = torch.where(mask, ids, torch.randint(0, 40, ids.shape, generator=torch.Generator().manual_seed(9)))
    features2, pooled2 = encoder(other, mask)  # only padded ids changed
    torch.testing.assert_close(features2, features, atol=1e-6, rtol=0)
    torch.testing.assert_close(pooled2, pooled, atol=1e-6, rtol=0)
    changed = ids.clone()
    changed[1, 0] = (changed[1, 0] + 1) % 40 or 4  # a real token changed: its row changes, the others do not
    features3, _ = encoder(changed, mask)
    assert not torch.allclose(features3[1], features[1]) and torch.equal(features3[0], features[0])
    with pytest.raises(ValueError, match="outside the text encoder's vocabulary"):
        encoder(torch.full((1, 3), 40), torch.ones(1, 3, dtype=torch.bool))


def test_padded_text_changes_nothing_and_real_text_does():
    net = _net()
    x, frames, t = _inputs()
    prompt = _ids(3, 12, [12, 5, 1], seed=3)
    transcript = _ids(3, 20, [3, 20, 7], seed=4)
    v = net(x, t, net(frames=frames, text={"prompt": prompt, "transcript": transcript}))
    noisy = tuple(torch.where(m, i, torch.randint(0, 40, i.shape)) for i, m in (prompt, transcript))
    v2 = net(x, t, net(frames=frames, text={"prompt": (noisy[0], prompt[1]), "transcript": (noisy[1], transcript[1])}))
    torch.testing.assert_close(v2, v, atol=1e-5, rtol=0)
    other_prompt = _ids(3, 12, [12, 5, 1], seed=5)
    v3 = net(x, t, net(frames=frames, text={"prompt": other_prompt, "transcript": transcript}))
    assert (v3 - v).abs().amax(dim=(1, 2)).min() > 1e-4  # every sample hears its prompt


def test_dropping_a_prompt_is_the_null_embedding():
    net = _net()
    x, frames, t = _inputs()
    prompt, transcript = _ids(3, 12, [12, 5, 2], seed=3), _ids(3, 20, [3, 20, 7], seed=4)
    cond = net(frames=frames, text={"prompt": prompt, "transcript": transcript})
    dropped = torch.tensor([True, False, True])
    keep = {"prompt": ~dropped}
    v_dropped = net(x, t, cond, keep)
    empty = net(frames=frames, text={"prompt": (prompt[0], torch.zeros_like(prompt[1])), "transcript": transcript})
    v_empty = net(x, t, empty)  # all padding: what an absent caption looks like in a batch
    no_prompt = {k: v for k, v in cond.items() if not k.startswith("prompt")}
    v_absent = net(x, t, no_prompt)  # not given at all (generation without a prompt)
    for expected in (v_empty, v_absent):
        torch.testing.assert_close(v_dropped[0], expected[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(v_dropped[2], expected[2], atol=1e-5, rtol=0)
    torch.testing.assert_close(v_dropped[1], net(x, t, cond)[1], atol=1e-5, rtol=0)  # kept row: unchanged
    assert not torch.allclose(v_dropped[0], net(x, t, cond)[0], atol=1e-4)
    # the pooled prompt of a dropped row is exactly the learned null vector
    denoiser = net.denoiser
    _, _, prompt_h = denoiser._text(3, x.device, cond, {"prompt": ~dropped, "transcript": torch.ones(3, dtype=torch.bool)})
    assert torch.equal(prompt_h[0], denoiser.null_prompt) and torch.equal(prompt_h[2], denoiser.null_prompt)
    assert not torch.equal(prompt_h[1], denoiser.null_prompt)


def test_modality_dropout_draws_independent_masks():
    flow = RectifiedFlow(cond_dropout=0.1, modality_dropout={"video": 0.1, "prompt": 0.3, "transcript": 0.5})
    keep = flow.keep_mask(20000, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert set(keep) == {"video", "prompt", "transcript"}
    rates = {k: m.float().mean().item() for k, m in keep.items()}
    for name, p in (("video", 0.1), ("prompt", 0.3), ("transcript", 0.5)):
        assert abs(rates[name] - 0.9 * (1 - p)) < 0.015, rates
    # independent given the joint drop: P(both dropped alone) = P(a alone) P(b alone)
    joint = keep["video"] | keep["prompt"] | keep["transcript"]
    assert abs((~joint).float().mean().item() - (0.1 + 0.9 * 0.1 * 0.3 * 0.5)) < 0.01
    again = flow.keep_mask(20000, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert all(torch.equal(keep[k], again[k]) for k in keep)  # seeded: reproducible
    # the single-mask objective draws exactly the stream it always drew (existing runs resume identically)
    single = RectifiedFlow(cond_dropout=0.1).keep_mask(64, torch.Generator().manual_seed(5), torch.device("cpu"))
    assert torch.equal(single, torch.rand(64, generator=torch.Generator().manual_seed(5)) >= 0.1)
    with pytest.raises(ValueError, match="modality_dropout.prompt"):
        RectifiedFlow(modality_dropout={"prompt": 1.0})


def test_video_only_denoiser_output_is_unchanged():
    """Recorded with the video-only denoiser as it was before text conditioning existed (same seeds)."""
    torch.manual_seed(0)
    denoiser = MelDenoiser(spec=SPEC, visual_dim=16, width=32, depth=2, heads=2)
    with torch.no_grad():  # the recording's draws: after construction, without reseeding
        for p in denoiser.parameters():
            p.normal_(0.0, 0.05)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, SPEC.n_mels, SPEC.n_mel_frames, generator=g)
    visual, pooled = torch.randn(2, SPEC.n_video_frames, 16, generator=g), torch.randn(2, 16, generator=g)
    out = denoiser(x, torch.tensor([0.3, 0.8]), visual_tokens=visual, pooled=pooled,
                   visual_mask=torch.tensor([True, False]))
    assert not any("text" in name or "prompt" in name or "cross" in name for name, _ in denoiser.named_parameters())
    assert out.sum().item() == pytest.approx(-290.526123046875, abs=2e-3)
    assert out.abs().sum().item() == pytest.approx(7203.2880859375, abs=2e-3)
    torch.testing.assert_close(out[0, :3, :3].flatten(), torch.tensor(
        [-0.24955622851848602, 0.048057787120342255, -0.10605712234973907, -0.5438231229782104, 0.14028985798358917,
         -0.18629658222198486, 0.27311092615127563, 0.04849543794989586, 0.16734518110752106]), atol=1e-5, rtol=0)


def test_a_fresh_text_model_is_the_video_model_it_extends():
    """Zero-initialised text paths: with the video weights copied in, any text leaves the output as it was."""
    video_only = _net(streams=())
    text = MelDenoiser(spec=SPEC, visual_dim=8, width=32, depth=2, heads=2, text_dim=16,
                       text_streams=("prompt", "transcript"))
    missing, unexpected = text.load_state_dict(video_only.denoiser.state_dict(), strict=False)
    assert not unexpected and missing and all("cross" in k or "text" in k or "prompt" in k or "stream" in k
                                              for k in missing)
    x, frames, t = _inputs()
    cond = video_only(frames=frames)
    prompt_features = torch.randn(3, 12, 16)
    mask = torch.ones(3, 12, dtype=torch.bool)
    expected = video_only(x, t, cond)
    got = text.eval()(x, t, **cond, prompt_tokens=prompt_features, prompt_mask=mask, prompt_pooled=prompt_features[:, 0],
                      transcript_tokens=prompt_features, transcript_mask=mask)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_mismatched_text_configs_are_refused():
    denoiser = MelDenoiser(spec=SPEC, visual_dim=8, width=32, depth=1, heads=2, text_dim=16, text_streams=("prompt",))
    with pytest.raises(ValueError, match="do not match the denoiser's text_streams"):
        V2ANet(visual_encoder=FrameCNNEncoder(dim=8), denoiser=denoiser)
    with pytest.raises(ValueError, match="dim 32 != denoiser text_dim 16"):
        V2ANet(visual_encoder=FrameCNNEncoder(dim=8), denoiser=denoiser,
               prompt_encoder=TextEncoder(vocab_size=10, dim=32, depth=1, heads=2))
    with pytest.raises(ValueError, match="text_streams must be distinct names"):
        MelDenoiser(spec=SPEC, visual_dim=8, text_dim=16, text_streams=("caption",))


# --- a trained text model (a few steps on the tiny shards, with a tokenizer trained on their captions) ----------

@pytest.fixture(scope="module")
def text_run(tiny_shards, tmp_path_factory):
    from v2a.data.tokenizer_training import train_shard_tokenizer

    out = tmp_path_factory.mktemp("text_run")
    tokenizer = out / "tok" / "tokenizer.model"
    train_shard_tokenizer(tiny_shards, out=tokenizer, vocab_size=200)
    result = train_tiny_text_model("v2a_text_tiny", out, tiny_shards, tokenizer, steps=3, extra=[
        "model.denoiser.text_dim=16",
        "model.prompt_encoder.dim=16", "model.prompt_encoder.depth=1", "model.prompt_encoder.heads=2",
        "model.transcript_encoder.dim=16", "model.transcript_encoder.depth=1", "model.transcript_encoder.heads=2"])
    return {"result": result, "out": out, "tokenizer": tokenizer}


def test_training_with_text_batches_moves_the_text_weights(text_run):
    from v2a.checkpoints.loading import load_checkpoint

    result = text_run["result"]
    assert torch.isfinite(torch.tensor(result["metrics"]["train/loss"]))
    state = load_checkpoint(result["checkpoint"])
    assert state["v2a_tokenizer"] == text_run["tokenizer"].read_bytes()  # the tokenizer travels in the checkpoint
    weights = state["state_dict"]
    # zero-initialised text paths left zero: text reached the loss and its gradients reached these weights
    assert weights["pipeline.net.denoiser.blocks.0.cross.out.weight"].abs().sum() > 0
    assert weights["pipeline.net.denoiser.prompt_proj.weight"].abs().sum() > 0
    assert any(k.startswith("pipeline.net.text_encoders.transcript.") for k in weights)


def test_text_model_export_round_trip_carries_the_tokenizer(text_run, tmp_path):
    from v2a.pipeline import V2APipeline

    export = text_run["out"] / "run" / "export"
    assert (export / "tokenizer.model").read_bytes() == text_run["tokenizer"].read_bytes()
    text_run["tokenizer"].rename(tmp_path / "moved.model")  # inference must not look in the data folder
    try:
        from_ckpt = V2APipeline.from_pretrained(text_run["result"]["checkpoint"])
        from_export = V2APipeline.from_pretrained(export)
    finally:
        (tmp_path / "moved.model").rename(text_run["tokenizer"])
    assert from_ckpt.text_inputs == ("prompt", "negative_prompt", "transcript") == from_export.text_inputs
    ids, mask = from_export.text_conditioning.tokenizer("a wood object bouncing", "prompt")
    assert ids.shape == (1, 64) and 0 < mask.sum() < 64 and (ids[~mask] == 0).all()
    frames = torch.randint(0, 255, (1, SPEC.n_video_frames, 3, 32, 32), dtype=torch.uint8)
    kwargs = dict(steps=2, prompt="a wood object bouncing", negative_prompt="music", transcript="hello there")
    a = from_ckpt.generate_mel(frames, generator=torch.Generator().manual_seed(3), **kwargs)
    b = from_export.generate_mel(frames, generator=torch.Generator().manual_seed(3), **kwargs)
    torch.testing.assert_close(a, b)
    c = from_export.generate_mel(frames, generator=torch.Generator().manual_seed(3), steps=2)
    assert not torch.allclose(a, c, atol=1e-4)  # the text is used


def test_negative_prompt_guidance_is_the_formula(text_run):
    from v2a.pipeline import V2APipeline

    module = V2APipeline.from_pretrained(text_run["result"]["checkpoint"])
    _randomise(module.net, seed=4, std=0.1)  # every text path live (the loaded net is the EMA one)
    net, scale = module.net, 2.5
    frames = torch.randint(0, 255, (2, SPEC.n_video_frames, 3, 32, 32), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    kwargs = dict(steps=1, cfg_scale=scale, prompt="a metal object bouncing", transcript="hello")
    one_step = module.generate_mel(frames, generator=torch.Generator().manual_seed(7), negative_prompt="a wood object",
                                   **kwargs)
    noise = torch.randn(one_step.shape, generator=torch.Generator().manual_seed(7))
    guided = one_step - noise  # one Euler step from t = 0 over dt = 1: the guided velocity itself
    tok = module.text_conditioning.tokenizer
    text = {"prompt": tok("a metal object bouncing", "prompt", 2), "transcript": tok("hello", "transcript", 2)}
    t0 = torch.zeros(2)
    with torch.no_grad():
        v_cond = net(noise, t0, net(frames=frames, text=text))
        negative = net(frames=frames, text={**text, "prompt": tok("a wood object", "negative_prompt", 2)})
        off, on = torch.zeros(2, dtype=torch.bool), torch.ones(2, dtype=torch.bool)
        v_neg = net(noise, t0, negative, {"video": off, "prompt": on, "transcript": off})
    torch.testing.assert_close(guided, v_neg + scale * (v_cond - v_neg), atol=1e-4, rtol=1e-4)
    without = module.generate_mel(frames, generator=torch.Generator().manual_seed(7), **kwargs)
    assert (without - one_step).abs().max() > 1e-3  # the negative prompt changes the result
    # steering along the prompt only: the unconditional branch keeps video and transcript
    prompt_only = module.generate_mel(frames, generator=torch.Generator().manual_seed(7), negative_prompt="a wood object",
                                      cfg_modalities=["prompt"], **kwargs) - noise
    with torch.no_grad():
        v_neg_prompt = net(noise, t0, negative)
    torch.testing.assert_close(prompt_only, v_neg_prompt + scale * (v_cond - v_neg_prompt), atol=1e-4, rtol=1e-4)


def test_generate_accepts_text_for_a_text_model_and_refuses_it_for_a_video_only_one(text_run, one_step_checkpoint,
                                                                                     tmp_path, capsys):
    from v2a.cli import main

    video = make_video(tmp_path / "in.mp4", size=(48, 48), fps=25, seconds=2.0)
    out = tmp_path / "out.mp4"
    common = ["--steps", "1", "--no-watermark", "--threads", "1", "--vocoder", "griffin_lim", "model.vocoder.n_iter=2"]
    status = main(["generate", str(video), "--ckpt", str(text_run["out"] / "run" / "export"), "-o", str(out),
                   "--prompt", "a wood object bouncing", "--negative-prompt", "music", "--transcript", "hello there",
                   *common])
    torch.set_num_threads(2)  # as tests/conftest.py set it
    assert status == 0, capsys.readouterr().err
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["prompt"] == "a wood object bouncing" and sidecar["negative_prompt"] == "music"
    assert sidecar["transcript"] == "hello there"
    status = main(["generate", str(video), "--ckpt", one_step_checkpoint, "-o", str(tmp_path / "v.mp4"),
                   "--prompt", "a wood object bouncing", *common])
    torch.set_num_threads(2)
    assert status == 2 and "no conditioning for prompt" in capsys.readouterr().err


def test_subtitles_give_each_window_the_lines_spoken_during_it(text_run, tmp_path, monkeypatch):
    """A long video with an .srt transcript: every window is conditioned on its own lines, tokenised per row."""
    from v2a.generation.job import generate
    from v2a.pipeline import V2APipeline

    video = make_video(tmp_path / "in.mp4", size=(48, 48), fps=25, seconds=5.0)
    subtitles = tmp_path / "dialogue.srt"
    subtitles.write_text("1\n00:00:00,200 --> 00:00:01,000\nhello there\n\n"
                         "2\n00:00:04,000 --> 00:00:04,800\n<i>wood</i> object\n")
    seen = []
    original = V2APipeline.generate_mel

    def spy(self, frames, **kwargs):
        seen.append(kwargs.get("transcript"))
        ids, mask = self.text_conditioning.tokenize(frames.shape[0], "cpu", transcript=kwargs["transcript"])["transcript"]
        for row, text in enumerate(kwargs["transcript"]):  # row i holds the tokens of text i, and only those
            alone = self.text_conditioning.tokenizer(text, "transcript")
            assert torch.equal(ids[row], alone[0][0]) and torch.equal(mask[row], alone[1][0])
        return original(self, frames, **kwargs)

    monkeypatch.setattr(V2APipeline, "generate_mel", spy)
    generate(video=str(video), ckpt=str(text_run["out"] / "run" / "export"), out=str(tmp_path / "out.mp4"), steps=1,
             transcript=str(subtitles), overlap_s=0.5, num_threads=1,
             vocoder={"_target_": "v2a.models.vocoder.GriffinLimVocoder", "features": "${model.features}", "n_iter": 2})
    torch.set_num_threads(2)  # as tests/conftest.py set it
    # 2 s windows at 0, 1.52, 3.0 s (batched together): the middle one hears nobody
    assert seen == [["hello there", "", "wood object"]]


def test_demo_samples_of_a_text_model_use_each_clips_caption(text_run, tiny_shards, tmp_path):
    """The demo renderer samples a text model with its clips' captions and transcripts, not without text."""
    from types import SimpleNamespace

    from v2a.data.datamodule import ShardDataModule
    from v2a.pipeline import V2APipeline
    from v2a.training.callbacks import DemoSamples

    module = V2APipeline.from_pretrained(text_run["result"]["checkpoint"])
    data = ShardDataModule(root=str(tiny_shards), spec=SPEC, eval_batch_size=4, num_workers=0,
                           tokenizer=str(text_run["tokenizer"]))
    batch = next(iter(data.val_dataloader()))
    texts = module.clip_texts(batch, 2)
    assert set(texts) == {"prompt", "transcript"} and texts["prompt"][0].shape[0] == 2
    assert torch.equal(texts["prompt"][0], batch["caption_tokens"][:2])
    seen = {}

    def recording(frames, **kwargs):
        seen.update(kwargs)
        return torch.zeros(frames.shape[0], SPEC.n_mels, SPEC.n_mel_frames)

    module.generate_mel = recording
    trainer = SimpleNamespace(datamodule=data, global_step=0, is_global_zero=True)
    DemoSamples(out_dir=str(tmp_path), num_clips=2).render_with(trainer, module)
    assert torch.equal(seen["prompt"][0], batch["caption_tokens"][:2])
    assert torch.equal(seen["transcript"][1], batch["transcript_mask"][:2])
