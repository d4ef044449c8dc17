"""Offset scoring between per-frame visual and audio embeddings, and the shifted training windows."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def lag_scores(visual: torch.Tensor, audio: torch.Tensor, max_lag: int) -> torch.Tensor:
    """Mean cosine similarity of visual frame i with audio frame i + max_lag + lag, for every lag.

    ``visual`` [B, T, D] and ``audio`` [B, T + 2 * max_lag, D] (the audio window reaches ``max_lag`` frames
    beyond the visual one on each side). Returns [B, 2 * max_lag + 1], lags ordered -max_lag..max_lag:
    a positive lag means the audio comes later than the picture.
    """
    if audio.shape[1] != visual.shape[1] + 2 * max_lag:
        raise ValueError(f"audio window {audio.shape[1]} must be visual window {visual.shape[1]} + 2 x {max_lag}")
    visual, audio = F.normalize(visual, dim=-1), F.normalize(audio, dim=-1)
    frames = visual.shape[1]
    windows = audio.unfold(1, frames, 1)  # [B, 2K+1, D, T]: audio frames lag..lag+T
    return torch.einsum("btd,bldt->bl", visual, windows) / frames


def shifted_windows(frames: torch.Tensor, mel: torch.Tensor, *, window: int, max_lag: int, mel_per_frame: int,
                    generator: torch.Generator, valid_frames: torch.Tensor | None = None,
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random training windows with a known audio delay.

    From clips ``frames`` [B, T, ...] and ``mel`` [B, n_mels, T * mel_per_frame], pick per clip a visual
    window of ``window`` frames and an audio window of ``window + 2 * max_lag`` frames whose content is
    delayed by a random ``lag`` in [-max_lag, max_lag]. Returns (visual frames, mel window, lag index
    in 0..2 * max_lag), the index being what ``lag_scores`` should peak at.

    ``valid_frames`` [B] (the real, unpadded frames of each clip) keeps every window inside the real part
    where it fits: padding (a frozen picture over silence) has no offset to learn. Full clips draw exactly
    what they drew without it.
    """
    batch, total = frames.shape[:2]
    first, last = 2 * max_lag, total - window - 2 * max_lag
    if last < first:
        raise ValueError(f"clips of {total} frames are too short for window {window} and max_lag {max_lag}")
    starts = torch.randint(first, last + 1, (batch,), generator=generator)
    if valid_frames is not None:  # fold each start into its clip's real range (the identity for full clips)
        last_real = (valid_frames.cpu().clamp(max=total) - window - 2 * max_lag).clamp(min=first)
        starts = first + (starts - first) % (last_real - first + 1)
    lags = torch.randint(-max_lag, max_lag + 1, (batch,), generator=generator)
    visual, audio = [], []
    for b in range(batch):
        start, lag = int(starts[b]), int(lags[b])
        visual.append(frames[b, start:start + window])
        # audio frame j of the window is absolute frame start - max_lag - lag + j: the picture at frame
        # start + i is heard at window position i + max_lag + lag, i.e. the audio is delayed by `lag`.
        begin = (start - max_lag - lag) * mel_per_frame
        audio.append(mel[b, :, begin:begin + (window + 2 * max_lag) * mel_per_frame])
    return torch.stack(visual), torch.stack(audio), lags + max_lag
