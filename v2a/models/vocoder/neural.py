"""A trained neural vocoder behind the :class:`Vocoder` interface (``model/vocoder=neural``)."""

from __future__ import annotations

from pathlib import Path

import torch

from v2a.audio.mel import LogMel
from v2a.models.vocoder.base import Vocoder
from v2a.models.vocoder.export import feature_config, load_vocoder_export


class NeuralVocoder(Vocoder):
    """Loads a vocoder export (``experiment=vocoder_*``'s ``RUN/export``) and inverts mels with it.

    The generator is frozen: a V2A run that uses it for its samples never trains it. The feature
    settings of the export must equal ``features`` (same mel, same normalisation), else a clear error.
    """

    def __init__(self, *, features: LogMel, checkpoint: str) -> None:
        super().__init__(features=features)
        self.checkpoint = str(checkpoint)
        generator, config = load_vocoder_export(Path(checkpoint))
        expected, trained = feature_config(features), config["features"]
        differences = [f"{k} (vocoder {trained.get(k)!r}, model {v!r})" for k, v in expected.items()
                       if not _same(trained.get(k), v)]
        if differences:
            raise ValueError(f"vocoder {checkpoint} was trained on other mel features: " + ", ".join(differences))
        self.generator = generator.requires_grad_(False)

    def train(self, mode: bool = True) -> NeuralVocoder:
        # Stay in eval mode when a parent LightningModule switches to training.
        return super().train(False)

    @torch.no_grad()
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.generator(mel.float()).clamp(-1, 1)


def _same(a: object, b: object) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(b)))
    return a == b
