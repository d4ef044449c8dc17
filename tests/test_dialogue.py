"""Dialogue end to end on tiny talking-head shards: the phoneme-track model trains on recorded timings, the
lip aligner trains and times a transcript from the video, generation and the dialogue evaluation use it."""

from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from tests.conftest import TINY, compose_config
from v2a.data.synthetic import espeak
from v2a.data.synthetic.build import build_split
from v2a.data.synthetic.scene import Kind, Scene
from v2a.data.synthetic.talking_head import TalkingHead
from v2a.shapes import ClipSpec

pytestmark = pytest.mark.skipif(not espeak.available(), reason="espeak-ng is not installed (apt-get install espeak-ng)")
SPEC = ClipSpec(duration=2.0, image_size=32)
SMALL = ["model.denoiser.width=32", "model.denoiser.depth=2", "model.denoiser.heads=2", "model.visual_encoder.dim=16",
         "spec.duration=2.0", "spec.image_size=32"]


@pytest.fixture(scope="module")
def dialogue_shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dialogue")
    scene = Scene(kinds={"talking_head": Kind(1.0, TalkingHead())})
    for offset, (split, clips) in enumerate((("train", 8), ("val", 4), ("test", 4))):
        build_split(root, split, clips, 300 + offset, SPEC, shard_size=8, max_objects=1, workers=1, scene=scene)
    return root


def run(experiment: str, root: Path, out: Path, extra: list[str]) -> dict:
    from v2a.training.run import train

    # the aligner stage writes no demo samples (its config has none): leave out TINY's demo settings there
    skipped = ("experiment=",) + (("callbacks.demo_samples",) if experiment == "aligner_tiny" else ())
    overrides = [o for o in TINY if not o.startswith(skipped)] + [
        f"experiment={experiment}", f"paths.root_dir={out}", f"paths.output_dir={out / 'run'}", f"data.root={root}",
        "trainer.max_steps=2", "data.batch_size=4", *extra]
    cfg = compose_config(overrides)
    with open_dict(cfg):
        cfg.callbacks.demo_samples = None
    return train(cfg)


