"""A trained neural vocoder behind the :class:`Vocoder` interface (``model/vocoder=neural``)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch

from v2a.audio.mel import LogMel
from v2a.models.vocoder.base import Vocoder
from v2a.models.vocoder.export import feature_config, load_vocoder_export
from v2a.models.vocoder.refine import correct_mel, onset_mask, refine_phase

log = logging.getLogger(__name__)

BUILTIN_PREFIX = "builtin:"
BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"


def vocoder_path(checkpoint: str | Path) -> Path:
    """The export folder a ``checkpoint`` setting names: a path, or ``builtin:NAME`` for an export shipped inside
    the package (``v2a/models/vocoder/builtin/NAME``; resolved when loaded, so configs stay portable)."""
    text = str(checkpoint)
    if not text.startswith(BUILTIN_PREFIX):
        return Path(checkpoint)
    name = text[len(BUILTIN_PREFIX):]
    shipped = sorted(p.name for p in BUILTIN_DIR.iterdir() if (p / "model.safetensors").is_file())
    if name not in shipped:
        raise ValueError(f"no built-in vocoder {name!r} (shipped: {', '.join(shipped)})")
    return BUILTIN_DIR / name


class NeuralVocoder(Vocoder):
    """Loads a vocoder export (``experiment=vocoder_*``'s ``RUN/export``) and inverts mels with it.

    The generator is frozen: a V2A run that uses it for its samples never trains it. The feature
    settings of the export must equal ``features`` (same mel, same normalisation), else a clear error.

    ``refine_iters`` > 0 adds that many phase-consistency projections (Griffin-Lim steps that keep the
    generator's predicted magnitude and start from its phase) after the network; ``mel_iters`` > 0 then
    that many mel-envelope corrections (the output's STFT rescaled band by band until its mel matches the
    input mel). ``onset_threshold`` (spectral flux in nepers; None: off) keeps the network's own output,
    unprojected, around sharp onsets, where projections smear the attack. Each costs one STFT/iSTFT pair: quality for a little time. Phase projections need a
    generator whose predicted magnitude is a true magnitude (one trained with a magnitude prior); for
    older exports they are switched off with a warning (measured: they ruined such an export's output).
    """

    def __init__(self, *, features: LogMel, checkpoint: str, refine_iters: int = 0, refine_momentum: float = 0.99,
                 mel_iters: int = 0, onset_threshold: float | None = None) -> None:
        super().__init__(features=features)
        if refine_iters < 0 or mel_iters < 0:
            raise ValueError(f"refine_iters and mel_iters must be >= 0, got {refine_iters}, {mel_iters}")
        self.checkpoint = str(checkpoint)
        self.refine_iters = refine_iters
        self.refine_momentum = refine_momentum
        self.mel_iters = mel_iters
        self.onset_threshold = onset_threshold
        generator, config = load_vocoder_export(vocoder_path(checkpoint))
        expected, trained = feature_config(features), config["features"]
        differences = [f"{k} (vocoder {trained.get(k)!r}, model {v!r})" for k, v in expected.items()
                       if not _same(trained.get(k), v)]
        if differences:
            raise ValueError(f"vocoder {checkpoint} was trained on other mel features: " + ", ".join(differences))
        self.generator = generator.requires_grad_(False)
        if self.refine_iters and getattr(generator, "prior", None) is None:
            log.warning("vocoder %s has no magnitude prior: its predicted magnitude is not a true STFT magnitude, "
                        "so the %d phase projections are skipped (refine_iters=0)", checkpoint, self.refine_iters)
            self.refine_iters = 0

    def train(self, mode: bool = True) -> NeuralVocoder:
        # Stay in eval mode when a parent LightningModule switches to training.
        return super().train(False)

    @torch.no_grad()
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        mel = mel.float()
        if self.refine_iters:
            head, length = self.generator.head, mel.shape[-1] * self.generator.hop_length
            spectrogram = self.generator.spectrogram(mel)
            wave = refine_phase(spectrogram, istft=lambda s: head.istft(s, length),
                                stft=head.stft, iters=self.refine_iters, momentum=self.refine_momentum)
            if self.onset_threshold is not None:
                # Projections smear transients (pre-echo); around sharp onsets keep the network's own phase.
                keep = onset_mask(self.features.denormalize(mel), hop_length=self.generator.hop_length,
                                  length=length, threshold=self.onset_threshold)
                wave = keep * head.istft(spectrogram, length) + (1 - keep) * wave
        else:
            wave = self.generator(mel)
        if self.mel_iters:
            spec, log_mel = self.features.spec, self.features.denormalize(mel)
            # the mel drops the last centred frame; repeat it so the target covers every STFT frame
            target = torch.exp(torch.nn.functional.pad(log_mel, (0, 1), mode="replicate"))
            wave = correct_mel(wave, target, filterbank=self.features.mel.mel_scale.fb, n_fft=spec.n_fft,
                               hop_length=spec.hop_length, iters=self.mel_iters,
                               floor=math.exp(self.features.log_floor))
        return wave.clamp(-1, 1)


def _same(a: object, b: object) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(b)))
    return a == b
