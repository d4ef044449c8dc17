"""The V2A inference export: EMA network weights + resolved config (+ the tokenizer of text models)."""

from __future__ import annotations

from pathlib import Path

import torch

from v2a.utils.export_files import CONFIG, WEIGHTS, cpu_weights, read_export_file, write_export
from v2a.utils.export_files import read_export as read_export_files

TOKENIZER_FILE = "tokenizer.model"
FORMAT = "v2a-net-ema"

__all__ = ["CONFIG", "TOKENIZER_FILE", "WEIGHTS", "export_inference", "read_export", "read_export_tokenizer"]


def export_inference(net: torch.nn.Module, run_config: dict | None, out_dir: str | Path, *,
                     tokenizer: bytes | None = None, write: bool = True) -> Path:
    """Write ``out_dir/model.safetensors`` (the EMA network's weights), ``out_dir/config.json`` and, for
    text models, ``out_dir/tokenizer.model`` (the sentencepiece model the text encoders were trained with).

    Under FSDP the EMA network is sharded and gathering its state dict is collective: every rank must
    call this, and only the one with ``write=True`` writes.
    """
    if run_config is None:
        raise ValueError("the model has no run_config to export (build it through train.py or from_pretrained)")
    weights = cpu_weights(net)
    if not write:
        return Path(out_dir)
    files = {TOKENIZER_FILE: tokenizer} if tokenizer is not None else {}
    return write_export(out_dir, weights, run_config, format=FORMAT, files=files, stale=[TOKENIZER_FILE])


def read_export(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config, network weights) of an export folder (or its model.safetensors)."""
    return read_export_files(path)


def read_export_tokenizer(path: str | Path) -> bytes | None:
    """The sentencepiece model bytes stored in an export folder (text models), or None."""
    return read_export_file(path, TOKENIZER_FILE)
