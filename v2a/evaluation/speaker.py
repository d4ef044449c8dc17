"""Speaker type: which kind of voice (a man's, a woman's) a speaker encoder hears in a clip.

The encoder is Resemblyzer's (GE2E, a 3-layer LSTM over 40 mel bands, 256-d embeddings) with the weights the PyPI
package ``resemblyzer`` ships (``pretrained.pt``, the ``eval`` extra); nothing is downloaded. Its network and its
front end are written here in torch: importing ``resemblyzer`` pulls librosa and webrtcvad for the front end alone,
so only its weights file is read (found without importing the package). The front end follows
``resemblyzer.audio``: 16 kHz, volume raised to -30 dBFS, power mel spectrogram (25 ms Hann window, 10 ms hop,
librosa's Slaney mel bands), 1.6 s partials at 1.3 per second averaged and L2-normalized; the VAD trimming of long
silences is left out (clips are a few seconds with one utterance).

A :class:`SpeakerTypes` classifier assigns the type whose centroid (mean embedding of reference clips of that type,
e.g. ground truth of another split) is nearest in cosine similarity.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF
from torch import nn

from v2a.media import resample

SAMPLE_RATE = 16000
N_FFT, HOP, N_MELS = 400, 160, 40
PARTIAL_FRAMES = 160
MISSING = "Resemblyzer's weights are not installed (pip install -e '.[eval]' adds resemblyzer)"


def resemblyzer_weights() -> Path:
    """``pretrained.pt`` inside the installed ``resemblyzer`` package (not imported); ImportError if absent."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(MISSING)
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.is_file():
        raise ImportError(f"{MISSING}: {path} is missing")
    return path


OTHER_TYPE = {"man": "woman", "woman": "man"}
_TYPE_WORD = re.compile(r"\b(man|woman)\b")


def ask_for_other_type(caption: str) -> tuple[str, str] | None:
    """``caption`` with the speaker type it names swapped ("a man speaking" -> "a woman speaking"), and the type it
    now asks for; None where it names no type, or both."""
    named = set(_TYPE_WORD.findall(caption))
    if len(named) != 1:
        return None
    other = OTHER_TYPE[named.pop()]
    return _TYPE_WORD.sub(other, caption), other


def speaker_of(meta: dict) -> str | None:
    """The speaker type a clip's talking head was given ("man" / "woman"), if any."""
    for source in meta.get("sources", []) or []:
        if isinstance(source, dict) and source.get("speaker"):
            return str(source["speaker"])
    return None


class SpeakerEncoder(nn.Module):
    """Resemblyzer's voice encoder: mel frames [B, T, 40] -> L2-normalized embeddings [B, 256]."""

    def __init__(self, weights: str | Path | None = None) -> None:
        super().__init__()
        self.lstm = nn.LSTM(N_MELS, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, 256)
        state = torch.load(weights or resemblyzer_weights(), map_location="cpu", weights_only=True)["model_state"]
        self.load_state_dict({k: v for k, v in state.items() if k.split(".")[0] in ("lstm", "linear")})
        self.eval()
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)
        self.register_buffer("mel", AF.melscale_fbanks(N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, N_MELS, SAMPLE_RATE,
                                                        norm="slaney", mel_scale="slaney"), persistent=False)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(mels)
        raw = torch.relu(self.linear(hidden[-1]))
        return raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def mel_frames(self, wav: np.ndarray) -> torch.Tensor:
        """Power mel spectrogram frames [T, 40] of 16 kHz audio (librosa.feature.melspectrogram's defaults)."""
        x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))
        spec = torch.stft(x, N_FFT, HOP, window=self.window, center=True, pad_mode="constant", return_complex=True)
        return (spec.abs() ** 2).T @ self.mel

    @torch.no_grad()
    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """The utterance embedding [256] of mono ``audio``."""
        wav = resample(np.asarray(audio, dtype=np.float32), sample_rate, SAMPLE_RATE).astype(np.float64)
        rms = np.sqrt(np.mean((wav * 32767) ** 2)) + 1e-12
        gain_db = -30.0 - 20 * np.log10(rms / 32767)
        if gain_db > 0:   # raise quiet audio only, as resemblyzer.preprocess_wav does
            wav = wav * 10 ** (gain_db / 20)
        # partial utterances of 160 frames, 1.3 per second, the last one kept if it is 75 % covered
        n_frames = int(np.ceil((len(wav) + 1) / HOP))
        step = int(round(SAMPLE_RATE / 1.3 / HOP))
        starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step))
        if len(starts) > 1 and (len(wav) - starts[-1] * HOP) / (PARTIAL_FRAMES * HOP) < 0.75:
            starts = starts[:-1]
        need = (starts[-1] + PARTIAL_FRAMES) * HOP
        wav = np.pad(wav, (0, max(0, need - len(wav))))
        mel = self.mel_frames(wav)
        partials = torch.stack([mel[s:s + PARTIAL_FRAMES] for s in starts])
        mean = self(partials).mean(0)
        return (mean / mean.norm()).numpy()


class SpeakerTypes:
    """Nearest-centroid speaker type: centroids from reference clips of known type, cosine similarity."""

    def __init__(self, encoder: SpeakerEncoder | None = None) -> None:
        self.encoder = encoder or SpeakerEncoder()
        self.labels: list[str] = []
        self.centroids = np.zeros((0, 256))

    def fit(self, audios: Sequence[np.ndarray], labels: Sequence[str], sample_rate: int) -> SpeakerTypes:
        if len(audios) != len(labels) or not audios:
            raise ValueError("fit needs one label per reference clip, and at least one clip")
        embeddings = np.stack([self.encoder.embed(a, sample_rate) for a in audios])
        self.labels = sorted(set(labels))
        if len(self.labels) < 2:
            raise ValueError(f"speaker types need references of two types at least, got {self.labels}")
        centroids = np.stack([embeddings[[lab == t for lab in labels]].mean(0) for t in self.labels])
        self.centroids = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)
        return self

    def __call__(self, audio: np.ndarray, sample_rate: int) -> str:
        return self.labels[int(np.argmax(self.centroids @ self.encoder.embed(audio, sample_rate)))]

    @classmethod
    def from_split(cls, data: str | Path, split: str, spec, max_clips: int = 100, batch_size: int = 25,
                   encoder: SpeakerEncoder | None = None) -> SpeakerTypes:
        """Centroids from the ground-truth audio of ``data``'s ``split`` (clips whose talking head has a type)."""
        from v2a.evaluation.references import iterate_batches

        audios, labels = [], []
        for batch in iterate_batches(data, split, spec, batch_size, max_clips):
            for meta, audio in zip(batch["meta"], batch["audio"].numpy(), strict=True):
                if (label := speaker_of(meta)) is not None:
                    audios.append(audio)
                    labels.append(label)
        return cls(encoder).fit(audios, labels, spec.sample_rate)