@pytest.fixture(scope="module")
def trained(dialogue_shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    aligner = run("aligner_tiny", dialogue_shards, out / "aligner", ["spec.duration=2.0", "spec.image_size=32",
                                                                    "model.visual_encoder.dim=16"])
    aligner_export = Path(aligner["checkpoint"]).parent.parent / "export"
    # the prior reads the video and a voice code with a stack of its own, the track the mouth, half the clips are
    # timed by the aligner and half the speech clips trained from where sampling starts (options of the recipe):
    # all its inputs are exercised
    aligned = run("v2a_dialogue_aligned_tiny", dialogue_shards, out / "v2a", SMALL + [
        "data.tokenizer=null", "model.modalities=[video,transcript]",
        "model.phoneme_encoder.visual_dim=${model.visual_encoder.dim}", "model.phoneme_encoder.code_dim=2",
        "model.phoneme_encoder.mouth_dim=${model.visual_encoder.dim}", "model.phoneme_encoder.prior_own=true",
        "model.even_words=true", f"model.timing_aligner={aligner_export}", "model.aligner_share=0.5",
        "model.objective.start_share=0.5"])
    return {"model": Path(aligned["checkpoint"]).parent.parent / "export", "aligner": aligner_export}


def test_the_aligner_export_carries_durations_and_times_a_transcript(trained, dialogue_shards, tmp_path):
    from v2a.evaluation.references import iterate_batches
    from v2a.pipeline.aligner import LipAligner
    from v2a.text.forced_alignment import AlignmentCosts, align_on_frames
    from v2a.utils.export_files import read_export, write_export

    aligner = LipAligner.from_pretrained(trained["aligner"])
    assert aligner.durations.durations and aligner.fps == SPEC.fps  # fitted from the recorded phonemes
    # ... with how open the mouth is while each is spoken (the recorded mouth: vowels open it wider than the rest)
    openness = aligner.durations.openness
    assert openness and all(0.0 <= v <= 1.0 for v in openness.values()) and aligner.durations.mouth_weight == 0.0
    batch = next(iter(iterate_batches(str(dialogue_shards), "test", SPEC, 2, 2)))
    speaking, opening = aligner.predict(batch["frames"][0])
    assert speaking.shape == opening.shape == (SPEC.n_video_frames,) and (opening >= 0).all()  # it reads the mouth
    logged = (trained["aligner"].parent / "csv" / "version_0" / "metrics.csv").read_text().splitlines()[0]
    assert "train/opening_mse" in logged  # trained on the opening the talking heads recorded
    spans = aligner.timeline(batch["frames"][0], "the cat found a blue box")
    assert spans and all(a.end <= b.start + 1e-9 for a, b in zip(spans, spans[1:], strict=False))  # monotone
    assert 0 <= spans[0].start and spans[-1].end <= SPEC.duration + 1e-6
    # the placement the config names travels with the export: the whole transcript by forced alignment
    assert aligner.placement == AlignmentCosts(mouth=4.0, speaking=1.0, stiffness=4.0, spread=True, cap=0.1,
                                                doubt=0.05, doubt_cap=0.001)
    assert aligner.durations.spreads   # fitted with the durations: how much each phoneme's length and opening vary
    profiles = aligner.durations.profiles   # ... and how the mouth moves through each one, a third at a time
    assert profiles and all(len(parts) == 3 for parts in profiles.values())
    phonemes = aligner.phonemizer("the cat found a blue box")
    assert spans == align_on_frames(phonemes, speaking, opening, aligner.fps, aligner.durations, aligner.placement)
    # an export that names no placement (written before it existed) deals the words to speech segments
    config, weights = read_export(trained["aligner"])
    del config["model"]["placement"]
    older = tmp_path / "older"
    write_export(older, weights, config, format=config["format"])
    assert LipAligner.from_pretrained(older).placement is None


def test_the_transcript_changes_the_output_and_the_vocabulary_travels(trained, dialogue_shards):
    from v2a.evaluation.references import iterate_batches
    from v2a.pipeline import V2APipeline
    from v2a.text.phoneme_timing import DurationModel
    from v2a.text.phonemes import Phonemizer
    from v2a.utils.export_files import read_export

    pipeline = V2APipeline.from_pretrained(trained["model"])
    config, _ = read_export(trained["model"])
    assert config["model"]["phoneme_vocabulary"] == list(pipeline.phoneme_vocabulary.symbols)
    for p in pipeline.net.denoiser.phoneme_proj.parameters():   # zero-init paths come alive, so the track matters
        torch.nn.init.normal_(p, std=0.5)
    batch = next(iter(iterate_batches(str(dialogue_shards), "test", SPEC, 2, 2)))
    timed = [DurationModel().fill(Phonemizer()(text), 0.2, 1.6) for text in ("hello there", "a yellow kite")]
    mels = [pipeline.generate_mel(batch["frames"], steps=1, generator=torch.Generator().manual_seed(0), phonemes=p)
            for p in (timed, timed[::-1])]
    assert (mels[0] - mels[1]).abs().max() > 1e-4


def test_the_phoneme_prior_is_trained_by_regression_and_starts_sampling(trained, dialogue_shards):
    from v2a.evaluation.references import iterate_batches
    from v2a.pipeline import V2APipeline
    from v2a.text.phoneme_timing import DurationModel
    from v2a.text.phonemes import Phonemizer

    logged = (trained["model"].parent / "csv" / "version_0" / "metrics.csv").read_text()
    assert "train/prior_loss" in logged.splitlines()[0]  # the regression ran beside the flow loss
    pipeline = V2APipeline.from_pretrained(trained["model"])
    assert pipeline.net.has_prior and pipeline.sampler.prior_start == 0.9  # the recipe starts from the prior
    batch = next(iter(iterate_batches(str(dialogue_shards), "test", SPEC, 2, 2)))
    timed = [DurationModel().fill(Phonemizer()(text), 0.2, 1.6) for text in ("hello there", "a yellow kite")]
    n_tokens = batch["frames"].shape[1] * SPEC.tokens_per_video_frame
    track = pipeline.phoneme_track(timed, 2, n_tokens)
    # a prior that reads the video: made to matter, other frames give another prior
    assert pipeline.net.phoneme_encoder.reads_video
    torch.manual_seed(0)
    torch.nn.init.normal_(pipeline.net.phoneme_encoder.visual[-1].weight, std=0.5)
    frames = batch["frames"]
    prior = pipeline.prior_mel(track, SPEC.n_mel_frames, frames=frames)
    assert prior.shape == (2, SPEC.n_mels, SPEC.n_mel_frames) and (prior[0] - prior[1]).abs().max() > 1e-4
    assert (prior - pipeline.prior_mel(track, SPEC.n_mel_frames, frames=frames.flip(0))).abs().max() > 1e-3
    with pytest.raises(ValueError, match="mouth"):   # the track reads the mouth too: no frames, no track
        pipeline.prior_mel(track, SPEC.n_mel_frames)

    def sample(start: float) -> torch.Tensor:
        pipeline.sampler.prior_start = start
        return pipeline.generate_mel(batch["frames"], steps=2, generator=torch.Generator().manual_seed(0),
                                     phonemes=timed)

    from_noise, near_prior = sample(0.0), sample(0.98)
    # started at t = 0.98, the sample is the prior plus 2 % noise plus 2 % of the flow: close to the prior
    assert (near_prior - prior).abs().mean() < 0.3 * (from_noise - prior).abs().mean()
    # nothing said: no prior start, the flow makes every sound from noise
    silent = [pipeline.generate_mel(batch["frames"], steps=2, generator=torch.Generator().manual_seed(0), phonemes=p)
              for p in (None, [[], []])]
    pipeline.sampler.prior_start = 0.0
    assert torch.equal(silent[0], silent[1])
    assert torch.equal(silent[0], pipeline.generate_mel(batch["frames"], steps=2,
                                                        generator=torch.Generator().manual_seed(0)))


def test_a_model_trained_from_its_prior_samples_from_the_prior_plus_noise(trained, dialogue_shards):
    from v2a.evaluation.references import iterate_batches
    from v2a.pipeline import V2APipeline
    from v2a.text.phoneme_timing import recorded_track

    pipeline = V2APipeline.from_pretrained(trained["model"])
    batch = next(iter(iterate_batches(str(dialogue_shards), "test", SPEC, 2, 2)))
    track = recorded_track(batch["meta"], pipeline.phoneme_vocabulary, SPEC.n_audio_tokens, SPEC.token_rate)
    prior = pipeline.prior_mel(track, SPEC.n_mel_frames, frames=batch["frames"])
    pipeline.sampler = type("WhereItStarts", (), {"prior_start": 0.0, "prior_source": True, "prior_noise": 1.0,
                                                   "voice_temperature": 0.0, "__call__": lambda self, velocity, x, steps, start: x})()
    started = pipeline.generate_mel(batch["frames"], phonemes=track, generator=torch.Generator().manual_seed(0))
    offset = started - prior            # unit noise around the prior
    assert abs(float(offset.mean())) < 0.1 and 0.8 < float(offset.std()) < 1.2
    pipeline.sampler.prior_start = 0.75     # started part way: a quarter of the noise
    later = pipeline.generate_mel(batch["frames"], phonemes=track, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(later - prior, 0.25 * offset, atol=1e-5)
    pipeline.sampler.prior_noise = 0.4      # a narrower source: the same noise, scaled
    narrow = pipeline.generate_mel(batch["frames"], phonemes=track, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(narrow - prior, 0.1 * offset, atol=1e-5)
    pipeline.sampler.prior_source, pipeline.sampler.prior_start = False, 0.0  # trained from noise: from noise
    plain = pipeline.generate_mel(batch["frames"], phonemes=track, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(started - plain, prior, atol=1e-5)


def test_generate_with_the_aligner_and_the_dialogue_evaluation(trained, dialogue_shards, tmp_path):
    import webdataset as wds

    from v2a.evaluation.dialogue import evaluate_dialogue
    from v2a.generation.job import generate
    from v2a.pipeline import V2APipeline

    video = tmp_path / "talk.mp4"
    for sample in wds.WebDataset(str(sorted((dialogue_shards / "test").glob("*.tar"))[0]), shardshuffle=False):
        video.write_bytes(sample["mp4"])
        break
    with pytest.raises(ValueError, match="aligner="):
        generate(video=str(video), ckpt=str(trained["model"]), out=str(tmp_path / "x.mp4"), steps=1, transcript="hi")
    [result] = generate(video=str(video), ckpt=str(trained["model"]), out=str(tmp_path / "out.mp4"), steps=1,
                        transcript="the cat found a blue box", aligner=str(trained["aligner"]))
    assert Path(result["video"]).exists()

    heard = iter(["the cat", "hello", "the cat found", "x"] * 10)
    metrics = evaluate_dialogue(V2APipeline.from_pretrained(trained["model"]), data=str(dialogue_shards), split="test",
                                out_dir=tmp_path / "eval", recognizer=lambda audio, sr: next(heard), timing="video",
                                aligner=str(trained["aligner"]), batch_size=4, steps=1)
    assert {"speech/wer", "speech/wer_swapped", "speech/lip_corr", "ref/gt_wer", "ref/mismatched_wer",
            "speech/word_onset_err_frames"} <= metrics.keys()
    assert metrics["eval/speech_clips"] == 4 and (tmp_path / "eval" / "dialogue.json").exists()


def test_the_prior_reads_the_visual_tokens_in_time():
    from v2a.models.phoneme_track import PhonemeTrackEncoder

    torch.manual_seed(0)
    encoder = PhonemeTrackEncoder(vocab_size=10, dim=8, prior_dim=6, visual_dim=5)
    ids, where = torch.randint(0, 10, (1, 12)), torch.rand(1, 12)
    features, visual = encoder(ids, where), torch.randn(1, 12, 5)
    assert torch.equal(encoder.prior(features, visual=visual), encoder.prior(features))  # zero at first
    torch.nn.init.normal_(encoder.visual[-1].weight)
    before = encoder.prior(features, visual=visual)
    changed = visual.clone()
    changed[:, 7] = torch.randn(5)  # another mouth at one token moves that token's prior only
    moved = (encoder.prior(features, visual=changed) - before).detach().abs().amax(dim=-1)[0]
    assert moved[7] > 1e-3 and float(torch.cat([moved[:7], moved[8:]]).max()) == 0.0
    assert PhonemeTrackEncoder(vocab_size=10, dim=8, visual_dim=5).visual is None  # no prior: nothing to shape


def test_a_prior_with_its_own_stack_is_trained_by_its_regression_alone():
    from hydra.utils import instantiate

    from v2a.models.phoneme_track import PhonemeTrackEncoder

    torch.manual_seed(0)
    encoder = PhonemeTrackEncoder(vocab_size=10, dim=8, layers=2, prior_dim=6, prior_own=True)
    ids, where = torch.randint(1, 10, (2, 12)), torch.rand(2, 12)
    features = encoder(ids, where)
    own = encoder.prior_features(ids, where, features)
    assert own.shape == features.shape and not torch.allclose(own, features)  # another stack, same phonemes
    features.pow(2).sum().backward(retain_graph=True)  # what the flow's gradient reaches: the track only
    assert encoder.embed.weight.grad is not None and encoder.prior_track.embed.weight.grad is None
    encoder.zero_grad(set_to_none=True)
    encoder.prior(own).pow(2).sum().backward()  # the regression reaches the prior's stack only
    assert encoder.embed.weight.grad is None and float(encoder.prior_track.embed.weight.grad.abs().sum()) > 0
    shared = PhonemeTrackEncoder(vocab_size=10, dim=8, prior_dim=6)
    assert shared.prior_features(ids, where, features) is features  # without prior_own the prior reads the track
    with pytest.raises(ValueError, match="prior_own needs a prior"):
        PhonemeTrackEncoder(vocab_size=10, dim=8, prior_own=True)
    cfg = compose_config(["experiment=v2a_dialogue_aligned_tiny", "model.phoneme_encoder.prior_own=true"])
    assert instantiate(cfg.model.phoneme_encoder).prior_track.dim == cfg.model.phoneme_encoder.dim


def test_the_prior_reads_the_voice_the_prompt_names():
    from hydra.utils import instantiate

    from tests.conftest import compose_config
    from v2a.models.phoneme_track import PhonemeTrackEncoder

    cfg = compose_config(["experiment=v2a_dialogue_aligned_tiny",
                          "model.phoneme_encoder.voice_dim=${model.prompt_encoder.dim}"])
    assert instantiate(cfg.model.phoneme_encoder).voice.in_features == cfg.model.prompt_encoder.dim
    torch.manual_seed(0)
    encoder = PhonemeTrackEncoder(vocab_size=10, dim=8, prior_dim=6, voice_dim=4)
    ids, where = torch.randint(0, 10, (2, 12)), torch.rand(2, 12)
    features, voices = encoder(ids, where), torch.randn(2, 4)
    assert torch.equal(encoder.prior(features, voice=voices), encoder.prior(features))  # zero at first
    torch.nn.init.normal_(encoder.voice.weight)
    shifted = encoder.prior(features, voice=voices)
    assert (shifted[0] - encoder.prior(features, voice=voices.flip(0))[0]).abs().max() > 1e-3  # the voice matters
    assert torch.equal(encoder.prior(features, voice=None), encoder.prior(features))  # no prompt: no shift


def test_the_prior_renders_the_voice_read_in_training_and_the_prompt_predicts_it():
    from v2a.models.phoneme_track import PhonemeTrackEncoder

    torch.manual_seed(0)
    encoder = PhonemeTrackEncoder(vocab_size=10, dim=16, prior_dim=6, code_dim=2, code_prompt_dim=4)
    ids = torch.randint(1, 10, (4, 12)).repeat_interleave(2, dim=0)
    ids[:, 8:] = 0                                    # the last tokens are silence
    where = torch.rand(4, 12).repeat_interleave(2, dim=0)
    # two voices say each sentence: the same phonemes sound 1 higher or 1 lower; the prompt names the voice
    voice = torch.tensor([1.0, -1.0]).repeat(4)
    mel = (ids[..., None].float() / 10 + voice[:, None, None]).expand(-1, -1, 6) * (ids > 0)[..., None]
    prompts = torch.stack([torch.tensor([1.0, 0, 0, 0]) if v > 0 else torch.tensor([0, 1.0, 0, 0]) for v in voice])
    code = encoder.voice_code(mel, ids)
    assert code.shape == (8, 2)
    silent_changed = mel.clone()
    silent_changed[:, 9] = 5.0                        # what sounds where nobody speaks is not the voice
    assert torch.equal(encoder.voice_code(silent_changed, ids), code)
    assert torch.equal(encoder.voice_code(mel, torch.zeros_like(ids)), torch.zeros(8, 2))  # nobody speaks
    optimizer = torch.optim.Adam(encoder.parameters(), lr=0.02)
    for _ in range(150):                              # the prior's regression and the code's prediction
        features = encoder(ids, where)
        read = encoder.voice_code(mel, ids)
        loss = (encoder.prior(features, code=read) - mel).pow(2).mean() + encoder.code_loss(
            encoder.predicted_code(prompts, 8), read, (ids > 0).any(1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        features = encoder(ids, where)
        asked = encoder.prior(features, code=encoder.predicted_code(prompts, 8))
        swapped = encoder.prior(features, code=encoder.predicted_code(prompts.roll(1, 0), 8))
        averaged = encoder.prior(features, code=encoder.predicted_code(None, 8))
    error = lambda prior: float((prior - mel).pow(2)[:, :8].mean())  # noqa: E731
    # the prompt's voice is rendered: far closer than the other voice's, or the mean voice's
    assert error(asked) < 0.1 * error(swapped) and error(asked) < 0.2 * error(averaged)


def test_the_voice_code_spread_is_fitted_and_a_drawn_code_is_one_voice_of_the_type():
    from v2a.models.phoneme_track import PhonemeTrackEncoder

    torch.manual_seed(0)
    encoder = PhonemeTrackEncoder(vocab_size=10, dim=16, prior_dim=6, code_dim=2, code_prompt_dim=4)
    prompts = torch.eye(4)[torch.tensor([0, 0, 1, 1] * 16)]           # two types, the prompt names only the type
    # the codes read from the clips: within a type two voices, 0.5 either side of the type's own code
    read = torch.stack([torch.tensor([1.0, -1.0]) * (1 if row[0] > 0 else -1) for row in prompts])
    read = read + 0.5 * torch.tensor([1.0, -1.0]).repeat(32)[:, None]
    speaking = torch.ones(64, dtype=torch.bool)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=0.05)
    for _ in range(300):
        loss = encoder.code_loss(encoder.predicted_code(prompts, 64), read, speaking)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        mean = encoder.predicted_code(prompts, 64)
        assert torch.allclose(mean[::2], read.view(32, 2, 2).mean(1), atol=0.05)   # the type's mean code
        assert torch.allclose(encoder.code_log_std.exp(), torch.full((2,), 0.5), atol=0.05)  # the spread within it
        assert torch.equal(encoder.predicted_code(prompts, 64, noise=torch.zeros(64, 2)), mean)
        noise = torch.randn(64, 2)
        drawn = encoder.predicted_code(prompts, 64, noise=noise)
        assert torch.allclose(drawn - mean, encoder.code_log_std.exp() * noise, atol=1e-6)  # around it, at that spread


def test_a_hidden_layer_lets_the_prior_render_a_code_non_linearly():
    from v2a.models.phoneme_track import PhonemeTrackEncoder

    torch.manual_seed(0)
    ids, where = torch.randint(1, 10, (2, 12)), torch.rand(2, 12)
    a, b, zero = torch.randn(2, 2), torch.randn(2, 2), torch.zeros(2, 2)

    def interaction(encoder: PhonemeTrackEncoder) -> float:
        """How far the prior is from adding what two codes do on their own (0 for a mel linear in the code)."""
        features = encoder(ids, where)
        rendered = {name: encoder.prior(features, code=code) for name, code in (("a", a), ("b", b), ("ab", a + b),
                                                                               ("0", zero))}
        return float((rendered["ab"] - rendered["a"] - rendered["b"] + rendered["0"]).abs().max())

    assert interaction(PhonemeTrackEncoder(vocab_size=10, dim=16, prior_dim=6, code_dim=2)) < 1e-5
    assert interaction(PhonemeTrackEncoder(vocab_size=10, dim=16, prior_dim=6, code_dim=2, prior_hidden=32)) > 1e-3
    with pytest.raises(ValueError, match="prior_hidden"):
        PhonemeTrackEncoder(vocab_size=10, dim=16, prior_dim=6, prior_hidden=-1)


def test_generation_draws_a_voice_or_reads_one_from_a_recording(trained, dialogue_shards):
    from v2a.evaluation.references import iterate_batches
    from v2a.pipeline import V2APipeline
    from v2a.text.phoneme_timing import DurationModel
    from v2a.text.phonemes import Phonemizer

    pipeline = V2APipeline.from_pretrained(trained["model"])
    assert pipeline.sampler.prior_start > 0 and pipeline.sampler.voice_temperature == 0.0
    batch = next(iter(iterate_batches(str(dialogue_shards), "test", SPEC, 2, 2)))
    timed = [DurationModel().fill(Phonemizer()(text), 0.2, 1.6) for text in ("hello there", "a yellow kite")]

    def generate(temperature: float, seed: int = 0, **options) -> torch.Tensor:
        pipeline.sampler.voice_temperature = temperature
        return pipeline.generate_mel(batch["frames"], steps=2, phonemes=timed,
                                     generator=torch.Generator().manual_seed(seed), **options)

    mean_voice = generate(0.0)
    assert torch.equal(generate(0.0), mean_voice)                      # no voice drawn: as before
    drawn = generate(1.0)
    assert (drawn - mean_voice).abs().max() > 1e-4 and torch.equal(generate(1.0), drawn)  # a drawn voice, seeded
    assert (generate(1.0, seed=1) - drawn).abs().max() > 1e-4          # another seed, another voice
    own = generate(0.0, voice_reference=pipeline.features(batch["audio"]))
    assert (own - mean_voice).abs().max() > 1e-4                       # the recording's voice, not the prompt's
    pipeline.sampler.voice_temperature = 0.0
    pipeline.net.phoneme_encoder.code_reader = None                    # as a model without a voice code
    with pytest.raises(ValueError, match="voice code"):
        pipeline.generate_mel(batch["frames"], steps=1, phonemes=timed, voice_reference=pipeline.features(batch["audio"]))


def test_a_flow_from_the_prior_reads_the_prior_in_both_guidance_branches():
    from tests.conftest import compose_config
    from v2a.models.denoiser import MelDenoiser

    cfg = compose_config(["experiment=v2a_dialogue_aligned_tiny", "model.sampler.prior_source=true"])
    assert cfg.model.denoiser.prior_input is True      # stated once, by the sampler's prior_source
    assert compose_config(["experiment=v2a_dialogue_aligned_tiny"]).model.denoiser.prior_input is False
    torch.manual_seed(0)
    denoiser = MelDenoiser(spec=SPEC, visual_dim=None, width=16, depth=1, heads=2, phoneme_dim=8, prior_input=True)
    torch.nn.init.normal_(denoiser.out_proj.weight)
    x, t = torch.randn(2, SPEC.n_mels, SPEC.n_mel_frames), torch.rand(2)
    phonemes, prior = torch.randn(2, SPEC.n_audio_tokens, 8), torch.randn(2, SPEC.n_audio_tokens, SPEC.token_dim)
    dropped = torch.zeros(2, dtype=torch.bool)           # the unconditional branch: no transcript
    with pytest.raises(ValueError, match="phoneme_prior"):
        denoiser(x, t, phoneme_tokens=phonemes, transcript_keep=dropped)
    one = denoiser(x, t, phoneme_tokens=phonemes, phoneme_prior=prior, transcript_keep=dropped)
    other = denoiser(x, t, phoneme_tokens=phonemes, phoneme_prior=prior.flip(0), transcript_keep=dropped)
    assert (one - other).abs().max() > 1e-3              # the prior still reaches it with the transcript dropped


def test_the_track_reads_the_mouth_where_a_phoneme_is_spoken():
    from v2a.models.phoneme_track import PhonemeTrackEncoder

    torch.manual_seed(0)
    encoder = PhonemeTrackEncoder(vocab_size=10, dim=8, layers=0, mouth_dim=5)
    ids, where = torch.randint(1, 10, (1, 12)), torch.rand(1, 12)
    ids[:, 9:] = 0                                     # the last tokens are silence
    opening = torch.rand(1, 12)
    with pytest.raises(ValueError, match="opening"):
        encoder(ids, where)
    before = encoder(ids, where, opening=opening)
    wider = opening.clone()
    wider[:, 4] += 0.5                                 # the mouth opens wider at a spoken token: that token moves
    wider[:, 10] += 0.5                                # and at a silent one: nothing moves
    moved = (encoder(ids, where, opening=wider) - before).detach().abs().amax(dim=-1)[0]
    assert moved[4] > 1e-3 and float(torch.cat([moved[:4], moved[5:]]).max()) == 0.0
    assert encoder.read_mouth(torch.randn(2, 12, 5)).shape == (2, 12)
    assert PhonemeTrackEncoder(vocab_size=10, dim=8).reads_mouth is False


def test_the_mouth_is_learnt_from_the_recorded_opening_only():
    from hydra.utils import instantiate

    from v2a.models.phoneme_track import PhonemeTrackEncoder
    from v2a.models.v2a_net import MOUTH_KEY
    from v2a.text.phoneme_timing import recorded_mouth

    values, known = recorded_mouth([{"mouth": [0.0, 0.5, 1.0]}, {"caption": "no face"}], n_tokens=8, tokens_per_frame=2)
    assert values[0].tolist() == [0.0, 0.0, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0] and known.tolist() == [True, False]
    assert values[1].abs().sum() == 0
    predicted = torch.full((2, 8), 0.5)
    # a clip without a record is no target: only the first clip's error counts
    assert float(PhonemeTrackEncoder.mouth_loss(predicted, values, known)) == pytest.approx(
        float((predicted[0] - values[0]).pow(2).mean()))

    torch.manual_seed(0)
    cfg = compose_config(["experiment=v2a_dialogue_aligned_tiny", "data.tokenizer=null",
                          "model.modalities=[video,transcript]",
                          "model.phoneme_encoder.mouth_dim=${model.visual_encoder.dim}", *SMALL])
    net = instantiate(cfg.model).net
    frames = torch.randint(0, 255, (2, SPEC.n_video_frames, 3, 32, 32), dtype=torch.uint8)
    track = torch.randint(1, 10, (2, SPEC.n_audio_tokens)), torch.rand(2, SPEC.n_audio_tokens)
    with pytest.raises(ValueError, match="mouth"):
        net(phonemes=track)                            # no frames: no mouth to read
    cond = net(frames=frames, phonemes=track)
    assert cond[MOUTH_KEY].shape == (2, SPEC.n_audio_tokens)
    reader = net.phoneme_encoder.mouth_reader.weight
    cond["phoneme_tokens"].pow(2).sum().backward()     # what the flow loss sees does not move the reader
    assert reader.grad is None or float(reader.grad.abs().max()) == 0.0
    cond[MOUTH_KEY].sum().backward()                   # its regression does
    assert float(reader.grad.abs().max()) > 0.0


def test_training_hears_the_aligner_timing_for_its_share(trained, dialogue_shards, tmp_path):
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from v2a.evaluation.references import iterate_batches
    from v2a.pipeline.aligner import LipAligner
    from v2a.text.phoneme_timing import rasterize, recorded_track

    overrides = ["experiment=v2a_dialogue_aligned_tiny", f"paths.root_dir={tmp_path}", *SMALL]
    module = instantiate(compose_config(overrides).model)
    batch = next(iter(iterate_batches(str(dialogue_shards), "train", SPEC, 4, 4)))
    spec, vocabulary = module.features.spec, module.pipeline.phoneme_vocabulary
    recorded = recorded_track(batch["meta"], vocabulary, spec.n_audio_tokens, spec.token_rate)
    assert all(torch.equal(a, b) for a, b in zip(module.training_phonemes(batch), recorded, strict=True))  # no aligner
    aligner = LipAligner.from_pretrained(trained["aligner"])
    module._aligner, module.aligner_share = aligner, 1.0
    ids, where = module.training_phonemes(batch, torch.Generator().manual_seed(0))
    for row, meta in enumerate(batch["meta"]):   # every talking head: where the aligner places its transcript
        expected = rasterize(aligner.timeline(batch["frames"][row], meta["transcript"]), vocabulary,
                             spec.n_audio_tokens, spec.token_rate)
        assert torch.equal(ids[row], expected[0]) and torch.equal(where[row], expected[1])
    assert not torch.equal(ids, recorded[0]) or not torch.equal(where, recorded[1])  # not the recorded times
    module.aligner_share = 0.5   # half the clips, drawn by the step's generator: the same draw gives the same track
    halves = [module.training_phonemes(batch, torch.Generator().manual_seed(seed))[1] for seed in (1, 1, 2)]
    assert torch.equal(halves[0], halves[1])
    with pytest.raises(InstantiationException, match="needs model.timing_aligner"):
        instantiate(compose_config(overrides + ["model.aligner_share=0.5"]).model)


def test_training_starts_the_speech_clips_where_sampling_does(dialogue_shards, tmp_path):
    from hydra.utils import instantiate

    from v2a.evaluation.references import iterate_batches
    from v2a.models.v2a_net import PRIOR_KEY

    overrides = ["experiment=v2a_dialogue_aligned_tiny", f"paths.root_dir={tmp_path}", *SMALL,
                 "model.modalities=[video,transcript]", "model.objective.start_share=1.0"]
    module = instantiate(compose_config(overrides).model)
    batch = next(iter(iterate_batches(str(dialogue_shards), "train", SPEC, 4, 4)))
    track = module.training_phonemes(batch)
    mel = module.features(batch["audio"])
    cond = module.net(frames=batch["frames"], phonemes=track, reference=mel)
    start = module._sampling_start(cond, track, mel)
    # the prior's mel, at the sampler's start, for the clips that say something
    assert start.time == module.pipeline.sampler.prior_start == 0.9
    assert torch.equal(start.estimate, module.pipeline.prior_as_mel(cond[PRIOR_KEY], mel.shape[-1]))
    assert torch.equal(start.rows, (track[0] > 0).any(dim=1)) and bool(start.rows.any())
    generator = torch.Generator().manual_seed(0)
    moved = float(module._loss(module.net, batch, generator, stage=None))
    module.objective.start_share = 0.0
    plain = float(module._loss(module.net, batch, torch.Generator().manual_seed(0), stage=None))
    assert moved != plain   # the speech clips were trained on another path
    assert module._sampling_start(cond, track, mel) is None   # an objective without it: nothing computed
    module.objective.start_share = 1.0
    module.pipeline.sampler.prior_start = 0.0   # sampled from noise: nothing to start from
    assert module._sampling_start(cond, track, mel) is None
