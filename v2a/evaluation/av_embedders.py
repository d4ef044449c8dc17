"""The av-benchmark embedders (PaSST, PANNs, VGGish, ImageBind, Synchformer) from weights the user supplies.

Each wraps a model with the input preparation av-benchmark (hkchengrex/av-benchmark, MMAudio's evaluation) uses,
so the columns it feeds (:mod:`v2a.evaluation.av_metrics`) sit beside the papers'. Nothing is downloaded: every
loader reads a local ``weights`` path (a missing one is an error naming the key). Audio is prepared as
av-benchmark's loader does: mono, the clip's mean removed, resampled with torchaudio to the model's rate, cut to
``duration`` seconds (8 s for VGGSound, as MMAudio evaluates).

| class | model (where it comes from) | weights file the user supplies | gives |
| --- | --- | --- | --- |
| :class:`PaSSTEmbedder` | ``hear21passt`` (PyPI) ``passt_s_swa_p16_128_ap476`` at 32 kHz, padded to 10 s | ``passt-s-f128-p16-s10-ap.476-swa.pt`` | 768-d embedding, 527 logits |
| :class:`PANNsEmbedder` | CNN14 at 16 kHz (:class:`Cnn14`, PANNs' architecture) | ``Cnn14_16k_mAP=0.438.pth`` | 2048-d embedding, 527 logits |
| :class:`VGGishEmbedder` | VGGish (:class:`VGGish`, torchvggish's layout, no PCA) | ``vggish-10086976.pth`` | 128-d per 0.96 s frame |
| :class:`ImageBindScorer` | ImageBind huge (the ``imagebind`` code, ``factory``) | ``imagebind_huge.pth`` | video and audio embeddings |
| :class:`SynchformerDeSync` | Synchformer (av-benchmark's code, ``factory``) | ``synchformer_state_dict.pth`` | 21 offset logits per 4.8 s |

Every class also takes ``model=``: any object with the same interface (the tests pass tiny random stand-ins).
The FD embedders (:class:`PaSSTEmbedder`, :class:`PANNsEmbedder`, :class:`VGGishEmbedder`) are also
:class:`~v2a.evaluation.embedders.AudioEmbedder`\\ s (``name``, ``identity()``, ``embed()``): listed in
``evaluate.py embedders=[...]`` they add ``quality/fad_<name>`` with its floor and ceiling.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from v2a.models.backbones import file_digest, require_weights

N_CLASSES = 527   # AudioSet


def _device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def prepare_audio(audio: np.ndarray | torch.Tensor, sample_rate: int, rate: int, duration: float | None) -> torch.Tensor:
    """av-benchmark's audio loader: [B, N] (or [N]) -> [B, M] float32 at ``rate``: per-clip mean removed, resampled
    (torchaudio's sinc resampler, its defaults), cut to ``duration`` s (no padding: clips must be long enough)."""
    x = torch.as_tensor(np.asarray(audio) if not isinstance(audio, torch.Tensor) else audio, dtype=torch.float32)
    x = x[None] if x.ndim == 1 else x
    x = x - x.mean(dim=-1, keepdim=True)
    if sample_rate != rate:
        x = torchaudio.functional.resample(x, sample_rate, rate)
    return x[:, : int(rate * duration)] if duration else x


def _load_state(weights: str | Path | None, key: str, what: str) -> dict[str, torch.Tensor]:
    path = require_weights(weights, key=key, what=what)
    state = torch.load(path, map_location="cpu", weights_only=False)
    return state.get("model", state.get("state_dict", state)) if isinstance(state, dict) else state


def _identity(name: str, weights: str | None, model: Any, **settings: Any) -> str:
    digest = file_digest(weights)[:16] if weights else f"in-memory:{type(model).__name__}"
    return f"{name}:{digest}:" + ",".join(f"{k}={v}" for k, v in sorted(settings.items()))


def _factory(path: str) -> Callable[..., Any]:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


# --- PANNs (CNN14, 16 kHz) -------------------------------------------------------------------------------------

class _ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1, self.bn2 = nn.BatchNorm2d(cout), nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, pool: tuple[int, int]) -> torch.Tensor:
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return F.avg_pool2d(x, pool)


