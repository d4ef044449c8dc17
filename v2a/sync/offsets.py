"""Held-out offset accuracy of a sync model: shift each clip's audio by known amounts and predict them back."""

from __future__ import annotations

from collections.abc import Iterable

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
