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


def placed(model: Any, device: torch.device) -> Any:
    """A torch model moved to ``device`` in eval mode; any other callable (a stand-in) as it is."""
    return model.to(device).eval() if isinstance(model, nn.Module) else model


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
        self.model = placed(model, self.device)

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
        self.model = placed(model, self.device)

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
        self.model = placed(model, self.device)

    def identity(self) -> str:
        return _identity("vggish", self.weights, self.model, duration=self.duration)

    @torch.no_grad()
    def embed_frames(self, audio: np.ndarray, sample_rate: int) -> list[np.ndarray]:
        x = prepare_audio(audio, sample_rate, self.rate, self.duration)
        return [self.model(clip).float().cpu().numpy() for clip in x]

    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        return np.stack([frames.mean(axis=0) for frames in self.embed_frames(audio, sample_rate)])