class Cnn14(nn.Module):
    """PANNs' CNN14 (Kong et al. 2020) in eval mode: waveform [B, N] -> {"embedding" [B, 2048], "logits" [B, 527]}.

    The front end is the one torchlibrosa computes (periodic Hann STFT, centred with reflection, power; Slaney mel
    filters; 10 log10 with amin 1e-10), here in torch, so the official checkpoint's fixed STFT/mel buffers are
    not needed. av-benchmark's settings: 16 kHz, window 512, hop 160, 64 mels from 50 to 8000 Hz.
    """

    def __init__(self, *, sample_rate: int = 16000, window: int = 512, hop: int = 160, mels: int = 64,
                 fmin: float = 50.0, fmax: float = 8000.0, classes: int = N_CLASSES,
                 widths: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)) -> None:
        super().__init__()
        self.window, self.hop = window, hop
        self.register_buffer("hann", torch.hann_window(window, periodic=True), persistent=False)
        fbank = torchaudio.functional.melscale_fbanks(window // 2 + 1, fmin, fmax, mels, sample_rate, norm="slaney",
                                                      mel_scale="slaney")
        self.register_buffer("mel", fbank, persistent=False)   # [freqs, mels]
        self.bn0 = nn.BatchNorm2d(mels)
        blocks, cin = [], 1
        for cout in widths:
            blocks.append(_ConvBlock(cin, cout))
            cin = cout
        for i, block in enumerate(blocks, 1):
            self.add_module(f"conv_block{i}", block)
        self.n_blocks = len(blocks)
        self.fc1 = nn.Linear(cin, cin)
        self.fc_audioset = nn.Linear(cin, classes)

    def logmel(self, wav: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(wav, self.window, self.hop, window=self.hann, center=True, pad_mode="reflect",
                          return_complex=True).abs() ** 2                       # [B, freqs, frames]
        mel = torch.matmul(spec.transpose(1, 2), self.mel)                       # [B, frames, mels]
        return 10 * torch.log10(mel.clamp_min(1e-10))[:, None]                   # [B, 1, frames, mels]

    def forward(self, wav: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.logmel(wav)
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        for i in range(1, self.n_blocks + 1):
            x = getattr(self, f"conv_block{i}")(x, (2, 2) if i < self.n_blocks else (1, 1))
        x = x.mean(dim=3)
        x = x.max(dim=2).values + x.mean(dim=2)
        x = F.relu(self.fc1(x))
        return {"embedding": x, "logits": self.fc_audioset(x)}

    def load_official(self, state: dict[str, torch.Tensor]) -> None:
        """Load a PANNs checkpoint (its torchlibrosa STFT/mel buffers and spec-augmenter are not used here)."""
        state = {k: v for k, v in state.items()
                 if not k.startswith(("spectrogram_extractor.", "logmel_extractor.", "spec_augmenter."))}
        self.load_state_dict(state)


class PANNsEmbedder:
    """FD_PANNs (2048-d ``embedding``), KL_PANNs and IS_PANNs (``logits``), as av-benchmark: CNN14 at 16 kHz."""

    rate = 16000

    def __init__(self, weights: str | None = None, *, duration: float | None = 8.0, device: str | None = "auto",
                 batch_size: int = 16, model: Callable[[torch.Tensor], dict] | None = None,
                 key: str = "panns", architecture: dict | None = None) -> None:
        self.name, self.duration, self.batch_size, self.weights = "panns", duration, batch_size, weights
        self.device = _device(device)
        if model is None:
            model = Cnn14(**(architecture or {}))   # architecture: a smaller CNN14 (tests); the checkpoint's by default
            model.load_official(_load_state(weights, key, "the PANNs CNN14 16 kHz checkpoint (Cnn14_16k_mAP=0.438.pth)"))
        self.model = model.to(self.device).eval() if isinstance(model, nn.Module) else model

    def identity(self) -> str:
        return _identity("panns-cnn14-16k", self.weights, self.model, duration=self.duration)

    @torch.no_grad()
    def analyse(self, audio: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        x = prepare_audio(audio, sample_rate, self.rate, self.duration)
        out: dict[str, list] = {"embedding": [], "logits": []}
        for part in x.split(self.batch_size):
            result = self.model(part.to(self.device))
            for k in out:
                out[k].append(result[k].float().cpu().numpy())
        return {k: np.concatenate(v) for k, v in out.items()}

    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        return self.analyse(audio, sample_rate)["embedding"]


# --- PaSST (32 kHz, 10 s) --------------------------------------------------------------------------------------

class PaSSTEmbedder:
    """FD_PaSST (768-d embedding) and KL_PaSST / IS_PaSST (527 logits), as av-benchmark: hear21passt's
    ``passt_s_swa_p16_128_ap476`` in mode "all" on 32 kHz audio zero-padded (or cut) to 10 s; its output is
    [logits 527 | embedding 768]."""

    rate = 32000
    length = 320000

    def __init__(self, weights: str | None = None, *, duration: float | None = 8.0, device: str | None = "auto",
                 batch_size: int = 16, model: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 key: str = "passt") -> None:
        self.name, self.duration, self.batch_size, self.weights = "passt", duration, batch_size, weights
        self.device = _device(device)
        if model is None:
            state = _load_state(weights, key, "the PaSST checkpoint (passt-s-f128-p16-s10-ap.476-swa.pt)")
            try:
                from hear21passt.models.passt import get_model
                from hear21passt.models.preprocess import AugmentMelSTFT
                from hear21passt.wrapper import PasstBasicWrapper
            except ImportError as error:
                raise ImportError("PaSST needs the optional extra: pip install -e '.[av-benchmark]' (hear21passt)") from error
            # hear21passt's get_basic_model(mode="all") without its download: the same mel front end and network
            mel = AugmentMelSTFT(n_mels=128, sr=32000, win_length=800, hopsize=320, n_fft=1024, freqm=48, timem=192,
                                 htk=False, fmin=0.0, fmax=None, norm=1, fmin_aug_range=10, fmax_aug_range=2000)
            net = get_model(arch="passt_s_swa_p16_128_ap476", pretrained=False)
            net.load_state_dict(state)
            model = PasstBasicWrapper(mel=mel, net=net, mode="all")
        self.model = model.to(self.device).eval() if isinstance(model, nn.Module) else model

    def identity(self) -> str:
        return _identity("passt-s-swa-ap476", self.weights, self.model, duration=self.duration)

    @torch.no_grad()
    def analyse(self, audio: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        x = prepare_audio(audio, sample_rate, self.rate, self.duration)
        x = F.pad(x, (0, self.length - x.shape[-1])) if x.shape[-1] < self.length else x[:, : self.length]
        outs = [self.model(part.to(self.device)).float().cpu().numpy() for part in x.split(self.batch_size)]
        out = np.concatenate(outs)
        return {"logits": out[:, :N_CLASSES], "embedding": out[:, N_CLASSES:]}

    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        return self.analyse(audio, sample_rate)["embedding"]


# --- VGGish (16 kHz, 0.96 s frames) ----------------------------------------------------------------------------

def _hertz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)


def vggish_mel_matrix(bins: int = 64, spectrogram_bins: int = 257, rate: int = 16000, low: float = 125.0,
                      high: float = 7500.0) -> np.ndarray:
    """VGGish's HTK-mel weights [spectrogram_bins, bins] (the TF reference's; the DC bin weighs nothing)."""
    spectrogram_mels = _hertz_to_mel(np.linspace(0.0, rate / 2, spectrogram_bins))
    edges = np.linspace(_hertz_to_mel(low), _hertz_to_mel(high), bins + 2)
    weights = np.empty((spectrogram_bins, bins))
    for i in range(bins):
        lower, center, upper = edges[i:i + 3]
        weights[:, i] = np.maximum(0.0, np.minimum((spectrogram_mels - lower) / (center - lower),
                                                   (upper - spectrogram_mels) / (upper - center)))
    weights[0, :] = 0.0
    return weights


def vggish_examples(wav: torch.Tensor) -> torch.Tensor:
    """16 kHz mono [N] -> log-mel examples [n, 1, 96, 64]: 25 ms periodic-Hann frames every 10 ms (no padding), 512-point
    magnitude FFT, 64 HTK mel bands 125-7500 Hz, log(mel + 0.01), non-overlapping 0.96 s examples."""
    frames = wav.unfold(0, 400, 160) if len(wav) >= 400 else wav.new_zeros((0, 400))
    window = 0.5 - 0.5 * torch.cos(2 * math.pi * torch.arange(400, dtype=torch.float64) / 400)
    spectrum = torch.fft.rfft(frames.double() * window, n=512).abs()
    mel = spectrum @ torch.from_numpy(vggish_mel_matrix())
    log_mel = torch.log(mel + 0.01).float()
    n = len(log_mel) // 96
    return log_mel[: n * 96].reshape(n, 1, 96, 64)


class VGGish(nn.Module):
    """VGGish as torchvggish lays it out (``features``, ``embeddings``, the last ReLU kept, no PCA), the
    network av-benchmark runs with ``postprocess=False``: 16 kHz mono [N] -> embeddings [n_frames, 128]."""

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256, 256, 512, 512), hidden: int = 4096,
                 out: int = 128) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for i, cout in enumerate(widths):
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]
            if i in (0, 1, 3, 5):
                layers.append(nn.MaxPool2d(2, 2))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(nn.Linear(cin * 4 * 6, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, hidden),
                                        nn.ReLU(inplace=True), nn.Linear(hidden, out), nn.ReLU(inplace=True))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = self.features(vggish_examples(wav).to(self.embeddings[0].weight.device))
        x = x.permute(0, 2, 3, 1).flatten(1)   # channels last before flattening, as the TF model
        return self.embeddings(x)


