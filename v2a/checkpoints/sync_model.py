"""Load a trained sync model (``experiment=sync_base``) for scoring, without Lightning or pickle."""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import OmegaConf

from v2a.checkpoints.loading import CheckpointError, load_checkpoint
from v2a.shapes import ClipSpec
from v2a.sync.model import SyncModel

SYNC_PREFIX = "model."  # where SyncModule keeps its SyncModel


def load_sync_model(path: str | Path, spec: ClipSpec | None = None) -> SyncModel:
    """The sync model of a sync-stage checkpoint, in eval mode.

    With ``spec`` (the data being scored), a model trained on another frame rate or mel grid is refused.
    """
    checkpoint = load_checkpoint(path)
    model_cfg = OmegaConf.create(checkpoint["v2a_config"]).model
    if "SyncModule" not in str(model_cfg.get("_target_", "")):
        raise CheckpointError(f"{path} is not a sync-stage checkpoint (model is {model_cfg.get('_target_')})")
    model = SyncModel(visual_encoder=instantiate(model_cfg.visual_encoder), audio_encoder=instantiate(model_cfg.audio_encoder),
                      features=instantiate(model_cfg.features), max_lag=model_cfg.get("max_lag", 5))
    trained = model.features.spec
    if spec is not None and any(getattr(trained, k) != getattr(spec, k) for k in ("fps", "sample_rate", "hop_length", "n_mels")):
        raise CheckpointError(f"sync model {path} was trained at {trained.fps} fps / {trained.sample_rate} Hz / hop "
                              f"{trained.hop_length} / {trained.n_mels} mels; the data is {spec.fps} fps / "
                              f"{spec.sample_rate} Hz / hop {spec.hop_length} / {spec.n_mels} mels")
    state = checkpoint["state_dict"]
    model.load_state_dict({k.removeprefix(SYNC_PREFIX): v for k, v in state.items()})
    model.run_config = checkpoint["v2a_config"]
    return model.eval()
