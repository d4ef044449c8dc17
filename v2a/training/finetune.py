"""Fine-tuning a trained V2A model on new shards (``experiment=finetune``, v2a/conf/experiment/finetune.yaml).

Three pieces:

* :func:`finetune_config` — run by :func:`v2a.training.run.train` when the config has a ``finetune`` node: the
  model's architecture (every ``model`` key but the optimisation ones, and ``spec``) is taken from the stored
  config of ``finetune.init`` (a checkpoint or an export), so the network always matches the weights; a command
  line override of an architecture key is refused.
* :class:`FinetuneModule` — a :class:`V2AModule` that starts from the init's EMA weights and freezes the parts
  ``finetune.freeze`` names (gradients off, out of the optimizer, kept in eval mode). Its checkpoints and exports
  are plain V2A ones (``run_config`` names ``V2AModule``; ``finetuned_from`` records the provenance).
* :class:`HeldOutCheck` — the overfitting guard beside ``val/loss`` and early stopping: the held-out loss on the
  *original* data's val split (``finetune/original_val_loss``) and the fraction of it kept
  (``finetune/original_kept`` = loss before fine-tuning / loss now; 1 = nothing forgotten).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from v2a.conf.schemas import ConfigError
from v2a.data.streams import split_batches
from v2a.pipeline.loading import read_pretrained
from v2a.training.v2a_module import V2AModule

log = logging.getLogger(__name__)

V2A_TARGET = "v2a.training.v2a_module.V2AModule"
# model keys this run sets (how to train); every other model key is the init's (what the network is)
TRAINING_KEYS = ("_target_", "optimizer", "scheduler", "ema_decay", "seed", "finetune", "visual_init", "freeze_visual",
                 "prior_loss_weight", "mouth_loss_weight", "even_words",
                 "timing_aligner", "aligner_share")
# shorthand names in finetune.freeze, each standing for the network parts that exist
FREEZE_GROUPS = {"encoders": ("visual_encoder", "text_encoders", "phoneme_encoder")}


@dataclass(frozen=True)
class FinetuneSettings:
    """``finetune:`` of the experiment (``model.finetune`` is the same node)."""

    init: str                                  # a V2A checkpoint (.ckpt) or export folder
    freeze: Sequence[str] = field(default_factory=list)   # module paths of the network, or FREEZE_GROUPS names
    original_data: str | None = None           # the init's shards (its val split is scored too); null: off
    original_clips: int = 64                   # how many of its val clips


def _stored_config(init: str | Path) -> tuple[dict, bytes | None, int]:
    """The stored config, tokenizer and trained steps of ``finetune.init`` (a missing path: one line naming the key)."""
    path = Path(init)
    if not path.exists():
        raise FileNotFoundError(f"finetune.init={init} does not exist (a V2A checkpoint .ckpt or an export folder)")
    config, _, tokenizer, steps = read_pretrained(path)
    if (config.get("model") or {}).get("denoiser") is None:
        raise ValueError(f"finetune.init={init} is not a video-to-audio model (use a checkpoint or export of "
                         "experiment=v2a_*)")
    return config, tokenizer, steps


def _user_architecture_overrides() -> list[str]:
    """Command-line overrides that would change the model's architecture (empty outside a Hydra app)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    found = []
    for override in HydraConfig.get().overrides.task:
        key = override.split("=", 1)[0].lstrip("+~")
        if key.startswith(("spec", "model/")) or (key.startswith("model.") and
                                                   key.split(".")[1] not in TRAINING_KEYS):
            found.append(override)
    return found


