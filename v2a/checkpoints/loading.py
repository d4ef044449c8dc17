"""Rebuild a V2A module from a checkpoint without executing anything stored in it."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from v2a.checkpoints.export import read_export, read_export_tokenizer
from v2a.text.conditioning import TOKENIZER_KEY

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or not a v2a checkpoint."""


def load_checkpoint(path: str | Path) -> dict:
    """``torch.load`` with ``weights_only=True``: tensors and plain containers only, never code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt file, pickle with code, wrong format
        raise CheckpointError(f"cannot read checkpoint {path}: {error}") from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or not checkpoint.get("v2a_config"):
        raise CheckpointError(f"{path} is not a v2a training checkpoint (no state_dict / v2a_config)")
    return checkpoint


def _load_export(path: Path, overrides: dict | None):
    try:
        config, weights = read_export(path)
    except Exception as error:
        raise CheckpointError(f"cannot read export {path}: {error}") from error
    config = OmegaConf.create(config)
    for key, value in (overrides or {}).items():
        OmegaConf.update(config, key, value, merge=False, force_add=True)
    _without_tokenizer_path(config)
    module = instantiate(config.model)
    try:
        module.net.load_state_dict(weights)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: weights do not match the config ({str(error).splitlines()[0]})") from error
    module.ema.module.load_state_dict(weights)
    _attach_tokenizer(module, read_export_tokenizer(path), path)
    module.run_config = OmegaConf.to_container(config, resolve=True)
    module.global_step_loaded = -1
    return module


def _without_tokenizer_path(config) -> None:
    """Inference never reads the training data's tokenizer: the one stored with the weights is used."""
    if OmegaConf.select(config, "model.tokenizer") is not None:
        OmegaConf.update(config, "model.tokenizer", None, merge=False)


def _attach_tokenizer(module, tokenizer: bytes | None, path: Path) -> None:
    conditioning = getattr(module, "text_conditioning", None)
    if conditioning is None or not conditioning.streams:
        return
    if tokenizer is None:
        log.warning("%s: a text model without a stored tokenizer: text inputs cannot be tokenised", path)
        return
    try:
        conditioning.set_tokenizer(tokenizer)
    except ValueError as error:
        raise CheckpointError(f"{path}: {error}") from error


def sampler_overrides(sampler: dict | None) -> dict:
    """``model.sampler.*`` overrides for the sampler settings that are set (None keeps the model's)."""
    return {f"model.sampler.{k}": v for k, v in (sampler or {}).items() if v is not None}


def model_overrides(vocoder: dict | None, sampler: dict | None) -> dict:
    """``model.vocoder`` replaced (not merged) by the chosen vocoder config; sampler settings that are set."""
    overrides = sampler_overrides(sampler)
    return {**overrides, "model.vocoder": vocoder} if vocoder else overrides


def load_with_choices(path: str | Path, *, device: str | torch.device = "cpu", vocoder: dict | None = None,
                      sampler: dict | None = None):
    """``load_module`` with a chosen vocoder and sampler settings; a choice that cannot be built (e.g. a
    vocoder export that is missing or made for other mels) is a ``ValueError`` naming the cause."""
    try:
        return load_module(path, device=device, overrides=model_overrides(vocoder, sampler))
    except InstantiationException as error:
        cause = error.__cause__ or error
        raise ValueError(f"cannot build the model{' with the chosen vocoder' if vocoder else ''}: "
                         f"{str(cause).splitlines()[0]}") from error


def chosen_vocoder(cfg) -> dict | None:
    """The ``model/vocoder=...`` choice of a generate/evaluate config, unresolved (it refers to the
    checkpoint's ``${model.features}``, resolved once inside that config); None keeps the checkpoint's."""
    model = cfg.get("model", {}) or {}
    return OmegaConf.to_container(model["vocoder"], resolve=False) if model.get("vocoder") else None


def load_module(path: str | Path, *, device: str | torch.device = "cpu", overrides: dict | None = None):
    """The V2A LightningModule of a training checkpoint or an inference export, in eval mode.

    ``path``: a ``.ckpt`` (loaded with ``weights_only=True``) or an export folder / ``model.safetensors``.
    ``overrides`` (dotted keys -> values, e.g. ``{"model.vocoder.n_iter": 64}``) change the model
    config before it is built; the trained weights are loaded afterwards. A dict value replaces the
    node (``{"model.vocoder": {"_target_": ...}}`` swaps the vocoder), it is not merged into it.
    """
    path = Path(path)
    if path.is_dir() or path.suffix == ".safetensors":
        return _load_export(path, overrides).to(device).eval()
    checkpoint = load_checkpoint(path)
    config = OmegaConf.create(checkpoint["v2a_config"])
    for key, value in (overrides or {}).items():
        OmegaConf.update(config, key, value, merge=False, force_add=True)
    _without_tokenizer_path(config)
    module = instantiate(config.model)
    missing, unexpected = module.load_state_dict(checkpoint["state_dict"], strict=False)
    # A vocoder swapped at load time brings its own weights (and leaves the old one's unused); anything
    # else missing or unexpected is an error.
    missing = [k for k in missing if not k.startswith("vocoder.")]
    unexpected = [k for k in unexpected if not k.startswith("vocoder.")]
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not match the config (missing {missing[:5]}, unexpected {unexpected[:5]})")
    _attach_tokenizer(module, checkpoint.get(TOKENIZER_KEY), path)
    module.run_config = OmegaConf.to_container(config, resolve=True)
    module.global_step_loaded = int(checkpoint.get("global_step", 0))
    return module.to(device).eval()
