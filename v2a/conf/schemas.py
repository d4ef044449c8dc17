"""Typed schemas of the configs, and the value checks that run right after composition.

Types: each schema is a dataclass registered in Hydra's ConfigStore and named first in a config's defaults
list (``- schema`` in a group file, ``- generate_schema`` in ``generate.yaml``), so a value of the wrong
type (``cfg_scale=high``) or an unknown key fails while Hydra composes, with Hydra's one-line message. The
YAML files keep every value; the schemas state types (their fields default to ``MISSING``).

Values: :func:`config_errors` walks a composed config and runs ``check(node, key_prefix)`` of every node built on
a schema (positive sizes, width divisible by heads, a clip grid that aligns tokens with frames, ...), and
refuses a copy of the spec where ``${spec}`` belongs (``data.spec={...}``), before anything is instantiated.
Entry points call :func:`exit_if_invalid` first: one line on stderr, exit code 2.

This module imports nothing heavy at import time (no torch): ``v2a.conf`` registers it for every user of
``CONFIG_DIR``. ClipSpec's own checks import ``v2a.shapes`` only when a spec is checked.
"""

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

SPEC_TARGET = "v2a.shapes.ClipSpec"
SHARED_SPEC = "shared/spec"   # the spec/ presets, as data_prep/ configs reach them
SAMPLER_METHODS = ("euler", "heun", "midpoint")  # = v2a.diffusion.ODESampler.METHODS (a test keeps them equal)
SAMPLER_SCHEDULES = ("uniform", "cosine")         # = ODESampler.SCHEDULES
TEXT_STREAMS = ("prompt", "transcript")           # = v2a.models.denoiser.TEXT_STREAMS
ORIGINAL_AUDIO = ("drop", "keep", "mix")
VIDEO_CODECS = ("auto", "copy", "h264")           # = v2a.media.VIDEO_CODECS
AUDIO_FORMATS = ("wav", "flac")
WHISPER = ("auto", "true", "false", "off", "none")


class ConfigError(ValueError):
    """A composed config with an impossible value; the message is one line naming the keys."""


# --- small helpers for the checks: ``p`` is the node's key prefix ("model.denoiser."), each returns problems ---

def _at_least(node: DictConfig, p: str, *keys: str, minimum: float = 1, optional: bool = False) -> list[str]:
    errors = []
    for key in keys:
        value = node[key]
        if value is None and optional:
            continue
        if value is None or value < minimum:
            errors.append(f"{p}{key} must be >= {minimum}, got {value}")
    return errors


def _above(node: DictConfig, p: str, key: str, bound: float = 0, *, optional: bool = False) -> list[str]:
    value = node[key]
    if (value is None and optional) or (value is not None and value > bound):
        return []
    return [f"{p}{key} must be > {bound}, got {value}"]


def _one_of(node: DictConfig, p: str, key: str, choices: tuple[str, ...], *, optional: bool = False) -> list[str]:
    value = node[key]
    if (value is None and optional) or str(value).lower() in choices:
        return []
    return [f"{p}{key} must be one of {'|'.join(choices)}, got {value!r}"]


def _divisible(node: DictConfig, p: str, key: str, by: str) -> list[str]:
    value, divisor = node[key], node[by]
    if value > 0 and divisor > 0 and value % divisor:
        return [f"{p}{key} {value} is not divisible by {p}{by} {divisor}"]
    return []


# --- the clip grid --------------------------------------------------------------------------------------------

@dataclass
class SpecSchema:
    """``spec/``: the clip grid (v2a.shapes.ClipSpec's fields; a test keeps them equal)."""

    _target_: str = SPEC_TARGET
    duration: float = MISSING
    fps: int = MISSING
    sample_rate: int = MISSING
    hop_length: int = MISSING
    n_fft: int = MISSING
    n_mels: int = MISSING
    mel_frames_per_token: int = MISSING
    image_size: int = MISSING

    @staticmethod
    def check(node: DictConfig, p: str) -> list[str]:
        errors = _above(node, p, "duration") + _at_least(
            node, p, "fps", "sample_rate", "hop_length", "n_fft", "n_mels", "mel_frames_per_token", "image_size")
        if errors:
            return errors
        try:
            clip_spec(node)  # ClipSpec's own checks: tokens aligned with frames, whole frames per clip
        except ValueError as error:
            return [f"{p.rstrip('.')}: {error}"]
        return []


def clip_spec(node: DictConfig | dict) -> Any:
    """The ``v2a.shapes.ClipSpec`` of a spec node (imported here, lazily: it brings torch)."""
    from v2a.shapes import ClipSpec

    return ClipSpec(**{f.name: node[f.name] for f in fields(ClipSpec)})


