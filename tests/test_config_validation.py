"""Typed schemas and value checks: a bad value fails right after composition, in one line (v2a/conf/schemas.py)."""

import inspect
import subprocess
import sys
from dataclasses import fields

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from tests.conftest import CONF, ROOT, compose_config
from v2a.conf import ConfigError, check_config
from v2a.conf.schemas import (
    SAMPLER_METHODS,
    SAMPLER_SCHEDULES,
    TEXT_STREAMS,
    DenoiserSchema,
    SpecSchema,
    TextEncoderSchema,
    VisualEncoderSchema,
    config_errors,
)

TRAIN = ["paths.root_dir=/tmp/v2a", "paths.output_dir=/tmp/v2a/run"]
ENTRY = {"generate": ["video=in.mp4", "ckpt=ckpt", "out=out.mp4"], "evaluate": ["ckpt=ckpt", "out=eval"]}


def _error_of(cfg) -> str:
    with pytest.raises(ConfigError) as caught:
        check_config(cfg)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- types: Hydra refuses them while composing ------------------------------------------------------------

@pytest.mark.parametrize("name", ["generate", "evaluate"])
def test_a_wrong_type_fails_at_compose_time(name):
    with pytest.raises(ConfigCompositionException) as caught:
        compose_config(ENTRY[name] + ["cfg_scale=high"], config_name=name)
    assert "cfg_scale=high" in str(caught.value)
    assert "could not be converted to Float" in str(caught.value.__cause__)


@pytest.mark.parametrize("override", ["model.denoiser.depth=deep", "spec.fps=fast", "model.visual_encoder.channels=8"])
def test_model_and_spec_fields_are_typed(override):
    with pytest.raises(ConfigCompositionException):
        compose_config(TRAIN + [override])


@pytest.mark.parametrize("name", ["generate", "evaluate"])
def test_an_unknown_key_is_refused(name):
    with pytest.raises(ConfigCompositionException):
        compose_config(ENTRY[name] + ["cfg_scael=2"], config_name=name)


# --- values: checked right after composition, before anything is built --------------------------------------

def test_the_shipped_configs_pass():
    assert config_errors(compose_config(TRAIN)) == []
    for name, overrides in ENTRY.items():
        assert config_errors(compose_config(overrides, config_name=name)) == []


def test_a_negative_depth_is_one_line():
    assert _error_of(compose_config(TRAIN + ["model.denoiser.depth=-3"])) == (
        "invalid config: model.denoiser.depth must be >= 1, got -3")


def test_width_must_divide_by_heads():
    message = _error_of(compose_config(TRAIN + ["model/denoiser=small", "model.denoiser.width=250"]))
    assert message == "invalid config: model.denoiser.width 250 is not divisible by model.denoiser.heads 4"


def test_several_problems_are_listed_on_one_line():
    message = _error_of(compose_config(TRAIN + ["model.denoiser.depth=0", "model.visual_encoder.dim=12", "spec.fps=24"]))
    assert "model.denoiser.depth must be >= 1, got 0" in message and "model.visual_encoder.dim must be a positive multiple of 8" in message
    assert "spec: audio token rate 50/s must be an integer multiple of the video fps 24" in message


@pytest.mark.parametrize(("name", "override", "expected"), [
    ("generate", "cfg_scale=-1", "cfg_scale must be >= 0"),
    ("generate", "steps=0", "steps must be >= 1"),
    ("generate", "original_audio=loud", "original_audio must be one of drop|keep|mix"),
    ("generate", "sampler.method=rk4", "sampler.method must be one of euler|heun|midpoint"),
    ("generate", "streaming.batch_windows=0", "streaming.batch_windows must be > 0"),
    ("evaluate", "cfg_scale=-2", "cfg_scale must be >= 0"),
    ("evaluate", "batch_size=0", "batch_size must be >= 1"),
    ("evaluate", "whisper=maybe", "whisper must be one of"),
])
def test_entry_point_values(name, override, expected):
    assert expected in _error_of(compose_config(ENTRY[name] + [override], config_name=name))


def test_text_encoder_presets_are_checked():
    message = _error_of(compose_config(TRAIN + ["experiment=v2a_text_tiny", "model.prompt_encoder.heads=3"]))
    assert "model.prompt_encoder.dim 128 is not divisible by model.prompt_encoder.heads 3" in message


# --- the one spec, and what is derived from it ------------------------------------------------------------

def test_one_spec_reaches_data_model_and_features():
    cfg = compose_config(TRAIN + ["spec.duration=1.0", "spec.image_size=64"])
    spec = OmegaConf.to_container(cfg.spec, resolve=True)
    for key in ("data.spec", "model.denoiser.spec", "model.features.spec"):
        assert OmegaConf.to_container(OmegaConf.select(cfg, key), resolve=True) == spec, key
    assert config_errors(cfg) == []


