"""Build a :class:`V2APipeline` from a model config, a training checkpoint or an inference export.

Only the pipeline's own parts of the stored ``model`` config are instantiated (encoders, denoiser,
features, sampler, vocoder); optimizer, objective and the training class are never touched, so loading
imports no training code. Nothing stored in a file is executed: checkpoints are read with
``weights_only=True``, exports are safetensors + JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from v2a.checkpoints.export import read_export, read_export_tokenizer
from v2a.checkpoints.loading import CheckpointError, load_checkpoint
from v2a.models.v2a_net import V2ANet
from v2a.pipeline.pipeline import V2APipeline
from v2a.shapes import MODALITIES
from v2a.text.conditioning import TOKENIZER_KEY, TextConditioning
from v2a.text.phonemes import DEFAULT_VOCABULARY, PhonemeVocabulary
from v2a.utils.devices import resolve_device

log = logging.getLogger(__name__)

NETWORK_PARTS = ("visual_encoder", "denoiser", "prompt_encoder", "transcript_encoder", "phoneme_encoder")
EMA_PREFIX = "ema.module."


def tokenizer_binder(*nets: V2ANet) -> Callable[[Any], None]:
    """The callback that hands a tokenizer to text encoders that read text (a pretrained one) in ``nets``."""
    def bind(tokenizer: Any) -> None:
        for net in nets:
            for encoder in net.text_encoders.values():
                if hasattr(encoder, "bind_tokenizer"):
                    encoder.bind_tokenizer(tokenizer.processor)
    return bind


def text_conditioning_for(net: V2ANet, *, tokenizer_path: str | None = None,
                          max_tokens: Mapping[str, int] | None = None) -> TextConditioning:
    """The text conditioning of ``net``'s text streams (vocabulary sizes checked against its encoders)."""
    return TextConditioning(net.text_streams, tokenizer_path=tokenizer_path, max_tokens=dict(max_tokens or {}) or None,
                            vocab_sizes={n: e.vocab_size for n, e in net.text_encoders.items()},
                            on_tokenizer=tokenizer_binder(net))


def build_pipeline(model: DictConfig) -> V2APipeline:
    """A freshly initialised pipeline from a run config's ``model`` node (attached to its root, so
    interpolations such as ``${model.features}`` resolve)."""
    parts = {name: instantiate(model[name]) if model.get(name) is not None else None for name in NETWORK_PARTS}
    modalities = model.get("modalities")  # absent in configs written before the key existed: every encoder
    net = V2ANet(**parts, modalities=list(modalities) if modalities is not None else None)
    return V2APipeline(net=net, features=instantiate(model.features), sampler=instantiate(model.sampler),
                       vocoder=instantiate(model.vocoder),
                       text_conditioning=text_conditioning_for(net, max_tokens=model.get("text_max_tokens")),
                       cfg_scale=model.get("cfg_scale", 3.0), cfg_modalities=model.get("cfg_modalities", MODALITIES),
                       phoneme_vocabulary=PhonemeVocabulary(model.get("phoneme_vocabulary") or DEFAULT_VOCABULARY))


