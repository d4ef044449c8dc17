"""Inference exports: EMA weights in safetensors + the resolved config as JSON. No pickle anywhere."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TOKENIZER_FILE = "tokenizer.model"


def export_inference(module, out_dir: str | Path, *, write: bool = True) -> Path:
    """Write ``out_dir/model.safetensors`` (EMA network weights), ``out_dir/config.json`` and, for text
    models, ``out_dir/tokenizer.model`` (the sentencepiece model the text encoders were trained with).

    Under FSDP the EMA network is sharded and gathering its state dict is collective: every rank must
    call this, and only the one with ``write=True`` writes.
    """
    if module.run_config is None:
        raise ValueError("the module has no run_config to export (build it through train.py or load_module)")
    out_dir = Path(out_dir)
    weights = {k: v.detach().cpu().contiguous() for k, v in module.ema.module.state_dict().items()}
    if not write:
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    conditioning = getattr(module, "text_conditioning", None)
    tokenizer = conditioning.tokenizer.model if conditioning is not None and conditioning.tokenizer else None
    files = [(WEIGHTS, None), (CONFIG, json.dumps(module.run_config, indent=2).encode())]
    if tokenizer is not None:
        files.insert(0, (TOKENIZER_FILE, tokenizer))  # before the config: a folder with a config is complete
    elif (out_dir / TOKENIZER_FILE).exists():
        (out_dir / TOKENIZER_FILE).unlink()  # a stale tokenizer from an earlier export of another model
    for name, content in files:
        tmp = out_dir / f".{name}.tmp"
        if content is None:
            save_file(weights, str(tmp), metadata={"format": "v2a-net-ema"})
        else:
            tmp.write_bytes(content)
        os.replace(tmp, out_dir / name)
    return out_dir


def read_export(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config, network weights) of an export folder (or its model.safetensors)."""
    path = Path(path)
    folder = path.parent if path.suffix == ".safetensors" else path
    if not (folder / WEIGHTS).is_file() or not (folder / CONFIG).is_file():
        raise FileNotFoundError(f"{folder} is not a v2a export (needs {WEIGHTS} and {CONFIG})")
    return json.loads((folder / CONFIG).read_text()), load_file(str(folder / WEIGHTS))


def read_export_tokenizer(path: str | Path) -> bytes | None:
    """The sentencepiece model bytes stored in an export folder (text models), or None."""
    path = Path(path)
    folder = path.parent if path.suffix == ".safetensors" else path
    file = folder / TOKENIZER_FILE
    return file.read_bytes() if file.is_file() else None