def test_data_prep_writes_with_the_training_spec():
    train = OmegaConf.to_container(compose_config(TRAIN).spec, resolve=True)
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF / "data_prep"), version_base="1.3"):
        for name, overrides in [("synthetic", []), ("shards", ["input=a", "out=b"]), ("synthetic_prompt", [])]:
            cfg = compose(config_name=name, overrides=overrides)
            assert OmegaConf.to_container(cfg.spec, resolve=True) == train, name
            assert config_errors(cfg) == []
        full = compose(config_name="synthetic_full", overrides=["spec.fps=30"])
    assert full.spec.duration == 4.0 and full.spec.image_size == 64   # its own deltas over the shared spec
    assert "spec: audio token rate 50/s must be an integer multiple of the video fps 30" in _error_of(full)


def test_a_copied_data_spec_is_refused():
    cfg = compose_config(TRAIN + ["data.spec={duration:1.0}"])
    assert "data.spec differs from spec" in _error_of(cfg)
    with pytest.raises(ConfigCompositionException):   # the old key: data.spec is ${spec}
        compose_config(TRAIN + ["data.spec.duration=1.0"])


def test_mel_frames_per_video_frame_is_derived():
    from hydra.utils import instantiate

    from v2a.shapes import ClipSpec

    assert ClipSpec().mel_frames_per_video_frame == 4
    assert ClipSpec(hop_length=80).mel_frames_per_video_frame == 8
    sync = compose_config(TRAIN + ["experiment=sync_base"])
    assert sync.model.audio_encoder.mel_frames_per_video_frame == 4
    sync = compose_config(TRAIN + ["experiment=sync_base", "spec.hop_length=80"])
    assert sync.model.audio_encoder.mel_frames_per_video_frame == 8
    assert instantiate(sync.spec).mel_frames_per_video_frame == 8


@pytest.mark.parametrize(("experiment", "encoder"), [("v2a_text_tiny", "prompt_encoder"),
                                                     ("v2a_text_tiny_no_prompt", "transcript_encoder")])
def test_text_dim_follows_the_text_encoders(experiment, encoder):
    cfg = compose_config(TRAIN + [f"experiment={experiment}", f"model.{encoder}.dim=64"])
    assert cfg.model.denoiser.text_dim == 64
    assert compose_config(TRAIN).model.denoiser.text_dim is None   # video only: no text encoder


# --- the schemas mirror what they describe -------------------------------------------------------------------

def _arguments(cls) -> set[str]:
    return {name for name in inspect.signature(cls.__init__).parameters if name != "self"}


def test_schemas_mirror_their_classes():
    from v2a.diffusion import ODESampler
    from v2a.models import denoiser
    from v2a.models.text_encoder import TextEncoder
    from v2a.models.visual_encoder import FrameCNNEncoder
    from v2a.shapes import ClipSpec

    assert {f.name for f in fields(SpecSchema)} - {"_target_"} == {f.name for f in fields(ClipSpec)}
    for schema, cls in ((DenoiserSchema, denoiser.MelDenoiser), (TextEncoderSchema, TextEncoder),
                        (VisualEncoderSchema, FrameCNNEncoder)):
        assert {f.name for f in fields(schema)} - {"_target_"} == _arguments(cls), schema
    assert tuple(ODESampler.METHODS) == SAMPLER_METHODS and tuple(ODESampler.SCHEDULES) == SAMPLER_SCHEDULES
    assert tuple(denoiser.TEXT_STREAMS) == TEXT_STREAMS


# --- the entry points: one line on stderr, no traceback ---------------------------------------------------

def _run(*args):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})


def test_entry_points_report_one_line(tmp_path):
    bad_type = _run("generate.py", *ENTRY["generate"], "cfg_scale=high")
    assert bad_type.returncode != 0 and "Traceback" not in bad_type.stderr
    assert "could not be converted to Float" in bad_type.stderr

    bad_value = _run("train.py", "model.denoiser.width=100", "model.denoiser.heads=3", f"hydra.run.dir={tmp_path}")
    assert bad_value.returncode == 2 and "Traceback" not in bad_value.stderr
    lines = [line for line in bad_value.stderr.splitlines() if line.strip()]
    assert lines == ["error: invalid config: model.denoiser.width 100 is not divisible by model.denoiser.heads 3"], lines


def test_the_console_script_reports_one_line(capsys):
    from v2a.cli import main

    assert main(["generate", "in.mp4", "--ckpt", "ckpt", "cfg_scale=high"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Error merging override cfg_scale=high: Value 'high'") and "\n" not in err
    assert main(["generate", "in.mp4", "--ckpt", "ckpt", "--steps", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: invalid config: steps must be >= 1, got 0"
