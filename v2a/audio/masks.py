"""Padding masks on the mel grid: which mel frames of a padded clip hold real audio.

The loader pads short clips with silence and marks real samples in ``audio_mask`` (bool [B, N], False
on padding). Losses over mel features need the same on mel frames. ``LogMel`` frames are centred
(``center=True``): frame ``f`` is centred on sample ``f * hop_length`` and there are ``N // hop_length``
of them. The rule here: **a mel frame is real when the sample it is centred on is real**. For the
loader's masks (a prefix of real samples, ``L`` of them) that makes the first ``ceil(L / hop_length)``
frames real: every real sample's hop cell is covered, and a frame counts as padding as soon as its centre
is padding (the last real frame's window reaches up to ``n_fft / 2`` samples into the padding; the
alternative, demanding a whole window of real samples, would drop real audio near both ends).
"""

from __future__ import annotations

import torch

from v2a.shapes import ClipSpec


def mel_frame_mask(audio_mask: torch.Tensor, spec: ClipSpec) -> torch.Tensor:
    """Sample mask bool [..., N] -> mel-frame mask bool [..., N // hop_length] (True = real frame).

    ``spec`` is a ``ClipSpec`` or anything with one as ``.spec`` (a ``LogMel``). The result lies on the
    device of ``audio_mask`` and matches ``LogMel(spec)(audio)``'s last dimension for audio of N samples.
    """
    spec = getattr(spec, "spec", spec)
    hop = spec.hop_length
    if audio_mask.dim() < 1:
        raise ValueError("audio_mask needs a sample dimension, got a scalar")
    n_frames = audio_mask.shape[-1] // hop
    return audio_mask[..., : n_frames * hop : hop].bool()
