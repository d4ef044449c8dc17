"""The resolvers that derive config values instead of typing them twice (registered with the schemas).

``${clip:NAME}`` (a ``ClipSpec`` property of the composed ``spec``); from the one key ``model.modalities``:
``${if_modality:video,VALUE}``, ``${text_modalities:}``, ``${text_dim:}``; ``${phonemes:vocabulary|size}`` (the
phoneme vocabulary stored with a model); ``${visual_features:}`` (the cached features a visual backbone reads).
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from v2a.conf.schemas import TEXT_STREAMS, clip_spec


def register_resolvers() -> None:
    """Register every resolver once (idempotent)."""
    resolvers = {"clip": _clip_value, "if_modality": _if_modality, "text_modalities": _text_modalities,
                 "text_dim": _text_dim, "phonemes": _phonemes, "visual_features": _visual_features}
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


def _clip_value(name: str, *, _root_: DictConfig) -> Any:
    """``${clip:mel_frames_per_video_frame}``: a number derived from the composed ``spec`` (a ClipSpec property),
    so YAML never types a number the spec implies."""
    return getattr(clip_spec(_root_.spec), name)


def _modalities(root: DictConfig) -> list[str]:
    modalities = OmegaConf.select(root, "model.modalities")
    if modalities is None:
        raise ValueError("model.modalities is not set (the conditions the model has, e.g. [video, transcript])")
    return list(modalities)


def _if_modality(modality: str, value: Any, *, _root_: DictConfig) -> Any:
    """``${if_modality:video,VALUE}``: VALUE when ``model.modalities`` lists the modality, else null."""
    return value if modality in _modalities(_root_) else None


def _text_modalities(*, _root_: DictConfig) -> list[str]:
    """``${text_modalities:}``: the text streams among ``model.modalities`` that have a text encoder (the
    denoiser's cross-attention streams; a transcript read only as phonemes is not one)."""
    return [m for m in _modalities(_root_)
            if m in TEXT_STREAMS and OmegaConf.select(_root_, f"model.{m}_encoder") is not None]


def _phonemes(what: str) -> Any:
    """``${phonemes:vocabulary}`` (the phoneme names a model reads, stored with it) or ``${phonemes:size}``."""
    from v2a.text.phonemes import DEFAULT_VOCABULARY

    return {"vocabulary": list(DEFAULT_VOCABULARY), "size": len(DEFAULT_VOCABULARY)}[what]


def _text_dim(*, _root_: DictConfig) -> int | None:
    """``${text_dim:}``: the width of the text modalities' encoders (the prompt's, else the transcript's)."""
    dims = [OmegaConf.select(_root_, f"model.{name}_encoder.dim") for name in _text_modalities(_root_=_root_)]
    return next((dim for dim in dims if dim is not None), None)


def _visual_features(*, _root_: DictConfig) -> dict | None:
    """``${visual_features:}``: the cached features a model's visual encoder reads (``name`` and the backbone's
    ``identity``), or null when it has no pretrained backbone. The data loader uses a shard set's cached features
    only when they were extracted by this very backbone (v2a/data/visual_features.py)."""
    backbone = OmegaConf.select(_root_, "model.visual_encoder.backbone")
    if backbone is None:
        return None
    from v2a.data.visual_features import cache_record

    return cache_record(OmegaConf.to_container(backbone, resolve=True))