def finetune_config(cfg: DictConfig) -> DictConfig:
    """``cfg`` with ``spec`` and the model's architecture taken from ``finetune.init``'s stored config.

    The optimisation keys of ``model`` (:data:`TRAINING_KEYS`) stay this config's; ``finetune.original_data``
    ``auto`` becomes the init's ``data.root`` (null when that folder is gone, with a warning); a text model's
    tokenizer is written into the run folder and read by both the model and the data loader.
    """
    overrides = _user_architecture_overrides()
    if overrides:
        raise ConfigError(f"experiment=finetune takes the architecture from finetune.init; drop {', '.join(overrides)}")
    if OmegaConf.is_missing(cfg.data, "root"):
        raise ConfigError("experiment=finetune needs data.root=DIR: the shards to fine-tune on (DIR/{train,val}/*.tar)")
    stored, tokenizer, steps = _stored_config(cfg.finetune.init)
    merged = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))   # untyped: any stored part fits
    merged.spec = stored["spec"]
    model = {k: v for k, v in stored["model"].items() if k not in TRAINING_KEYS}
    model.update({k: OmegaConf.to_container(merged.model, resolve=False)[k] for k in TRAINING_KEYS if k in merged.model})
    model.update(visual_init=None, freeze_visual=False)
    merged.model = model
    if tokenizer is not None:
        path = Path(merged.paths.output_dir) / "init_tokenizer.model"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tokenizer)
        merged.model.tokenizer = merged.data.tokenizer = str(path)
    if merged.finetune.get("original_data") == "auto":
        root = OmegaConf.select(OmegaConf.create(stored), "data.root")
        if isinstance(root, list | tuple) or root is None or not Path(str(root)).exists():
            log.warning("finetune.original_data=auto: the init's data (%s) is not here; the original held-out "
                        "loss is not measured (set finetune.original_data=DIR)", root)
            root = None
        merged.finetune.original_data = root
    original = merged.finetune.get("original_data")
    if original is not None and not Path(str(original)).exists():
        raise FileNotFoundError(f"finetune.original_data={original} does not exist (the init's shard root)")
    log.info("fine-tuning %s (%s): its architecture and clip grid are kept", cfg.finetune.init,
             f"{steps} steps trained" if steps >= 0 else "an export")
    return merged


def freeze_names(net: torch.nn.Module, freeze: Iterable[str]) -> list[str]:
    """The module paths ``freeze`` names in ``net`` (groups expanded); an unknown name is a clear error."""
    modules = dict(net.named_modules())
    names: list[str] = []
    for entry in freeze:
        expanded = [n for n in FREEZE_GROUPS[entry] if n in modules and any(True for _ in modules[n].parameters())] \
            if entry in FREEZE_GROUPS else [entry]
        for name in expanded:
            if name not in modules or name == "":
                parts = sorted(n for n in modules if n and n.count(".") <= 2)
                raise ValueError(f"finetune.freeze: the network has no part {name!r} (module paths such as "
                                 f"{', '.join(parts[:12])}, ...; or {', '.join(FREEZE_GROUPS)})")
            names.append(name)
    return names


class FinetuneModule(V2AModule):
    """A V2A model that starts from ``finetune.init``'s EMA weights with the ``finetune.freeze`` parts frozen."""

    def __init__(self, *, finetune: dict | FinetuneSettings, **v2a_kwargs: Any) -> None:
        super().__init__(**v2a_kwargs)
        self.settings = finetune if isinstance(finetune, FinetuneSettings) else FinetuneSettings(**finetune)
        self.frozen = freeze_names(self.net, self.settings.freeze)
        for name in self.frozen:
            self.net.get_submodule(name).requires_grad_(False)
        if not any(p.requires_grad for p in self.net.parameters()):
            raise ValueError(f"finetune.freeze={list(self.settings.freeze)} leaves nothing to train")
        self._train_config: dict | None = None
        self._loaded = False

    # --- the config checkpoints and exports store: a plain V2A model -------------------------------
    @property
    def run_config(self) -> dict | None:  # type: ignore[override]
        if self._train_config is None:
            return None
        config = copy.deepcopy(self._train_config)
        config.pop("finetune", None)
        config["finetuned_from"] = config["model"].pop("finetune", None)   # provenance; nothing builds from it
        config["model"]["_target_"] = V2A_TARGET
        return config

    @run_config.setter
    def run_config(self, value: dict | None) -> None:
        self._train_config = value

    # --- start and frozen parts -------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        super().setup(stage)
        # Before Lightning restores a resumed checkpoint, which then wins over the init's weights.
        if stage == "fit" and not self._loaded:
            self.load_init()

    def load_init(self) -> None:
        """Copy the init's EMA network into the network and its EMA copy (strict: the configs match by construction)."""
        _, weights, _, _ = read_pretrained(self.settings.init)
        net = {k.removeprefix("net."): v for k, v in weights.items() if k.startswith("net.")}
        for module in (self.net, self.ema.module):
            module.load_state_dict(net)
        self._loaded = True
        trainable = sum(p.numel() for p in self.net.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.net.parameters())
        log.info("fine-tuning from %s: %s frozen, %.3f M of %.3f M parameters trained", self.settings.init,
                 ", ".join(self.frozen) or "nothing", trainable / 1e6, total / 1e6)

    def train(self, mode: bool = True) -> FinetuneModule:
        # frozen parts stay in eval mode: no dropout, and their normalisation statistics stay the init's
        super().train(mode)
        for name in self.frozen:
            self.net.get_submodule(name).eval()
        return self


