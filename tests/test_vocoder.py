"""The vocoder stage: generator/discriminator shapes, losses, one step of each optimiser, the audio-only
data, the export round trip and the neural vocoder behind the V2A model's Vocoder interface."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import open_dict

from tests.conftest import compose_config
from v2a.audio.mel import LogMel
from v2a.data.audio_stream import AudioShardDataModule
from v2a.data.media import encode_flac
from v2a.data.shard_writer import read_index, record_shard, write_shard
from v2a.models.vocoder.discriminators import VocoderDiscriminators
from v2a.models.vocoder.export import load_vocoder_export
from v2a.models.vocoder.losses import MultiResolutionSTFTLoss, discriminator_loss, mel_l1
from v2a.models.vocoder.neural import NeuralVocoder
from v2a.models.vocoder.vocos import VocosGenerator
from v2a.shapes import ClipSpec
from v2a.training.run import train
from v2a.training.vocoder_module import export_checkpoint

SPEC = ClipSpec()
# Overrides that make experiment=vocoder_tiny train in seconds.
TINY_VOCODER = [
    "experiment=vocoder_tiny",
    "model.generator.dim=16", "model.generator.hidden=32", "model.generator.depth=1",
    "model.discriminators.periods=[2,3]", "model.discriminators.period_channels=[4,8]",
    "model.discriminators.resolutions=[[256,64]]", "model.discriminators.resolution_channels=4",
    "model.segment_frames=16", "model.gan_start_step=1", "model.scheduler.warmup_steps=1",
    "data.batch_size=2", "data.eval_batch_size=4", "data.shuffle_buffer=4", "data.samples_per_epoch=8",
    "trainer.max_steps=3", "trainer.val_check_interval=3", "trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false",
    "callbacks.model_checkpoint.every_n_train_steps=3",
]


def _clip(rng: np.random.Generator, kind: str) -> np.ndarray:
    t = np.arange(SPEC.n_samples) / SPEC.sample_rate
    if kind == "tone":
        return (0.3 * np.sin(2 * np.pi * rng.uniform(100, 800) * t)).astype(np.float32)
    audio = np.zeros(SPEC.n_samples, dtype=np.float32)  # decaying noise bursts ("impacts")
    for start in rng.integers(0, SPEC.n_samples - 4000, 3):
        audio[start:start + 4000] += (rng.normal(0, 0.3, 4000) * np.exp(-np.arange(4000) / 500)).astype(np.float32)
    return audio


@pytest.fixture(scope="module")
def audio_roots(tmp_path_factory) -> list[Path]:
    """Two audio-only shard roots (tones, bursts) with train/val/test; one train sample has no audio."""
    roots = []
    rng = np.random.default_rng(0)
    for kind in ("tone", "burst"):
        root = tmp_path_factory.mktemp(kind)
        for split, count in (("train", 6), ("val", 4), ("test", 4)):
            folder = root / split
            folder.mkdir()
            samples = [{"__key__": f"{kind}_{split}_{i}", "flac": encode_flac(_clip(rng, kind), SPEC.sample_rate),
                        "json": json.dumps({"events": [{"time": 0.5}]}).encode()} for i in range(count)]
            if split == "train" and kind == "burst":
                samples.append({"__key__": "broken", "json": b"{}"})
            index = read_index(folder)
            path = folder / f"{split}-000000.tar"
            record_shard(folder, index, path, write_shard(path, samples))
        roots.append(root)
    return roots


@pytest.fixture()
def vocoder_cfg(audio_roots, tmp_path):
    roots = "[" + ",".join(str(r) for r in audio_roots) + "]"
    return compose_config(TINY_VOCODER + [f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path / 'run'}",
                                          f"data.roots={roots}"])


def test_generator_maps_mel_frames_to_hop_samples():
    torch.manual_seed(0)
    generator = VocosGenerator(dim=16, hidden=32, depth=2, n_fft=640)
    for frames in (7, 50):
        wave = generator(torch.randn(3, 80, frames))
        assert wave.shape == (3, frames * 160) and torch.isfinite(wave).all()
    with pytest.raises(ValueError, match="expected mel"):
        generator(torch.randn(3, 64, 10))
    with pytest.raises(ValueError, match="n_fft"):
        VocosGenerator(hop_length=160, n_fft=128)


def test_discriminators_give_logits_and_feature_maps_per_sub_discriminator():
    torch.manual_seed(0)
    discriminators = VocoderDiscriminators(periods=(2, 3, 5), period_channels=(4, 8),
                                           resolutions=((256, 64), (512, 128)), resolution_channels=4)
    outputs = discriminators(torch.randn(2, 4001))  # a length no period divides
    assert len(outputs) == 5
    for logits, features in outputs:
        assert logits.ndim == 2 and logits.shape[0] == 2 and torch.isfinite(logits).all()
        assert len(features) >= 3 and all(f.shape[0] == 2 for f in features)
    with pytest.raises(ValueError, match="waveform"):
        discriminators(torch.randn(2, 1, 4000))


def test_losses_vanish_on_identical_audio_and_grow_with_the_error():
    torch.manual_seed(0)
    features, stft = LogMel(spec=SPEC), MultiResolutionSTFTLoss()
    real = torch.randn(2, 8000) * 0.1
    assert stft(real, real).item() == pytest.approx(0.0, abs=1e-5)
    assert mel_l1(features, real, real).item() == pytest.approx(0.0, abs=1e-6)
    slightly, badly = real + 0.01 * torch.randn_like(real), torch.randn_like(real) * 0.1
    assert 0 < stft(slightly, real) < stft(badly, real)
    assert 0 < mel_l1(features, slightly, real) < mel_l1(features, badly, real)
    perfect = [(torch.ones(2, 5), []), (torch.ones(2, 3), [])]
    fooled = [(torch.zeros(2, 5), []), (torch.zeros(2, 3), [])]
    assert discriminator_loss(perfect, fooled).item() == 0.0
    assert discriminator_loss(fooled, perfect).item() == 4.0


def test_one_step_of_each_optimizer(vocoder_cfg):
    """Step 0 is reconstruction-only (the discriminators stay put), step 1 updates both; global_step
    counts batches, not optimiser calls."""
    with open_dict(vocoder_cfg):
        vocoder_cfg.trainer.max_steps = 1
    torch.manual_seed(0)
    datamodule, module = instantiate(vocoder_cfg.data), instantiate(vocoder_cfg.model)
    g0 = [p.detach().clone() for p in module.generator.parameters()]
    d0 = [p.detach().clone() for p in module.discriminators.parameters()]

    def fit(max_steps: int, ckpt: str | None = None):
        trainer = instantiate(vocoder_cfg.trainer, max_steps=max_steps, logger=False, enable_checkpointing=False,
                              limit_val_batches=0)
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt)
        return trainer

    trainer = fit(1)
    assert trainer.global_step == 1
    assert any(not torch.equal(a, b) for a, b in zip(g0, module.generator.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(d0, module.discriminators.parameters(), strict=True))
    g1 = [p.detach().clone() for p in module.generator.parameters()]
    trainer = fit(2)  # a fresh fit: global_step restarts, so train 2 batches; the second one is adversarial
    assert trainer.global_step == 2
    assert any(not torch.equal(a, b) for a, b in zip(d0, module.discriminators.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(g1, module.generator.parameters(), strict=True))
    assert {"train/d_loss", "train/adv", "train/fm", "train/mel", "train/stft"} <= set(trainer.callback_metrics)


def test_audio_data_streams_every_root_and_skips_bad_samples(audio_roots, caplog):
    data = AudioShardDataModule(roots=[str(r) for r in audio_roots], spec=SPEC, batch_size=4, eval_batch_size=3,
                                shuffle_buffer=4, samples_per_epoch=48, seed=1)
    keys = []
    for batch in data.train_dataloader():
        assert batch["audio"].shape == (4, SPEC.n_samples)
        keys += batch["key"]
    assert len(keys) == 48 and "broken" not in keys
    assert {k.split("_")[0] for k in keys} == {"tone", "burst"}
    assert "skipping sample broken" in caplog.text
    test_keys = [k for batch in data.test_dataloader() for k in batch["key"]]
    assert sorted(test_keys) == sorted(f"{kind}_test_{i}" for kind in ("tone", "burst") for i in range(4))
    with pytest.raises(FileNotFoundError):
        AudioShardDataModule(roots=["/nonexistent"], spec=SPEC).train_dataloader()


def test_train_exports_a_vocoder_that_the_v2a_model_loads_without_pickle(vocoder_cfg, tmp_path):
    result = train(vocoder_cfg)
    assert result["checkpoint"].endswith("last.ckpt")
    assert np.isfinite(result["metrics"]["val/mel_l1"])
    export = tmp_path / "run" / "export"
    config = json.loads((export / "config.json").read_text())
    assert config["format"] == "v2a-vocoder" and config["trained_steps"] == 3
    generator, _ = load_vocoder_export(export)
    # Any training checkpoint exports to the same artifact (weights_only load, config from the checkpoint).
    again, _ = load_vocoder_export(export_checkpoint(result["checkpoint"], tmp_path / "from_ckpt"))
    assert all(torch.equal(a, b) for a, b in zip(generator.state_dict().values(), again.state_dict().values(),
                                                 strict=True))

    # The same weights behind the Vocoder interface, selected by config: model/vocoder=neural.
    v2a_cfg = compose_config(["experiment=v2a_tiny", "model/vocoder=neural", f"model.vocoder.checkpoint={export}",
                              f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path / 'v2a'}"])
    v2a = instantiate(v2a_cfg.model)
    assert isinstance(v2a.vocoder, NeuralVocoder)
    assert not any(p.requires_grad for p in v2a.vocoder.parameters())
    v2a.train()
    assert not v2a.vocoder.training  # a training V2A run never puts the frozen vocoder in train mode
    mel = v2a.features(torch.randn(2, SPEC.n_samples) * 0.1)
    with torch.no_grad():
        expected = generator(mel).clamp(-1, 1)
    assert torch.equal(v2a.vocoder(mel), expected)
    assert v2a.vocoder(mel).shape == (2, SPEC.n_samples)

    # An export trained on another normalisation is refused with the differing keys named.
    with pytest.raises(ValueError, match="mean"):
        NeuralVocoder(features=LogMel(spec=SPEC, mean=0.0), checkpoint=str(export))
    with pytest.raises(FileNotFoundError, match="not a vocoder export"):
        NeuralVocoder(features=v2a.features, checkpoint=str(tmp_path))
    broken = tmp_path / "broken"
    shutil.copytree(export, broken)
    (broken / "config.json").write_text(json.dumps({**config, "generator": {**config["generator"], "dim": 24}}))
    with pytest.raises(ValueError, match="weights do not match"):
        load_vocoder_export(broken)


def test_speech_shards_are_deterministic(tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    from data_prep.make_speech_shards import build_split

    for name in ("a", "b"):
        assert build_split(tmp_path / name, "test", 2, seed=3, duration=0.5, sample_rate=16000, per_shard=2) == 2
    a = read_index(tmp_path / "a" / "test")["shards"][0]["sha256"]
    assert a == read_index(tmp_path / "b" / "test")["shards"][0]["sha256"]
    data = AudioShardDataModule(roots=[str(tmp_path / "a")], spec=SPEC, eval_batch_size=2)
    batch = next(iter(data.test_dataloader()))
    assert batch["meta"][0]["source"] == "espeak-ng" and batch["meta"][0]["transcript"]
    assert batch["audio"][:, :8000].abs().amax(dim=1).min() > 0.1  # speech in the first 0.5 s, zero padded after

