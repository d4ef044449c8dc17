"""Held-out offset accuracy of a sync model: shift each clip's audio by known amounts and predict them back."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch


def delay_audio(audio: torch.Tensor, samples: int) -> torch.Tensor:
    """Delay ``audio`` [B, S] by ``samples`` (negative: advance), zero-filling, same length."""
    if samples == 0:
        return audio
    shifted = torch.zeros_like(audio)
    if samples > 0:
        shifted[:, samples:] = audio[:, :-samples]
    else:
        shifted[:, :samples] = audio[:, -samples:]
    return shifted


@torch.no_grad()
def offset_accuracy(module, batches: Iterable[dict], delays: Iterable[int]) -> dict[str, float]:
    """Accuracy (exact and within one frame) of ``module.predict_offset`` on clips delayed by ``delays`` frames.

    Also reported on the clips with at least one recorded event inside the scored picture (frames
    max_lag..T-max_lag): a clip with nothing audible happening has no offset to find.
    """
    spec = module.features.spec
    samples_per_frame = spec.sample_rate // spec.fps
    delays = list(delays)
    exact = within = total = 0
    eventful = [0, 0]  # within-one-frame hits, count
    for batch in batches:
        frames, audio = batch["frames"], batch["audio"]
        first, last = module.max_lag / spec.fps, (frames.shape[1] - module.max_lag) / spec.fps
        has_event = torch.tensor([any(first <= e["time"] < last for e in meta.get("events", []))
                                  for meta in batch.get("meta", [{}] * len(audio))])
        for delay in delays:
            predicted = torch.round(module.predict_offset(frames, delay_audio(audio, delay * samples_per_frame)) * spec.fps)
            error = (predicted.cpu() - delay).abs()
            exact += int((error == 0).sum())
            within += int((error <= 1).sum())
            total += len(error)
            eventful[0] += int(((error <= 1) & has_event).sum())
            eventful[1] += int(has_event.sum())
    return {"sync/offset_acc": exact / max(total, 1), "sync/offset_acc_1frame": within / max(total, 1),
            "sync/offset_acc_1frame_eventful": eventful[0] / max(eventful[1], 1),
            "sync/eventful_fraction": eventful[1] / max(total, 1), "sync/offset_trials": float(total)}


def load_sync_model(path: str | Path, spec=None):
    """A trained sync-stage module (eval mode) from its checkpoint, loaded without pickle.

    With ``spec`` (the data being scored), a model trained on another frame rate or mel grid is refused.
    """
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from v2a.checkpoints.loading import CheckpointError, load_checkpoint

    checkpoint = load_checkpoint(path)
    config = OmegaConf.create(checkpoint["v2a_config"])
    if "SyncModule" not in str(config.model.get("_target_", "")):
        raise CheckpointError(f"{path} is not a sync-stage checkpoint (model is {config.model.get('_target_')})")
    module = instantiate(config.model)
    trained = module.features.spec
    if spec is not None and any(getattr(trained, k) != getattr(spec, k) for k in ("fps", "sample_rate", "hop_length", "n_mels")):
        raise CheckpointError(f"sync model {path} was trained at {trained.fps} fps / {trained.sample_rate} Hz / hop "
                              f"{trained.hop_length} / {trained.n_mels} mels; the data is {spec.fps} fps / "
                              f"{spec.sample_rate} Hz / hop {spec.hop_length} / {spec.n_mels} mels")
    module.load_state_dict(checkpoint["state_dict"])
    module.run_config = checkpoint["v2a_config"]
    return module.eval()