# --- model presets ------------------------------------------------------------------------------------------

@dataclass
class DenoiserSchema:
    """``model/denoiser/``: v2a.models.denoiser.MelDenoiser's arguments."""

    _target_: str = MISSING
    spec: Any = MISSING
    visual_dim: int | None = MISSING
    width: int = MISSING
    depth: int = MISSING
    heads: int = MISSING
    mlp_ratio: float = MISSING
    align_visual: bool = MISSING
    text_dim: int | None = MISSING
    text_streams: list[str] = MISSING
    phoneme_dim: int | None = None
    gelu: str = "tanh"
    prior_input: bool = False

    @staticmethod
    def check(node: DictConfig, p: str) -> list[str]:
        errors = _at_least(node, p, "width", "depth", "heads") + _divisible(node, p, "width", "heads")
        if node.get("gelu", "tanh") not in ("tanh", "none"):
            errors.append(f"{p}gelu must be tanh or none (exact), got {node.gelu!r}")
        errors += _above(node, p, "mlp_ratio") + _at_least(node, p, "visual_dim", "text_dim", optional=True)
        streams = list(node.text_streams)
        if any(s not in TEXT_STREAMS for s in streams) or len(set(streams)) != len(streams):
            errors.append(f"{p}text_streams must be distinct names from {list(TEXT_STREAMS)}, got {streams}")
        elif streams and node.text_dim is None:
            errors.append(f"{p}text_streams {streams} need {p}text_dim (the width of a prompt/transcript encoder)")
        return errors


@dataclass
class TextEncoderSchema:
    """``model/text_encoder/`` tiny and base: v2a.models.text_encoder.TextEncoder's arguments."""

    _target_: str = MISSING
    vocab_size: int = MISSING
    dim: int = MISSING
    depth: int = MISSING
    heads: int = MISSING
    mlp_ratio: float = MISSING
    dropout: float = MISSING

    @staticmethod
    def check(node: DictConfig, p: str) -> list[str]:
        errors = _at_least(node, p, "vocab_size", "dim", "depth", "heads") + _divisible(node, p, "dim", "heads")
        errors += _above(node, p, "mlp_ratio")
        return errors + ([] if 0 <= node.dropout < 1 else [f"{p}dropout must be in [0, 1), got {node.dropout}"])


def _temporal_encoder_errors(node: DictConfig, p: str, widths: list[tuple[str, int]]) -> list[str]:
    """A visual encoder's temporal layers, and its GroupNorm widths (``(key, value)`` pairs): multiples of 8."""
    errors = _at_least(node, p, "temporal_kernel") + _at_least(node, p, "temporal_layers", minimum=0)
    return errors + [f"{p}{key} must be a positive multiple of 8 (GroupNorm's groups), got {value}"
                     for key, value in widths if value <= 0 or value % 8]


@dataclass
class VisualEncoderSchema:
    """``model/visual_encoder/``: v2a.models.visual_encoder.FrameCNNEncoder's arguments."""

    _target_: str = MISSING
    dim: int = MISSING
    channels: list[int] = MISSING
    temporal_layers: int = MISSING
    temporal_kernel: int = MISSING

    @staticmethod
    def check(node: DictConfig, p: str) -> list[str]:
        widths = [("dim", node.dim)] + [(f"channels[{i}]", c) for i, c in enumerate(node.channels)]
        errors = _temporal_encoder_errors(node, p, widths)
        return errors + ([] if len(node.channels) else [f"{p}channels must not be empty"])


@dataclass
class PretrainedVisualEncoderSchema:
    """``model/visual_encoder/`` pretrained and efficientnet_lite0: v2a.models.visual_encoder.PretrainedFrameEncoder's
    arguments; ``backbone`` is the ``model/visual_encoder/backbone`` group (its arguments differ per library)."""

    _target_: str = MISSING
    dim: int = MISSING
    temporal_layers: int = MISSING
    temporal_kernel: int = MISSING
    backbone: Any = MISSING

    @staticmethod
    def check(node: DictConfig, p: str) -> list[str]:
        errors = _temporal_encoder_errors(node, p, [("dim", node.dim)])
        backbone = node.backbone
        if isinstance(backbone, DictConfig) and "weights" in backbone and not OmegaConf.is_missing(backbone, "weights"):
            weights = backbone.weights
            if weights is not None and not Path(str(weights)).expanduser().exists():
                errors.append(f"{p}backbone.weights={weights} does not exist (a local file or folder you supply; "
                              "nothing is downloaded)")
        return errors


# --- generate.py / evaluate.py ------------------------------------------------------------------------------

