"""The av-benchmark columns: their arithmetic against hand-computed values, and every embedder's plumbing with a
tiny random stand-in of the real model's interface (no weights are downloaded; the real ones are the user's)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from v2a.evaluation import av_metrics
from v2a.evaluation.av_benchmark import AVBenchmark, Clip, main, score_folders
from v2a.evaluation.av_embedders import (
    Cnn14,
    PANNsEmbedder,
    PaSSTEmbedder,
    VGGish,
    VGGishEmbedder,
    prepare_audio,
    vggish_examples,
)
from v2a.evaluation.av_video_scorers import ImageBindScorer, SynchformerDeSync, frames_at

TINY_CNN14 = {"widths": (4, 8), "classes": 527}
TINY_VGGISH = {"widths": (2, 2, 2, 2, 2, 2), "hidden": 8, "out": 4}


# --- arithmetic ---------------------------------------------------------------------------------------------------

def test_kl_softmax_is_audioldm_evals():
    gen = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 0.0]])
    ref = np.array([[2.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    p_ref = np.exp(ref) / np.exp(ref).sum(1, keepdims=True)
    p_gen = np.exp(gen) / np.exp(gen).sum(1, keepdims=True)
    expected = (p_ref * (np.log(p_ref) - np.log(p_gen + 1e-6))).sum() / 2
    assert math.isclose(av_metrics.kl_softmax(gen, ref), expected, rel_tol=1e-9)
    assert av_metrics.kl_softmax(ref, ref) < 1e-5


def test_inception_score_counts_confident_distinct_classes():
    # 20 clips, each split of 2 holds two confident, different classes: IS = 2 in every split
    logits = np.full((20, 5), -50.0)
    logits[np.arange(20), np.arange(20) % 2] = 50.0
    mean, std = av_metrics.inception_score(logits, shuffle=False)
    assert math.isclose(mean, 2.0, rel_tol=1e-6) and std < 1e-6
    assert av_metrics.inception_score(logits)[0] <= 2.0 + 1e-6   # shuffled (seed 2020): never above the class count


def test_imagebind_score_and_desync():
    v = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert math.isclose(av_metrics.imagebind_score(v, np.array([[3.0, 0.0], [1.0, 0.0]])), 0.5)
    grid = av_metrics.sync_grid()
    assert len(grid) == 21 and grid[0] == -2.0 and grid[10] == 0.0 and math.isclose(grid[11], 0.2)
    first, last = np.eye(21)[[10, 0]], np.eye(21)[[12, 20]]   # offsets 0, -2 s and +0.4, +2 s
    assert math.isclose(av_metrics.desync([first, last]), (0 + 2 + 0.4 + 2) / 4)


def test_fd_of_identical_sets_is_zero():
    x = np.random.default_rng(0).normal(size=(50, 4))
    assert av_metrics.fd(x, x) < 1e-6 and av_metrics.fd(x, x + 1) > 3.9


# --- audio preparation -------------------------------------------------------------------------------------------

def test_prepare_audio_removes_the_mean_resamples_and_cuts():
    audio = np.ones((2, 48000), dtype=np.float32) * 0.5 + np.sin(np.arange(48000) / 10)[None] * 0.1
    x = prepare_audio(audio, 48000, 16000, 0.5)
    assert x.shape == (2, 8000) and abs(float(x.mean())) < 0.02


def test_vggish_examples_are_96_frames_of_64_mels():
    examples = vggish_examples(torch.randn(16000 * 2))
    assert examples.shape == (2, 1, 96, 64)   # 2 s -> two 0.96 s examples (the rest is dropped)


# --- the embedders, with tiny random stand-ins -----------------------------------------------------------------

@pytest.fixture()
def panns(tmp_path) -> PANNsEmbedder:
    """PANNs through its real loader: a tiny random CNN14 saved as a PANNs checkpoint (with torchlibrosa's keys)."""
    torch.manual_seed(0)
    state = Cnn14(**TINY_CNN14).state_dict()
    state["spectrogram_extractor.stft.conv_real.weight"] = torch.zeros(1)   # present in the official file, unused
    state["logmel_extractor.melW"] = torch.zeros(1)
    torch.save({"model": state}, tmp_path / "Cnn14_16k.pth")
    return PANNsEmbedder(str(tmp_path / "Cnn14_16k.pth"), architecture=TINY_CNN14, duration=1.0, device="cpu")


@pytest.fixture()
def vggish(tmp_path) -> VGGishEmbedder:
    torch.manual_seed(0)
    torch.save(VGGish(**TINY_VGGISH).state_dict(), tmp_path / "vggish.pth")
    return VGGishEmbedder(str(tmp_path / "vggish.pth"), architecture=TINY_VGGISH, duration=2.0, device="cpu")


class PaSSTStandIn(nn.Module):
    """hear21passt's wrapper interface in mode "all": 32 kHz [B, 320000] -> [B, 527 logits + 768 embedding]."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 527 + 768)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        assert wav.shape[-1] == 320000   # av-benchmark pads every clip to 10 s at 32 kHz
        chunks = wav.reshape(len(wav), 4, -1)
        return self.proj(chunks.pow(2).mean(-1))


class ImageBindStandIn(nn.Module):
    """ImageBind's interface: {"vision": [B, N, 3, 2, 224, 224]} or {"audio": [B, 3, 1, 128, 204]} -> [B, D]."""

    def __init__(self) -> None:
        super().__init__()
        self.vision, self.audio = nn.Linear(3, 8), nn.Linear(128, 8)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if "vision" in inputs:
            x = inputs["vision"]
            assert x.shape[2:] == (3, 2, 224, 224)
            return {"vision": self.vision(x.mean(dim=(3, 4, 5))).mean(1)}
        x = inputs["audio"]
        assert x.shape[1:] == (3, 1, 128, 204)
        return {"audio": self.audio(x.mean(dim=-1)[:, :, 0]).mean(1)}


class SynchformerStandIn(nn.Module):
    """Synchformer's interface: extract_vfeats, extract_afeats, compare_v_a -> 21 offset logits."""

    def __init__(self) -> None:
        super().__init__()
        self.v, self.a, self.head = nn.Linear(3, 4), nn.Linear(128, 4), nn.Linear(8, 21)

    def extract_vfeats(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1:] == (1, 16, 3, 224, 224)
        return self.v(x.mean(dim=(-1, -2)))                     # [S, 1, 16, 4]

    def extract_afeats(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[2:] == (1, 128, 66)
        return self.a(x[:, :, 0].transpose(-1, -2))[:, :, :16]   # [B, S, 16, 4]

    def compare_v_a(self, v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        assert v.shape[1] == a.shape[1] == 14
        return self.head(torch.cat([v.mean(dim=(1, 2)), a.mean(dim=(1, 2))], dim=-1))


def test_panns_loads_an_official_layout_checkpoint(panns):
    out = panns.analyse(np.random.default_rng(0).normal(size=(3, 24000)).astype(np.float32) * 0.1, 16000)
    assert out["embedding"].shape == (3, 8) and out["logits"].shape == (3, 527)
    assert panns.embed(np.zeros((1, 24000), np.float32) + 0.1, 16000).shape == (1, 8)
    assert panns.name == "panns" and "panns-cnn14-16k" in panns.identity()   # evaluate.py's FAD embedder interface


def test_full_size_cnn14_and_vggish_have_the_checkpoints_shapes():
    cnn = Cnn14()
    assert cnn.fc1.weight.shape == (2048, 2048) and cnn.fc_audioset.weight.shape == (527, 2048)
    assert {k.split(".")[0] for k in cnn.state_dict()} == {"bn0", *(f"conv_block{i}" for i in range(1, 7)), "fc1",
                                                          "fc_audioset"}
    vgg = VGGish()
    assert vgg.embeddings[0].weight.shape == (4096, 512 * 4 * 6) and vgg.embeddings[4].weight.shape == (128, 4096)
    assert [k for k in vgg.state_dict() if k.endswith("weight")][:2] == ["features.0.weight", "features.3.weight"]


def test_vggish_gives_one_embedding_per_frame(vggish):
    frames = vggish.embed_frames(np.random.default_rng(0).normal(size=(2, 48000)).astype(np.float32), 24000)
    assert [f.shape for f in frames] == [(2, 4), (2, 4)]
    assert vggish.embed(np.zeros((2, 32000), np.float32), 16000).shape == (2, 4)


def test_passt_pads_to_ten_seconds_and_splits_logits():
    passt = PaSSTEmbedder(model=PaSSTStandIn(), duration=8.0, device="cpu")
    out = passt.analyse(np.random.default_rng(0).normal(size=(2, 16000)).astype(np.float32), 16000)
    assert out["logits"].shape == (2, 527) and out["embedding"].shape == (2, 768)


def test_imagebind_and_synchformer_inputs():
    rng = np.random.default_rng(0)
    video = rng.integers(0, 255, size=(120, 48, 64, 3), dtype=np.uint8)   # 4.8 s at 25 fps, landscape
    ib = ImageBindScorer(model=ImageBindStandIn(), duration=4.0, device="cpu")
    assert ib.video_input(video, 25.0).shape == (3 * 1, 3, 2, 224, 224)   # 2 frames at 0.5 fps: 1 pair x 3 crops
    assert ib.video_embedding(video, 25.0).shape == (8,)
    assert ib.audio_embeddings(rng.normal(size=(2, 16000 * 4)).astype(np.float32), 16000).shape == (2, 8)
    sync = SynchformerDeSync(model=SynchformerStandIn(), duration=4.8, device="cpu")
    v = sync.video_features(video, 25.0)
    a = sync.audio_features(rng.normal(size=(1, 16000 * 5)).astype(np.float32), 16000)
    assert v.shape[0] == 14 and a.shape[:2] == (1, 14)   # (4.8 s - 0.64 s) / 0.32 s + 1 segments
    first, last = sync.offset_logits(v[None], a)
    assert first.shape == last.shape == (1, 21)
    with pytest.raises(ValueError, match="too short"):
        frames_at(video[:10], 25.0, 25.0, 120)


def test_the_benchmark_scores_every_column(panns, vggish, tmp_path):
    rng = np.random.default_rng(0)

    def clip(i: int, video: bool) -> Clip:
        return Clip(f"c{i}", rng.normal(size=16000 * 5).astype(np.float32) * 0.1,
                    rng.normal(size=16000 * 5).astype(np.float32) * 0.1, 16000,
                    rng.integers(0, 255, size=(120, 24, 32, 3), dtype=np.uint8) if video else None, 25.0)

    panns.duration = vggish.duration = 4.8
    audio_only = AVBenchmark(passt=PaSSTEmbedder(model=PaSSTStandIn(), duration=4.8, device="cpu"), panns=panns,
                             vggish=vggish, batch_size=4)
    metrics = audio_only.score([clip(i, False) for i in range(10)])   # IS needs 10 clips (10 splits)
    assert set(metrics) == {"FD-PASST", "FD-PANN", "FD-VGG", "KL-PANNS-softmax", "KL-PASST-softmax", "ISC-PANNS-mean",
                            "ISC-PANNS-std", "ISC-PASST-mean", "ISC-PASST-std"}
    assert all(np.isfinite(v) for v in metrics.values()) and {"IB-Score", "DeSync"} <= set(audio_only.skipped)
    with_video = AVBenchmark(imagebind=ImageBindScorer(model=ImageBindStandIn(), duration=4.8, device="cpu"),
                             synchformer=SynchformerDeSync(model=SynchformerStandIn(), duration=4.8, device="cpu"))
    metrics = with_video.score([clip(i, True) for i in range(2)])
    assert set(metrics) == {"IB-Score", "DeSync"} and 0 <= metrics["DeSync"] <= 2 and -1 <= metrics["IB-Score"] <= 1
    with pytest.raises(ValueError, match="video"):
        with_video.score([clip(0, False)])
    # the ground truth scored against itself: FD 0, KL 0
    refs = [clip(i, False) for i in range(4)]
    same = AVBenchmark(panns=panns).score([Clip(c.key, c.reference, c.reference, 16000) for c in refs])
    assert same["FD-PANN"] < 1e-3 and same["KL-PANNS-softmax"] < 1e-4


def test_folders_and_the_cli(panns, tmp_path, capsys):
    from v2a.media import write_audio

    rng = np.random.default_rng(0)
    for folder in ("gt", "pred"):
        for i in range(3):
            write_audio(tmp_path / folder / f"clip{i}.wav", rng.normal(size=16000).astype(np.float32) * 0.1, 16000)
    write_audio(tmp_path / "pred" / "extra.wav", np.zeros(16000, np.float32), 16000)   # unpaired: left out
    panns.duration = 1.0
    result = score_folders(tmp_path / "gt", tmp_path / "pred", None, AVBenchmark(panns=panns), tmp_path / "out")
    assert set(result["metrics"]) == {"FD-PANN", "KL-PANNS-softmax"} and "FD-VGG" in result["skipped"]
    assert json.loads((tmp_path / "out" / "av_benchmark.json").read_text())["metrics"] == result["metrics"]
    assert main([f"gt={tmp_path / 'gt'}", f"pred={tmp_path / 'pred'}", f"weights.panns={tmp_path / 'nope.pth'}"]) == 2
    err = capsys.readouterr().err
    assert "weights.panns=" in err and "does not exist" in err