class VGGishEmbedder:
    """FD_VGG, as av-benchmark: VGGish embeddings per 0.96 s frame; :meth:`embed_frames` gives every frame (FD over
    all clips' frames pooled), :meth:`embed` one mean vector per clip (the evaluate.py FAD interface)."""

    rate = 16000

    def __init__(self, weights: str | None = None, *, duration: float | None = 8.0, device: str | None = "auto",
                 model: Callable[[torch.Tensor], torch.Tensor] | None = None, key: str = "vggish",
                 architecture: dict | None = None) -> None:
        self.name, self.duration, self.weights = "vggish", duration, weights
        self.device = _device(device)
        if model is None:
            model = VGGish(**(architecture or {}))   # architecture: a smaller VGGish (tests); the checkpoint's by default
            model.load_state_dict(_load_state(weights, key, "the VGGish checkpoint (torchvggish's vggish-10086976.pth)"))
        self.model = model.to(self.device).eval() if isinstance(model, nn.Module) else model

    def identity(self) -> str:
        return _identity("vggish", self.weights, self.model, duration=self.duration)

    @torch.no_grad()
    def embed_frames(self, audio: np.ndarray, sample_rate: int) -> list[np.ndarray]:
        x = prepare_audio(audio, sample_rate, self.rate, self.duration)
        return [self.model(clip).float().cpu().numpy() for clip in x]

    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        return np.stack([frames.mean(axis=0) for frames in self.embed_frames(audio, sample_rate)])