@torch.no_grad()
def held_out_loss(module: V2AModule, batches: Iterable[dict]) -> float:
    """The EMA network's flow-matching loss over ``batches``, with validation's fixed noise (batch i: seed 12345 + i)."""
    total, count = 0.0, 0
    for i, batch in enumerate(batches):
        batch = {k: v.to(module.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        rows = batch["audio"].shape[0]
        total += float(module._loss(module.ema.module, batch, torch.Generator().manual_seed(12345 + i), stage=None)) * rows
        count += rows
    return total / max(count, 1)


class HeldOutCheck(pl.Callback):
    """At every validation: the held-out loss on the original data's val split (what fine-tuning may forget).

    Logs ``finetune/original_val_loss``, ``finetune/original_val_loss_before`` (measured when training starts) and
    ``finetune/original_kept`` (before / now), and ``finetune/val_loss_before`` (this data's held-out loss
    before fine-tuning, to read ``val/loss`` against). ``root`` null: the original data is not scored.
    """

    def __init__(self, root: str | None, max_clips: int = 64, batch_size: int = 16) -> None:
        self.root = root
        self.max_clips = max_clips
        self.batch_size = batch_size
        self.before: dict[str, float] = {}
        self._batches: list[dict] | None = None

    def _original(self, trainer: pl.Trainer) -> list[dict]:
        if self._batches is None:   # decoded once, kept in memory (a few dozen short clips)
            streams = trainer.datamodule.streams
            self._batches = list(split_batches(self.root, "val", streams.spec, self.batch_size, self.max_clips,
                                               decoder=streams.decoder, tokenizer=streams.tokenizer_path,
                                               text_max_tokens=streams.text_max_tokens,
                                               visual_features=streams.visual_features))
        return self._batches

    def _this_data(self, trainer: pl.Trainer) -> Iterable[dict]:
        limit = trainer.limit_val_batches
        batches = trainer.datamodule.val_dataloader()
        if isinstance(limit, int):
            return (b for i, b in zip(range(limit), batches, strict=False))
        return batches

    def on_train_start(self, trainer: pl.Trainer, pl_module: V2AModule) -> None:
        if self.before:   # restored from a resumed run's checkpoint: "before" is the init's, not the resumed state's
            return
        was_training = pl_module.training
        pl_module.eval()
        self.before["val_loss"] = held_out_loss(pl_module, self._this_data(trainer))
        if self.root is not None:
            self.before["original_val_loss"] = held_out_loss(pl_module, self._original(trainer))
        pl_module.train(was_training)
        log.info("before fine-tuning: %s", ", ".join(f"{k} {v:.4f}" for k, v in self.before.items()))

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: V2AModule) -> None:
        if trainer.sanity_checking or not self.before:
            return
        metrics = {"finetune/val_loss_before": self.before["val_loss"]}
        if self.root is not None:
            now = held_out_loss(pl_module, self._original(trainer))
            before = self.before["original_val_loss"]
            metrics.update({"finetune/original_val_loss": now, "finetune/original_val_loss_before": before,
                            "finetune/original_kept": before / now if now > 0 else float("nan")})
        for name, value in metrics.items():
            pl_module.log(name, value, sync_dist=True)

    def state_dict(self) -> dict:
        return {"before": dict(self.before)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.before = dict(state_dict.get("before") or {})