def inference_weights(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A training checkpoint's state dict as pipeline keys: the EMA network becomes ``net``; the online
    network and EMA bookkeeping are dropped. Reads ``pipeline.*`` checkpoints and the earlier flat layout."""
    weights = {}
    for key, value in state_dict.items():
        if key.startswith(EMA_PREFIX):
            weights["net." + key[len(EMA_PREFIX):]] = value
        elif key.startswith(("pipeline.net.", "net.", "ema.")):
            continue
        else:
            weights[key.removeprefix("pipeline.")] = value
    return weights


def sampler_overrides(sampler: dict | None) -> dict:
    """``model.sampler.*`` overrides for the sampler settings that are set (None keeps the model's)."""
    return {f"model.sampler.{k}": v for k, v in (sampler or {}).items() if v is not None}


def model_overrides(vocoder: dict | None, sampler: dict | None) -> dict:
    """``model.vocoder`` replaced (not merged) by the chosen vocoder config; sampler settings that are set."""
    overrides = sampler_overrides(sampler)
    return {**overrides, "model.vocoder": vocoder} if vocoder else overrides


def chosen_vocoder(cfg: DictConfig) -> dict | None:
    """The ``model/vocoder=...`` choice of a generate/evaluate config, unresolved (it refers to the
    checkpoint's ``${model.features}``, resolved once inside that config); None keeps the checkpoint's."""
    model = cfg.get("model", {}) or {}
    return OmegaConf.to_container(model["vocoder"], resolve=False) if model.get("vocoder") else None


def _config_with(config: dict, overrides: dict | None) -> DictConfig:
    config = OmegaConf.create(config)
    for key, value in (overrides or {}).items():
        OmegaConf.update(config, key, value, merge=False, force_add=True)
    if "model" not in config:
        raise CheckpointError("the stored config has no model section")
    if config.model.get("denoiser") is None:  # e.g. a vocoder, sync or classifier run's checkpoint
        raise ValueError(f"it is a {str(config.model.get('_target_', '?')).rsplit('.', 1)[-1]} checkpoint, not a "
                         "video-to-audio model (use a checkpoint of experiment=v2a_*)")
    return config


def _attach_tokenizer(pipeline: V2APipeline, tokenizer: bytes | None, path: Path) -> None:
    if not pipeline.text_conditioning.streams:
        return
    if tokenizer is None:
        log.warning("%s: a text model without a stored tokenizer: text inputs cannot be tokenised", path)
        return
    try:
        pipeline.text_conditioning.set_tokenizer(tokenizer)
    except ValueError as error:
        raise CheckpointError(f"{path}: {error}") from error


def read_pretrained(path: str | Path) -> tuple[dict, dict[str, torch.Tensor], bytes | None, int]:
    """(stored config, pipeline weights, tokenizer bytes, trained steps) of a checkpoint or an export, unbuilt.

    The weights are pipeline keys (``net.*`` holds the EMA network; -1 steps for an export, which does not
    record them): what :func:`load_pipeline` builds from, and where fine-tuning starts."""
    path = Path(path)
    if path.is_dir() or path.suffix == ".safetensors":
        try:
            config, weights = read_export(path)
        except Exception as error:
            raise CheckpointError(f"cannot read export {path}: {error}") from error
        return config, {f"net.{k}": v for k, v in weights.items()}, read_export_tokenizer(path), -1
    checkpoint = load_checkpoint(path)
    return (checkpoint["v2a_config"], inference_weights(checkpoint["state_dict"]), checkpoint.get(TOKENIZER_KEY),
            int(checkpoint.get("global_step", 0)))


def load_pipeline(path: str | Path, *, device: str | torch.device = "cpu", vocoder: dict | None = None,
                  sampler: dict | None = None, overrides: dict | None = None) -> V2APipeline:
    """The pipeline of a training checkpoint or an inference export, with the EMA weights, in eval mode.

    ``vocoder`` (a vocoder config node, replacing the stored one) and ``sampler`` (settings; None keeps
    the stored value) choose how to sample; ``overrides`` (dotted keys -> values) change any other part of
    the stored config before it is built. A choice that cannot be built is a ``ValueError`` naming the cause.
    """
    path = Path(path)
    stored, weights, tokenizer, steps = read_pretrained(path)
    try:
        config = _config_with(stored, {**(overrides or {}), **model_overrides(vocoder, sampler)})
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    try:
        pipeline = build_pipeline(config.model)
    except InstantiationException as error:
        cause = error.__cause__ or error
        raise ValueError(f"cannot build the model{' with the chosen vocoder' if vocoder else ''}: "
                         f"{str(cause).splitlines()[0]}") from error
    if vocoder:  # the chosen vocoder brings its own weights: the stored vocoder's may not even fit its shapes
        weights = {k: v for k, v in weights.items() if not k.startswith("vocoder.")}
    missing, unexpected = pipeline.load_state_dict(weights, strict=False)
    # A vocoder swapped at load time brings its own weights (and leaves the stored one's unused); an export
    # holds the network only. Anything else missing or unexpected is an error.
    missing = [k for k in missing if k.startswith("net.")]
    unexpected = [k for k in unexpected if not k.startswith("vocoder.")]
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not match the config (missing {missing[:5]}, unexpected {unexpected[:5]})")
    _attach_tokenizer(pipeline, tokenizer, path)
    pipeline.run_config = OmegaConf.to_container(config, resolve=True)
    pipeline.trained_steps = steps
    return pipeline.to(resolve_device(device)).eval()   # device=auto: the GPU when present
