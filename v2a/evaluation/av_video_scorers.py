"""The av-benchmark scorers that read the video as well as the audio: ImageBind's audio-visual score and
Synchformer's DeSync, from weights (and model code) the user supplies — see ``v2a.evaluation.av_embedders``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio

from v2a.evaluation.av_embedders import _device, _factory, _identity, _load_state, placed

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
        self.model = placed(model, self.device)

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
        self.model = placed(model, self.device)
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
