"""The framework-trained audio classifier at evaluation time: export, load, embed, posteriors."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file

from v2a.checkpoints.export import CONFIG, WEIGHTS

FORMAT = "v2a-audio-classifier"


def export_classifier(module, out_dir: str | Path, *, write: bool = True) -> Path:
    """Write the classifier's weights (safetensors) and its resolved run config (json), atomically."""
    if module.run_config is None:
        raise ValueError("the classifier has no run_config to export (train it through train.py)")
    out_dir = Path(out_dir)
    weights = {k: v.detach().cpu().contiguous() for k, v in module.classifier.state_dict().items()}
    if not write:
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{WEIGHTS}.tmp"
    save_file(weights, str(tmp), metadata={"format": FORMAT})
    os.replace(tmp, out_dir / WEIGHTS)
    tmp = out_dir / f".{CONFIG}.tmp"
    tmp.write_text(json.dumps(module.run_config, indent=2))
    os.replace(tmp, out_dir / CONFIG)
    return out_dir


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
        if not (folder / WEIGHTS).is_file() or not (folder / CONFIG).is_file():
            raise FileNotFoundError(f"{path}: no audio-classifier export ({WEIGHTS} + {CONFIG}) in {folder}; "
                                    "train one with `python train.py experiment=audio_classifier`")
        config = json.loads((folder / CONFIG).read_text())
        module = instantiate(OmegaConf.create(config)["model"])
        module.classifier.load_state_dict(load_file(str(folder / WEIGHTS)))
        self.module = module.to(device).eval()
        self.vocabularies = module.vocabularies
        self.sample_rate = module.features.spec.sample_rate
        self.name = "classifier"
        self._identity = "classifier:" + hashlib.sha256((folder / WEIGHTS).read_bytes()).hexdigest()[:16]

    def identity(self) -> str:
        return self._identity

    @torch.no_grad()
    def _run(self, audio: np.ndarray | torch.Tensor, sample_rate: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if sample_rate != self.sample_rate:
            raise ValueError(f"classifier expects {self.sample_rate} Hz audio, got {sample_rate}")
        wave = torch.as_tensor(np.asarray(audio, dtype=np.float32)).to(self.module.device)
        mel = self.module.features(wave)
        z = self.module.classifier.embed(mel)
        posteriors = {head: torch.softmax(layer(z), dim=-1) for head, layer in self.module.classifier.heads.items()}
        return z, posteriors

    def embed(self, audio: np.ndarray | torch.Tensor, sample_rate: int) -> np.ndarray:
        """Audio [B, N] -> embeddings [B, D] (float64 for the Fréchet statistics)."""
        return self._run(audio, sample_rate)[0].cpu().double().numpy()

    def posteriors(self, audio: np.ndarray | torch.Tensor, sample_rate: int) -> dict[str, np.ndarray]:
        """Audio [B, N] -> {head: class probabilities [B, C]}."""
        return {k: v.cpu().double().numpy() for k, v in self._run(audio, sample_rate)[1].items()}
