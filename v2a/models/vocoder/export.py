"""The vocoder's inference artifact: generator weights (safetensors) + config.json. No pickle anywhere.

The config names the architecture and its keyword arguments, and the feature settings the generator
was trained on (a generator only inverts the normalisation it saw), so a loader can refuse a mismatch.
"""

from __future__ import annotations

from pathlib import Path

import torch

from v2a.audio.mel import LogMel
from v2a.models.vocoder.vocos import VocosGenerator
from v2a.utils.export_files import cpu_weights, export_folder, read_export, write_export

FORMAT = "v2a-vocoder"
ARCHITECTURES = {"vocos": VocosGenerator}  # an explicit table: a config file can only pick from these


def feature_config(features: LogMel) -> dict:
    """The settings that define the mel a generator inverts."""
    spec = features.spec
    return {"sample_rate": spec.sample_rate, "hop_length": spec.hop_length, "n_fft": spec.n_fft,
            "n_mels": spec.n_mels, "mean": features.mean, "std": features.std, "log_floor": features.log_floor,
            "log_ceil": features.log_ceil}


def write_vocoder_export(out_dir: str | Path, *, generator: torch.nn.Module, architecture: str, kwargs: dict,
                         features: LogMel, extra: dict | None = None) -> Path:
    """Write ``out_dir/model.safetensors`` and ``out_dir/config.json`` (each via a temp file + rename)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown vocoder architecture {architecture!r} (known: {sorted(ARCHITECTURES)})")
    config = {"format": FORMAT, "architecture": architecture, "generator": dict(kwargs),
              "features": feature_config(features), **(extra or {})}
    return write_export(out_dir, cpu_weights(generator), config, format=FORMAT)


def load_vocoder_export(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """(generator in eval mode, config) from an export folder or its ``model.safetensors``."""
    folder = export_folder(path)
    config, weights = read_export(folder, what="vocoder export",
                                  hint="; train one with: python train.py experiment=vocoder_tiny")
    if config.get("format") != FORMAT or config.get("architecture") not in ARCHITECTURES:
        raise ValueError(f"{folder}/config.json is not a {FORMAT} export (format {config.get('format')!r}, "
                         f"architecture {config.get('architecture')!r})")
    generator = ARCHITECTURES[config["architecture"]](**config["generator"])
    try:
        generator.load_state_dict(weights)
    except RuntimeError as error:
        raise ValueError(f"{folder}: weights do not match the config ({str(error).splitlines()[0]})") from error
    return generator.eval(), config