@dataclass
class SamplerOptions:
    """``sampler:`` of generate/evaluate: null keeps the model's setting."""

    method: str | None = MISSING
    schedule: str | None = MISSING
    shift: float | None = MISSING
    prior_start: float | None = MISSING  # models with a phoneme prior: the flow time sampling starts from it

    @staticmethod
    def check(node: DictConfig, p: str) -> list[str]:
        return (_one_of(node, p, "method", SAMPLER_METHODS, optional=True)
                + _one_of(node, p, "schedule", SAMPLER_SCHEDULES, optional=True) + _above(node, p, "shift", optional=True))


@dataclass
class StreamingOptions:
    """``streaming:`` of generate.yaml: what is held in memory at once."""

    batch_windows: int = MISSING
    vocoder_chunk_s: float = MISSING
    vocoder_pad_s: float = MISSING
    watermark_chunk_s: float = MISSING
    watermark_pad_s: float = MISSING
    max_resolution: int = MISSING
    max_duration_s: float = MISSING

    @staticmethod
    def check(node: DictConfig, p: str) -> list[str]:
        errors = [e for key in ("batch_windows", "vocoder_chunk_s", "watermark_chunk_s", "max_resolution",
                                "max_duration_s") for e in _above(node, p, key)]
        return errors + _at_least(node, p, "vocoder_pad_s", "watermark_pad_s", minimum=0)


def _sampling_errors(node: DictConfig, p: str) -> list[str]:
    errors = _at_least(node, p, "steps", optional=True)
    if node.cfg_scale is not None and node.cfg_scale < 0:
        errors.append(f"{p}cfg_scale must be >= 0 (1: no guidance), got {node.cfg_scale}")
    return errors


@dataclass
class GenerateSchema:
    """``generate.yaml`` (python generate.py, v2a generate)."""

    video: str = MISSING
    ckpt: str = MISSING
    out: str = MISSING
    steps: int | None = MISSING
    sampler: SamplerOptions = field(default_factory=SamplerOptions)
    cfg_scale: float | None = MISSING
    seed: int = MISSING
    num_candidates: int = MISSING
    prompt: str | None = MISSING
    negative_prompt: str | None = MISSING
    transcript: str | None = MISSING
    aligner: str | None = None
    overlap_s: float = MISSING
    original_audio: str = MISSING
    video_codec: str = "auto"
    duration: float | None = MISSING
    audio_format: str = MISSING
    device: str = MISSING
    num_threads: int | None = MISSING
    streaming: StreamingOptions = field(default_factory=StreamingOptions)
    watermark: Any = None   # the watermark/ group
    model: Any = None       # model/vocoder=... (a vocoder other than the checkpoint's)

    @staticmethod
    def check(node: DictConfig, p: str) -> list[str]:
        errors = _sampling_errors(node, p) + _at_least(node, p, "num_candidates")
        errors += _at_least(node, p, "num_threads", optional=True) + _at_least(node, p, "overlap_s", minimum=0)
        errors += _above(node, p, "duration", optional=True)
        errors += _one_of(node, p, "video_codec", VIDEO_CODECS)
        return errors + _one_of(node, p, "original_audio", ORIGINAL_AUDIO) + _one_of(node, p, "audio_format", AUDIO_FORMATS)


@dataclass
class EvaluateSchema:
    """``evaluate.yaml`` (python evaluate.py)."""

    ckpt: str = MISSING
    out: str = MISSING
    split: str = MISSING
    calibration_split: str = MISSING
    steps: int | None = MISSING
    cfg_scale: float | None = MISSING
    sampler: SamplerOptions = field(default_factory=SamplerOptions)
    batch_size: int = MISSING
    max_clips: int | None = MISSING
    calibration_clips: int = MISSING
    seed: int = MISSING
    plots: int = MISSING
    device: str = MISSING
    reuse: bool = MISSING
    cache_dir: str | None = MISSING
    classifier: str | None = MISSING
    whisper: str = MISSING
    embedders: list[Any] = MISSING
    onset_kinds: list[str] = MISSING
    sync_model: str | None = MISSING
    prompt_following: bool = MISSING
    dialogue: bool = False
    timing: str = "video"
    aligner: str | None = None
    wandb: bool = MISSING
    paths: Any = None
    data: Any = None        # data=NAME: another data config (only its root is read)
    watermark: Any = None
    model: Any = None       # model/vocoder=...

    @staticmethod
    def check(node: DictConfig, p: str) -> list[str]:
        errors = _sampling_errors(node, p) + _at_least(node, p, "batch_size")
        errors += _at_least(node, p, "max_clips", optional=True) + _at_least(node, p, "calibration_clips", "plots", minimum=0)
        if node.get("timing", "video") not in ("oracle", "subtitles", "video"):
            errors.append(f"{p}timing must be oracle, subtitles or video, got {node.timing!r}")
        return errors + _one_of(node, p, "whisper", WHISPER)


