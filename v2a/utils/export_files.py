"""The one inference-export format of every stage: a folder with ``model.safetensors`` + ``config.json``
(and any extra files, e.g. a tokenizer). No pickle anywhere; every file is written through a temp file
and a rename, and the config last, so a folder with a config is a complete export."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def export_folder(path: str | Path) -> Path:
    """The export folder of ``path`` (the folder itself or its ``model.safetensors``)."""
    path = Path(path)
    return path.parent if path.suffix == ".safetensors" else path


def cpu_weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A module's state dict as contiguous CPU tensors (what safetensors stores)."""
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def write_export(out_dir: str | Path, weights: Mapping[str, torch.Tensor], config: Mapping, *, format: str,
                 files: Mapping[str, bytes] | None = None, stale: Sequence[str] = ()) -> Path:
    """Write ``files`` (name -> bytes), the weights and the config into ``out_dir``, each atomically; remove
    the ``stale`` names (files an earlier export of another model left there)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in stale:
        if name not in (files or {}) and (out_dir / name).exists():
            (out_dir / name).unlink()
    for name, content in (files or {}).items():
        _replace(out_dir / name, lambda tmp, content=content: tmp.write_bytes(content))
    _replace(out_dir / WEIGHTS, lambda tmp: save_file(dict(weights), str(tmp), metadata={"format": format}))
    _replace(out_dir / CONFIG, lambda tmp: tmp.write_text(json.dumps(config, indent=2)))
    return out_dir


def _replace(target: Path, write) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    write(tmp)
    os.replace(tmp, target)


def read_export(path: str | Path, *, what: str = "v2a export", hint: str = "") -> tuple[dict, dict[str, torch.Tensor]]:
    """(config, weights) of an export folder (or its model.safetensors); a clear error when it is not one."""
    folder = export_folder(path)
    if not (folder / WEIGHTS).is_file() or not (folder / CONFIG).is_file():
        raise FileNotFoundError(f"{folder} is not a {what} (needs {WEIGHTS} and {CONFIG}){hint}")
    return json.loads((folder / CONFIG).read_text()), load_file(str(folder / WEIGHTS))


def read_export_file(path: str | Path, name: str) -> bytes | None:
    """An extra file stored in an export folder, or None."""
    file = export_folder(path) / name
    return file.read_bytes() if file.is_file() else None