# --- video frames at a rate -------------------------------------------------------------------------------------

def frames_at(frames: np.ndarray, fps: float, rate: float, count: int) -> np.ndarray:
    """``count`` frames at ``rate`` fps from frames [T, H, W, 3] at ``fps`` (nearest frame, as ffmpeg's fps filter
    with round=near); an error when the video is shorter."""
    index = np.round(np.arange(count) / rate * fps + 1e-6).astype(np.int64)
    if len(frames) == 0 or index[-1] > len(frames):
        raise ValueError(f"video too short: {len(frames)} frames at {fps} fps, {count} needed at {rate} fps")
    return frames[np.minimum(index, len(frames) - 1)]


def _resize_short(x: torch.Tensor, size: int) -> torch.Tensor:
    """[T, 3, H, W] uint8 -> float [T, 3, h, w] in [0, 1], short side ``size``: bicubic, antialiased and rounded to
    uint8 as torchvision's ``v2.Resize`` does on uint8 video (av-benchmark resizes before converting to float)."""
    h, w = x.shape[-2:]
    if min(h, w) != size:
        scale = size / min(h, w)
        x = F.interpolate(x.float(), size=(max(size, int(h * scale)), max(size, int(w * scale))), mode="bicubic",
                          align_corners=False, antialias=True).round().clamp(0, 255)
    return x.float() / 255


def _normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


# --- ImageBind (audio-video score) -----------------------------------------------------------------------------

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