# --- experiment=finetune ----------------------------------------------------------------------------------

@dataclass
class FinetuneSchema:
    """``finetune:`` of experiment=finetune (v2a/conf/finetune/default.yaml, v2a/training/finetune.py)."""

    init: str = MISSING
    freeze: list[str] = MISSING
    original_data: str | None = MISSING
    original_clips: int = MISSING

    @staticmethod
    def check(node: DictConfig, p: str) -> list[str]:
        errors = []
        if OmegaConf.is_missing(node, "init"):
            errors.append(f"{p}init is required: the V2A checkpoint (.ckpt) or export folder to start from")
        errors += [f"{p}freeze holds an empty name" for name in node.freeze if not str(name).strip()][:1]
        return errors + _at_least(node, p, "original_clips")


# --- registration and the walk ----------------------------------------------------------------------------

# (ConfigStore group, name, schema): a group file names its schema `- schema`; generate.yaml `- generate_schema`.
SCHEMAS: list[tuple[str | None, str, type]] = [
    ("spec", "schema", SpecSchema),
    (SHARED_SPEC, "schema", SpecSchema),
    ("model/denoiser", "schema", DenoiserSchema),
    ("model/text_encoder", "schema", TextEncoderSchema),
    ("model/visual_encoder", "schema", VisualEncoderSchema),
    ("model/visual_encoder", "pretrained_schema", PretrainedVisualEncoderSchema),
    (None, "generate_schema", GenerateSchema),
    (None, "evaluate_schema", EvaluateSchema),
    ("finetune", "schema", FinetuneSchema),
]


def register() -> None:
    """Store the schemas, the spec/ presets as ``shared/spec`` and the resolvers of ``v2a.conf.resolvers``.
    Idempotent: ``v2a.conf`` calls it when imported."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for group, name, schema in SCHEMAS:
        store.store(group=group, name=name, node=schema)
    # The spec/ presets are mirrored as the group shared/spec, so configs composed from another folder
    # (data_prep/, which cannot reach ../spec) read the very same files: `- /shared/spec@spec: default`.
    # (Not as `spec/...`: Hydra refuses a stored config that shadows a file of the same name.)
    for preset in sorted((Path(__file__).resolve().parent / "spec").glob("*.yaml")):
        store.store(group=SHARED_SPEC, name=preset.stem, node=OmegaConf.load(preset))
    from v2a.conf.resolvers import (
        register_resolvers,  # it reads the schemas' constants: imported here, not above
    )

    register_resolvers()


def _nodes(node: Any, path: str) -> Iterator[tuple[str, DictConfig]]:
    """Every dict node under ``node`` (with its dotted path), without resolving interpolated nodes."""
    if isinstance(node, DictConfig):
        if node._is_none() or node._is_missing() or node._is_interpolation():
            return
        yield path, node
        items = ((str(key), node._get_node(key)) for key in node.keys())
    elif isinstance(node, ListConfig):
        if node._is_none() or node._is_missing() or node._is_interpolation():
            return
        items = ((f"[{i}]", node._get_node(i)) for i in range(len(node)))
    else:
        return
    for key, child in items:
        yield from _nodes(child, f"{path}.{key}" if path and not key.startswith("[") else f"{path}{key}")


def config_errors(cfg: DictConfig) -> list[str]:
    """The impossible values of a composed config, as ``key: problem`` phrases (empty: all fine)."""
    errors: list[str] = []
    for path, node in _nodes(cfg, ""):
        check: Callable[[DictConfig, str], list[str]] | None = getattr(OmegaConf.get_type(node), "check", None)
        prefix = f"{path}." if path else ""
        try:
            if check is not None:
                errors += check(node, prefix)
            is_spec = path.endswith(".spec") or node.get("_target_") == SPEC_TARGET
            if is_spec and path != "spec" and "spec" in cfg:  # a copy (data.spec: {...}) instead of ${spec}
                if OmegaConf.to_container(node, resolve=True) != OmegaConf.to_container(cfg.spec, resolve=True):
                    errors.append(f"{path} differs from spec: set the one clip grid as spec.KEY=... (not {path}.KEY)")
        except (OmegaConfBaseException, TypeError) as error:
            errors.append(f"{prefix.rstrip('.') or 'config'}: {str(error).splitlines()[0]}")
    return errors


def check_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` (one line) if the composed ``cfg`` holds an impossible value."""
    errors = config_errors(cfg)
    if errors:
        raise ConfigError("invalid config: " + "; ".join(errors))


def exit_if_invalid(cfg: DictConfig) -> None:
    """For entry points, right after composition: the problems as one line on stderr, then exit code 2."""
    try:
        check_config(cfg)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
