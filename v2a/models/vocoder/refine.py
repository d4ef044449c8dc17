"""Inference-time refinements of a neural vocoder's output (both optional, both config knobs).

- :func:`refine_phase`: Griffin-Lim projections that keep a given magnitude and start from a given phase
  (the generator's) instead of random phase (torchaudio's ``griffinlim`` cannot take a start phase).
- :func:`correct_mel`: rescale the waveform's STFT so that its mel matches the target mel, band by band,
  keeping phase and the fine structure within each band (what the mel does not determine).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def refine_phase(spec: torch.Tensor, *, istft: Callable[[torch.Tensor], torch.Tensor],
                 stft: Callable[[torch.Tensor], torch.Tensor], iters: int, momentum: float = 0.99) -> torch.Tensor:
    """``iters`` projections of complex ``spec`` [B, bins, frames] onto consistent spectrograms, each time
    re-imposing ``|spec|``; returns the waveform ``istft`` of the result (``iters=0``: ``istft(spec)``).

    ``momentum`` is the fast Griffin-Lim acceleration (Perraudin et al. 2013), as torchaudio's.
    """
    if iters < 0 or not 0 <= momentum < 1:
        raise ValueError(f"need iters >= 0 and 0 <= momentum < 1, got {iters}, {momentum}")
    magnitude = spec.abs()
    previous = torch.zeros_like(spec)
    for _ in range(iters):
        rebuilt = stft(istft(spec))
        accelerated = rebuilt - (momentum / (1 + momentum)) * previous
        previous = rebuilt
        spec = magnitude * torch.sgn(accelerated)  # sgn: unit phasor, 0 where the rebuilt bin is 0
    return istft(spec)


def correct_mel(wave: torch.Tensor, target_mel: torch.Tensor, *, filterbank: torch.Tensor, n_fft: int,
                hop_length: int, iters: int, floor: float, max_gain: float = 10.0) -> torch.Tensor:
    """``iters`` mel-envelope corrections of ``wave`` [B, N] towards ``target_mel`` [B, n_mels, N // hop + 1]
    (magnitude mel, the frames of a centred STFT).

    Each pass takes the STFT (Hann window ``n_fft``, ``hop_length``, centred: the mel's own analysis),
    computes the per-band gain ``target / current`` (clamped to ``1 / max_gain .. max_gain``, mels
    floored at ``floor``), spreads it to the bins as the filterbank-weighted mean of the gains of the
    bands that cover each bin (``filterbank`` [bins, n_mels]), applies it and inverts. Bins that no band
    covers keep their value.
    """
    if iters < 0 or max_gain <= 1:
        raise ValueError(f"need iters >= 0 and max_gain > 1, got {iters}, {max_gain}")
    window = torch.hann_window(n_fft, device=wave.device)
    coverage = filterbank.sum(dim=1, keepdim=True)
    covered = coverage > 0
    for _ in range(iters):
        spec = torch.stft(wave, n_fft, hop_length, n_fft, window, center=True, return_complex=True)
        current = torch.matmul(filterbank.T, spec.abs()).clamp_min(floor)
        gain = (target_mel.clamp_min(floor) / current).clamp(1 / max_gain, max_gain)
        per_bin = torch.where(covered, torch.matmul(filterbank, gain) / coverage.clamp_min(1e-12), 1.0)
        wave = torch.istft(spec * per_bin, n_fft, hop_length, n_fft, window, center=True, length=wave.shape[-1])
    return wave


def onset_mask(log_mel: torch.Tensor, *, hop_length: int, length: int, threshold: float, before: int = 1,
               after: int = 4) -> torch.Tensor:
    """Per-sample weight [B, length] in [0, 1]: 1 around sharp onsets of ``log_mel`` [B, n_mels, F].

    An onset frame is one whose mean positive log-mel rise (spectral flux, nepers) exceeds
    ``threshold``; the mask covers ``before`` frames before it to ``after`` frames after, with
    one-frame linear ramps so switching between two waveforms never clicks.
    """
    flux = torch.relu(log_mel[..., 1:] - log_mel[..., :-1]).mean(dim=1)          # [B, F - 1]
    onsets = torch.nn.functional.pad((flux > threshold).float(), (1, 0))          # frame f rose from f - 1
    kernel = torch.ones(1, 1, before + after + 1, device=log_mel.device)
    # frame f is covered when an onset lies in [f - after, f + before]
    covered = torch.nn.functional.conv1d(torch.nn.functional.pad(onsets[:, None], (after, before)), kernel)[:, 0] > 0
    frames = covered.float()[:, None]                                            # [B, 1, F]
    weight = torch.nn.functional.interpolate(frames, scale_factor=hop_length, mode="linear", align_corners=False)
    return torch.nn.functional.pad(weight[:, 0], (0, max(0, length - weight.shape[-1])))[:, :length].clamp(0, 1)
