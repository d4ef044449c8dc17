"""The framework-trained audio classifier at evaluation time: load its export, embed, posteriors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from v2a.models.audio_classifier import AudioClassifier
from v2a.utils.export_files import WEIGHTS, read_export
from v2a.utils.hashing import sha256_file


class ClassifierEmbedder:
    """Embeddings (penultimate layer) and per-head posteriors of an exported audio classifier.

    ``path``: an export folder (``model.safetensors`` + ``config.json``) or its ``last.ckpt``'s run folder.
    """

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        folder = Path(path)
        if folder.suffix == ".ckpt":  # RUN/checkpoints/last.ckpt -> RUN/export
            folder = folder.parent.parent / "export"
        if folder.suffix == ".safetensors":
            folder = folder.parent
        config, weights = read_export(folder, what="audio-classifier export",
                                      hint="; train one with `python train.py experiment=audio_classifier`")
        model = OmegaConf.create(config)["model"]
        self.vocabularies = {k: list(v) for k, v in model.vocabularies.items()}
        self.features = instantiate(model.features).to(device)
        self.classifier = AudioClassifier(heads={k: len(v) for k, v in self.vocabularies.items()}, width=model.width,
                                          embed_dim=model.embed_dim, dropout=model.dropout)
        self.classifier.load_state_dict(weights)
        self.classifier.to(device).eval()
        self.device = torch.device(device)
        self.sample_rate = self.features.spec.sample_rate
        self.name = "classifier"
        self._identity = "classifier:" + sha256_file(folder / WEIGHTS)[:16]

    def identity(self) -> str:
        return self._identity

    @torch.no_grad()
    def _run(self, audio: np.ndarray | torch.Tensor, sample_rate: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if sample_rate != self.sample_rate:
            raise ValueError(f"classifier expects {self.sample_rate} Hz audio, got {sample_rate}")
        wave = torch.as_tensor(np.asarray(audio, dtype=np.float32)).to(self.device)
        z = self.classifier.embed(self.features(wave))
        posteriors = {head: torch.softmax(layer(z), dim=-1) for head, layer in self.classifier.heads.items()}
        return z, posteriors

    def embed(self, audio: np.ndarray | torch.Tensor, sample_rate: int) -> np.ndarray:
        """Audio [B, N] -> embeddings [B, D] (float64 for the Fréchet statistics)."""
        return self._run(audio, sample_rate)[0].cpu().double().numpy()

    def posteriors(self, audio: np.ndarray | torch.Tensor, sample_rate: int) -> dict[str, np.ndarray]:
        """Audio [B, N] -> {head: class probabilities [B, C]}."""
        return {k: v.cpu().double().numpy() for k, v in self._run(audio, sample_rate)[1].items()}
