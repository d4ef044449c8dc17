"""Shared fixtures: a tiny synthetic shard set and composed tiny configs (seconds on CPU)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from v2a.conf import CONFIG_DIR
from v2a.data.synthetic.build import build_split
from v2a.shapes import ClipSpec

ROOT = Path(__file__).resolve().parent.parent
CONF = CONFIG_DIR

torch.set_num_threads(2)
os.environ.setdefault("WANDB_MODE", "offline")

# Overrides that make v2a_tiny run in seconds in tests.
TINY = [
    "experiment=v2a_tiny",
    "data.batch_size=8",
    "data.eval_batch_size=8",
    "data.num_workers=0",
    "data.shuffle_buffer=16",
    "data.samples_per_epoch=32",
    "trainer.max_steps=4",
    "trainer.val_check_interval=2",
    "trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "callbacks.model_checkpoint.every_n_train_steps=2",
    "callbacks.demo_samples.num_clips=1",
    "model.scheduler.warmup_steps=1",
]


@pytest.fixture(scope="session")
def tiny_spec() -> ClipSpec:
    return ClipSpec()


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory, tiny_spec) -> Path:
    """train 48 / val 16 / test 16 clips in shards of 16, built once per session."""
    root = tmp_path_factory.mktemp("shards")
    for offset, (split, clips) in enumerate((("train", 48), ("val", 16), ("test", 16))):
        build_split(root, split, clips, 100 + offset, tiny_spec, shard_size=16, max_objects=2, workers=1)
    return root


def compose_config(overrides: list[str], config_name: str = "config"):
    """Compose a config outside a Hydra app (``hydra:`` interpolations replaced by explicit paths)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides)


@pytest.fixture()
def tiny_cfg(tiny_shards, tmp_path):
    return compose_config(TINY + [f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path / 'run'}",
                                  f"data.root={tiny_shards}"])


@pytest.fixture(scope="session")
def one_step_checkpoint(tmp_path_factory, tiny_shards) -> str:
    """A v2a_tiny checkpoint after one training step (for tests that need any loadable model)."""
    from omegaconf import open_dict

    from v2a.training.run import train

    out = tmp_path_factory.mktemp("one_step")
    cfg = compose_config(TINY + [f"paths.root_dir={out}", f"paths.output_dir={out / 'run'}", f"data.root={tiny_shards}"])
    with open_dict(cfg):
        cfg.trainer.max_steps = 1
        cfg.callbacks.demo_samples = None
    return train(cfg)["checkpoint"]


# A tiny text model's size: what both text-model fixtures shrink (the encoders' own sizes are added per experiment).
TINY_TEXT_MODEL = ["spec.duration=2.0", "model.denoiser.width=32", "model.denoiser.depth=2",
                   "model.denoiser.heads=2", "model.visual_encoder.dim=16", "model.optimizer.lr=1e-2"]


def train_tiny_text_model(experiment: str, out: Path, shards: Path, tokenizer: Path, steps: int,
                          extra: list[str] = ()) -> dict:
    """Train a tiny ``experiment`` (a text model) for ``steps`` on ``shards``; returns train()'s result."""
    from omegaconf import open_dict

    from v2a.training.run import train

    overrides = [o for o in TINY if not o.startswith("experiment=")] + [
        f"experiment={experiment}", f"paths.root_dir={out}", f"paths.output_dir={out / 'run'}",
        f"data.root={shards}", f"data.tokenizer={tokenizer}", f"trainer.max_steps={steps}", *TINY_TEXT_MODEL, *extra]
    cfg = compose_config(overrides)
    with open_dict(cfg):
        cfg.callbacks.demo_samples = None
    return train(cfg)

