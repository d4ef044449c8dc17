"""The vocoder's inference artifact: generator weights (safetensors) + config.json. No pickle anywhere.

The config names the architecture and its keyword arguments, and the feature settings the generator
was trained on (a generator only inverts the normalisation it saw), so a loader can refuse a mismatch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from v2a.audio.mel import LogMel
from v2a.models.vocoder.vocos import VocosGenerator

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
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
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}
    config = {"format": FORMAT, "architecture": architecture, "generator": dict(kwargs),
              "features": feature_config(features), **(extra or {})}
    tmp = out_dir / f".{WEIGHTS}.tmp"
    save_file(weights, str(tmp), metadata={"format": FORMAT})
    os.replace(tmp, out_dir / WEIGHTS)
    tmp = out_dir / f".{CONFIG}.tmp"
    tmp.write_text(json.dumps(config, indent=2))
    os.replace(tmp, out_dir / CONFIG)
    return out_dir


def load_vocoder_export(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """(generator in eval mode, config) from an export folder or its ``model.safetensors``."""
    path = Path(path)
    folder = path.parent if path.suffix == ".safetensors" else path
    if not (folder / WEIGHTS).is_file() or not (folder / CONFIG).is_file():
        raise FileNotFoundError(f"{folder} is not a vocoder export (needs {WEIGHTS} and {CONFIG}; "
                                "train one with: python train.py experiment=vocoder_tiny)")
    config = json.loads((folder / CONFIG).read_text())
    if config.get("format") != FORMAT or config.get("architecture") not in ARCHITECTURES:
        raise ValueError(f"{folder / CONFIG} is not a {FORMAT} export (format {config.get('format')!r}, "
                         f"architecture {config.get('architecture')!r})")
    generator = ARCHITECTURES[config["architecture"]](**config["generator"])
    try:
        generator.load_state_dict(load_file(str(folder / WEIGHTS)))
    except RuntimeError as error:
        raise ValueError(f"{folder}: weights do not match the config ({str(error).splitlines()[0]})") from error
    return generator.eval(), config