class ImageBindScorer:
    """IB-score: cosine similarity of ImageBind's video embedding (the clip at 0.5 fps, 224 px short side, three
    spatial crops, pairs of consecutive frames) and audio embedding (three 2 s clips spread over the clip, 128-bin
    Kaldi fbank of 204 frames, normalised with ImageBind's mean -4.268 and std 9.138), as av-benchmark.

    ``model(inputs: {"vision" | "audio": tensor}) -> {same key: [B, D]}`` (ImageBind's own interface, averaging over
    clips and crops); built by ``factory`` (default: the official code's ``imagebind_huge``) from ``weights``.
    """

    fps, size, clip_s, clips = 0.5, 224, 2.0, 3

    def __init__(self, weights: str | None = None, *, duration: float = 8.0, device: str | None = "auto",
                 factory: str = "imagebind.models.imagebind_model.imagebind_huge", model: Any = None,
                 key: str = "imagebind") -> None:
        self.duration, self.weights, self.device = duration, weights, _device(device)
        if model is None:
            state = _load_state(weights, key, "the ImageBind checkpoint (imagebind_huge.pth)")
            try:
                model = _factory(factory)(pretrained=False)
            except ImportError as error:
                raise ImportError(f"ImageBind needs its code ({factory}): install facebookresearch/ImageBind") from error
            model.load_state_dict(state)
        self.model = model.to(self.device).eval() if isinstance(model, nn.Module) else model

    def identity(self) -> str:
        return _identity("imagebind-huge", self.weights, self.model, duration=self.duration)

    def video_input(self, frames: np.ndarray, fps: float) -> torch.Tensor:
        """frames [T, H, W, 3] -> [3 crops x (n-1) pairs, 3, 2, 224, 224]."""
        n = int(self.fps * self.duration)
        x = _normalize(_resize_short(torch.from_numpy(frames_at(frames, fps, self.fps, n)).permute(0, 3, 1, 2), self.size),
                       CLIP_MEAN, CLIP_STD)                                      # [n, 3, h, w]
        h, w = x.shape[-2:]
        if w >= h:   # left, centre, right (pytorchvideo's SpatialCrop for landscape video)
            offsets = [(0, (h - self.size) // 2), ((w - self.size) // 2, (h - self.size) // 2), (w - self.size, (h - self.size) // 2)]
        else:
            offsets = [((w - self.size) // 2, 0), ((w - self.size) // 2, (h - self.size) // 2), ((w - self.size) // 2, h - self.size)]
        crops = [x[..., y:y + self.size, x0:x0 + self.size] for x0, y in offsets]
        pairs = [crop[i:i + 2].permute(1, 0, 2, 3) for crop in crops for i in range(n - 1)]   # [3, 2, S, S] each
        return torch.stack(pairs)

    def audio_input(self, wav16k: torch.Tensor) -> torch.Tensor:
        """16 kHz mono [N] -> [3 clips, 1, 128, 204] Kaldi fbanks (ImageBind's audio transform)."""
        seconds = len(wav16k) / 16000
        step = max(seconds - self.clip_s, 0) / max(self.clips - 1, 1)
        out = []
        for i in range(self.clips):
            piece = wav16k[int(i * step * 16000): int((i * step + self.clip_s) * 16000)][None].double()
            fbank = torchaudio.compliance.kaldi.fbank(piece - piece.mean(), htk_compat=True, sample_frequency=16000,
                                                      use_energy=False, window_type="hanning", num_mel_bins=128,
                                                      dither=0.0, frame_length=25, frame_shift=10).T
            fbank = F.pad(fbank, (0, max(0, 204 - fbank.shape[1])))[:, :204]
            out.append(((fbank - -4.268) / 9.138).float()[None])
        return torch.stack(out)

    @torch.no_grad()
    def video_embedding(self, frames: np.ndarray, fps: float) -> np.ndarray:
        x = self.video_input(frames, fps)[None].to(self.device)
        return self.model({"vision": x})["vision"][0].float().cpu().numpy()

    @torch.no_grad()
    def audio_embeddings(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        # av-benchmark resamples the file with torchaudio; no mean removal or cut before the clip sampler
        wav = torchaudio.functional.resample(torch.as_tensor(np.asarray(audio), dtype=torch.float32), sample_rate, 16000)
        wav = wav[None] if wav.ndim == 1 else wav
        x = torch.stack([self.audio_input(clip) for clip in wav]).to(self.device)
        return self.model({"audio": x})["audio"].float().cpu().numpy()


# --- Synchformer (DeSync) --------------------------------------------------------------------------------------

class SynchformerDeSync:
    """DeSync, as av-benchmark: Synchformer's offset classes for the first and the last 4.8 s of each clip.

    Video: 25 fps, 224 px (short side, bicubic, centre crop), normalised to [-1, 1], segments of 16 frames every 8.
    Audio: 16 kHz cut to ``duration``, segments of 10240 samples every 5120, 128-bin mel (n_fft 1024, window 400,
    hop 160), log(x + 1e-6), padded or cut to 66 frames, normalised with mean -4.2677393 and 2 x std 4.5689974.
    ``model`` has ``extract_vfeats([S, 1, 16, 3, 224, 224])``, ``extract_afeats([B, S, 1, 128, 66])`` and
    ``compare_v_a(v [B, 14, ...], a [B, 14, ...]) -> [B, 21]`` (Synchformer's interface); built by ``factory``.
    """

    fps, size, segment, step, windows = 25.0, 224, 16, 8, 14
    audio_segment, audio_step = 10240, 5120

    def __init__(self, weights: str | None = None, *, duration: float = 8.0, device: str | None = "auto",
                 factory: str = "av_bench.synchformer.synchformer.Synchformer", model: Any = None,
                 key: str = "synchformer") -> None:
        self.duration, self.weights, self.device = duration, weights, _device(device)
        if model is None:
            state = _load_state(weights, key, "the Synchformer checkpoint (synchformer_state_dict.pth)")
            try:
                model = _factory(factory)()
            except ImportError as error:
                raise ImportError(f"DeSync needs Synchformer's code ({factory}): install av-benchmark (hkchengrex/av-benchmark)") from error
            model.load_state_dict(state)
        self.model = model.to(self.device).eval() if isinstance(model, nn.Module) else model
        self.mel = torchaudio.transforms.MelSpectrogram(sample_rate=16000, win_length=400, hop_length=160, n_fft=1024,
                                                        n_mels=128)

    def identity(self) -> str:
        return _identity("synchformer", self.weights, self.model, duration=self.duration)

    @torch.no_grad()
    def video_features(self, frames: np.ndarray, fps: float) -> torch.Tensor:
        """frames [T, H, W, 3] -> Synchformer visual features [S, t, d]."""
        n = int(self.fps * self.duration)
        x = _resize_short(torch.from_numpy(frames_at(frames, fps, self.fps, n)).permute(0, 3, 1, 2), self.size)
        h, w = x.shape[-2:]
        top, left = (h - self.size) // 2, (w - self.size) // 2
        x = (x[..., top:top + self.size, left:left + self.size] - 0.5) / 0.5
        starts = range(0, n - self.segment + 1, self.step)
        segments = torch.stack([x[s:s + self.segment] for s in starts])[:, None]     # [S, 1, 16, 3, 224, 224]
        return self.model.extract_vfeats(segments.to(self.device))[:, 0]

    @torch.no_grad()
    def audio_features(self, audio: np.ndarray, sample_rate: int) -> torch.Tensor:
        """[B, N] -> Synchformer audio features [B, S, t, d]."""
        wav = torch.as_tensor(np.asarray(audio), dtype=torch.float32)   # av-benchmark: no mean removal here
        wav = wav[None] if wav.ndim == 1 else wav
        if sample_rate != 16000:
            wav = torchaudio.functional.resample(wav, sample_rate, 16000)
        need = int(16000 * self.duration)
        if wav.shape[1] < need:
            raise ValueError(f"DeSync needs {self.duration} s of audio, got {wav.shape[1] / 16000:.2f} s")
        wav = wav[:, :need]
        starts = range(0, wav.shape[1] - self.audio_segment + 1, self.audio_step)
        x = torch.stack([wav[:, s:s + self.audio_segment] for s in starts], dim=1)   # [B, S, 10240]
        x = torch.log(self.mel(x) + 1e-6)
        x = F.pad(x, (0, max(0, 66 - x.shape[-1])))[..., :66]
        x = (x - -4.2677393) / (2 * 4.5689974)
        return self.model.extract_afeats(x.unsqueeze(2).to(self.device))

    @torch.no_grad()
    def offset_logits(self, video: torch.Tensor, audio: torch.Tensor) -> list[np.ndarray]:
        """Paired video [B, S, ...] and audio [B, S, ...] features -> logits [B, 21] of the first and last windows."""
        k = self.windows
        return [self.model.compare_v_a(video[:, :k], audio[:, :k]).float().cpu().numpy(),
                self.model.compare_v_a(video[:, -k:], audio[:, -k:]).float().cpu().numpy()]
