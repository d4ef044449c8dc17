"""experiment=finetune: a few steps from an export, frozen parts unchanged, the held-out guards logged."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from tests.conftest import TINY, compose_config
from v2a.checkpoints.loading import load_checkpoint
from v2a.conf.schemas import ConfigError, check_config
from v2a.pipeline import V2APipeline
from v2a.pipeline.loading import read_pretrained
from v2a.training.finetune import freeze_names
from v2a.training.run import train

FROZEN = ("visual_encoder.", "denoiser.blocks.0.")


def finetune_cfg(tmp_path: Path, shards: Path, init: str, *extra: str):
    overrides = [o for o in TINY if not o.startswith("experiment=")] + [
        "experiment=finetune", f"finetune.init={init}", f"data.root={shards}", f"paths.root_dir={tmp_path}",
        f"paths.output_dir={tmp_path / 'run'}", "finetune.freeze=[encoders,denoiser.blocks.0]",
        f"finetune.original_data={shards}", "finetune.original_clips=8", "trainer.max_steps=3",
        "model.optimizer.lr=1e-2", *extra]
    cfg = compose_config(overrides)
    with open_dict(cfg):
        cfg.callbacks.demo_samples = None
    return cfg


def metrics_rows(run: Path) -> list[dict[str, str]]:
    (path,) = run.glob("csv/**/metrics.csv")
    with path.open() as f:
        return list(csv.DictReader(f))


def test_finetune_from_an_export_keeps_frozen_parts_and_logs_the_held_out_guards(one_step_checkpoint, tiny_shards,
                                                                                tmp_path):
    export = Path(one_step_checkpoint).parent.parent / "export"
    cfg = finetune_cfg(tmp_path, tiny_shards, str(export))
    check_config(cfg)
    result = train(cfg)

    _, init_weights, _, _ = read_pretrained(export)
    init = {k.removeprefix("net."): v for k, v in init_weights.items() if k.startswith("net.")}
    state = load_checkpoint(result["checkpoint"])["state_dict"]
    assert load_checkpoint(result["checkpoint"])["global_step"] == 3
    for prefix in ("pipeline.net.", "ema.module."):
        net = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
        assert net.keys() == init.keys()
        frozen = [k for k in init if k.startswith(FROZEN)]
        # weights and normalisation statistics of the frozen parts: bit-identical, in the network and its EMA
        assert frozen and all(torch.equal(net[k], init[k]) for k in frozen), prefix
    online = {k.removeprefix("pipeline.net."): v for k, v in state.items() if k.startswith("pipeline.net.")}
    trained = [k for k in init if k.startswith(("denoiser.blocks.1.", "denoiser.out_proj."))]
    assert all(not torch.equal(online[k], init[k]) for k in trained)

    # frozen parameters are not in the optimizer
    checkpoint = load_checkpoint(result["checkpoint"])
    in_optimizer = sum(len(g["params"]) for g in checkpoint["optimizer_states"][0]["param_groups"])
    model_net = V2APipeline.from_pretrained(export).net
    expected = sum(1 for name, _ in model_net.named_parameters() if not name.startswith(FROZEN))
    assert in_optimizer == expected

    # the held-out guards: this data's val loss, the original data's and the fraction of it kept
    rows = metrics_rows(tmp_path / "run")
    logged = {k: float(v) for row in rows for k, v in row.items() if v not in ("", None) and k != "epoch"}
    for key in ("val/loss", "finetune/original_val_loss", "finetune/original_val_loss_before",
                "finetune/original_kept", "finetune/val_loss_before"):
        assert key in logged and math.isfinite(logged[key]), key
    # the result is a plain V2A model whose export loads for inference, with the provenance recorded
    config, _, _, _ = read_pretrained(tmp_path / "run" / "export")
    assert config["model"]["_target_"].endswith("V2AModule") and config["finetuned_from"]["init"] == str(export)
    assert "finetune" not in config["model"]
    V2APipeline.from_pretrained(tmp_path / "run" / "export")


def test_finetune_takes_the_architecture_from_the_init(one_step_checkpoint, tiny_shards, tmp_path):
    from v2a.training.finetune import finetune_config

    cfg = finetune_cfg(tmp_path, tiny_shards, one_step_checkpoint, "model/denoiser=small", "spec.image_size=64")
    merged = finetune_config(cfg)
    stored = load_checkpoint(one_step_checkpoint)["v2a_config"]
    assert merged.model.denoiser.width == stored["model"]["denoiser"]["width"] != cfg.model.denoiser.width
    assert merged.spec.image_size == stored["spec"]["image_size"] == 32
    assert merged.model.optimizer.lr == 1e-2   # how to train stays this config's
    assert merged.model._target_.endswith("FinetuneModule")


def test_a_missing_init_is_a_clear_error(tiny_shards, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^finetune\.init=/no/such/export does not exist"):
        train(finetune_cfg(tmp_path, tiny_shards, "/no/such/export"))
    cfg = compose_config(["experiment=finetune", "data.root=x"])   # no finetune.init at all
    with pytest.raises(ConfigError, match=r"finetune\.init is required"):
        check_config(cfg)


def test_an_unknown_frozen_part_names_the_parts(one_step_checkpoint):
    net = V2APipeline.from_pretrained(one_step_checkpoint).net
    assert freeze_names(net, ["encoders", "denoiser.blocks.1"]) == ["visual_encoder", "denoiser.blocks.1"]
    with pytest.raises(ValueError, match=r"no part 'denoiser\.block\.0'.*denoiser\.blocks\.0"):
        freeze_names(net, ["denoiser.block.0"])
