"""Conditional flow matching (rectified flow): time sampling, interpolation, target, CFG dropout.

Convention: t = 0 is noise (x0), t = 1 is data (x1); x_t = (1 - t) x0 + t x1, velocity = x1 - x0.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from v2a.shapes import Keep


@dataclass(frozen=True)
class SamplingStart:
    """Where sampling starts for some rows: at flow time ``time``, from ``time * estimate + (1 - time) * noise``
    (``ODESampler.prior_start`` from a phoneme prior). ``estimate`` is like the data [B, ...]; ``rows`` (bool [B])
    are the rows sampled from there (clips with something to say)."""

    estimate: torch.Tensor
    rows: torch.Tensor
    time: float

    def __post_init__(self) -> None:
        if not 0.0 < self.time < 1.0:
            raise ValueError(f"a sampling start must be at a flow time in (0, 1), got {self.time}")


class RectifiedFlow:
    """The training objective. ``loss`` takes the network as an argument, so any network fits.

    Condition dropout (for classifier-free guidance): ``cond_dropout`` drops every condition of a
    sample together. ``modality_dropout`` (e.g. ``{video: 0.1, prompt: 0.2, transcript: 0.2}``) adds
    independent drops per modality, so each can be guided or left out at sampling; then the keep-mask
    handed to the network is a dict of per-modality masks instead of one mask.

    ``start_share``: the share of the rows that sampling starts part way (a :class:`SamplingStart` given to
    :meth:`loss`) that are trained on the path sampling takes from there instead: t uniform in [start, 1] on the
    straight line through the start point and the data. The flow then learns to turn the start it is given (a
    smooth regression of the mel, with a little noise) into the data, where the plain path at t >= start shows it
    an input that already holds most of the data's detail (and logit-normal times put only ~1.4 % of the rows
    there for a start of 0.9).
    """

    def __init__(self, *, time_sampling: str = "logit_normal", cond_dropout: float = 0.1,
                 modality_dropout: Mapping[str, float] | None = None, start_share: float = 0.0) -> None:
        if time_sampling not in ("uniform", "logit_normal"):
            raise ValueError(f"time_sampling must be 'uniform' or 'logit_normal', got {time_sampling!r}")
        if not 0.0 <= cond_dropout < 1.0:
            raise ValueError(f"cond_dropout must be in [0, 1), got {cond_dropout}")
        for name, p in (modality_dropout or {}).items():
            if not 0.0 <= p < 1.0:
                raise ValueError(f"modality_dropout.{name} must be in [0, 1), got {p}")
        if not 0.0 <= start_share <= 1.0:
            raise ValueError(f"start_share must be in [0, 1], got {start_share}")
        self.time_sampling = time_sampling
        self.start_share = start_share
        self.cond_dropout = cond_dropout
        self.modality_dropout = dict(modality_dropout) if modality_dropout else None

    @contextlib.contextmanager
    def recording(self) -> Iterator[dict]:
        """Within the block, every :meth:`loss` also puts its ``t`` and ``per_sample`` losses into the yielded
        dict (for logging the loss per flow time without changing the loss or its callers)."""
        previous, self._recording = getattr(self, "_recording", None), {}
        try:
            yield self._recording
        finally:
            self._recording = previous

    @staticmethod
    def interpolate(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.view(-1, *([1] * (x0.dim() - 1)))
        return (1 - t) * x0 + t * x1

    @staticmethod
    def target(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        return x1 - x0

    def sample_time(self, batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        if self.time_sampling == "uniform":
            return torch.rand(batch, generator=generator, device=device)
        # logit-normal puts more training signal at intermediate t, where the task is hardest
        return torch.sigmoid(torch.randn(batch, generator=generator, device=device))

    def keep_mask(self, batch: int, generator: torch.Generator, device: torch.device) -> Keep:
        """Per-sample bool: keep the condition (False = dropped, trains the unconditional branch).

        With ``modality_dropout``: ``{modality: mask}``, each mask = not jointly dropped and not
        dropped on its own (draws in the configured order: the stream is reproducible).
        """
        joint = torch.rand(batch, generator=generator, device=device) >= self.cond_dropout
        if self.modality_dropout is None:
            return joint
        return {name: joint & (torch.rand(batch, generator=generator, device=device) >= p)
                for name, p in self.modality_dropout.items()}

    def loss(self, velocity: Callable[..., torch.Tensor], x1: torch.Tensor, generator: torch.Generator,
             mask: torch.Tensor | None = None, details: dict | None = None,
             source_mean: torch.Tensor | None = None, source_std: float = 1.0,
             start: SamplingStart | None = None) -> torch.Tensor:
        """MSE between ``velocity(x_t, t, keep)`` and the straight-line target.

        ``mask`` (bool [B, F], True = real, False = padding) restricts the mean to the real frames of the
        last axis of ``x1`` [B, ..., F] (see :func:`masked_mse`); a mask on a coarser grid that divides F
        evenly (audio tokens) is repeated onto the frames. ``v2a.audio.mel_frame_mask`` makes one from the
        loader's ``audio_mask``. The random draws do not depend on the mask.

        ``details``, when given a dict (or inside :meth:`recording`), receives ``t`` [B] and ``per_sample`` [B]
        (each sample's own masked MSE, detached): what the loss per flow-time bucket is made of. The returned
        loss does not change.

        ``source_mean`` (like ``x1``) moves the source: x0 = source_mean + unit noise (a prior the sampler starts
        from, ``ODESampler.prior_source``); the target stays the straight line from x0 to x1. ``source_std`` scales
        that noise (``ODESampler.prior_noise``).

        ``start`` (with ``start_share`` > 0): the drawn share of ``start.rows`` is trained from where sampling starts
        (see the class). Their error is weighted by (1 - t)^2, i.e. it is the error of the data the velocity implies
        (x1 = x_t + (1 - t) v), which stays finite as t -> 1. The draws come after the others, so the rows not drawn
        see exactly what they would without it.
        """
        details = details if details is not None else getattr(self, "_recording", None)
        # Draw on the generator's device (a CPU generator's state is portable and checkpointable),
        # then move: the random stream does not depend on where the model runs.
        batch, source = x1.shape[0], generator.device
        x0 = source_std * torch.randn(x1.shape, generator=generator, device=source).to(x1)
        if source_mean is not None:
            x0 = x0 + source_mean.to(x1)
        t = self.sample_time(batch, generator, source).to(x1.device)
        keep = self.keep_mask(batch, generator, source)
        keep = {k: m.to(x1.device) for k, m in keep.items()} if isinstance(keep, dict) else keep.to(x1.device)
        scale = None
        if start is not None and self.start_share > 0:
            x0, t, scale = self._from_start(x0, x1, t, start, generator)
        prediction = velocity(self.interpolate(x0, x1, t), t, keep)
        target = self.target(x0, x1)
        if scale is not None:   # (1 - t) v: the implied data's error on the drawn rows, the velocity's elsewhere
            prediction, target = prediction * scale, target * scale
        if details is not None:
            details.update(t=t.detach(), per_sample=per_sample_mse(prediction.detach(), target.detach(), mask))
        return masked_mse(prediction, target, mask)

    def _from_start(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor, start: SamplingStart,
                    generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Move the drawn rows onto the straight path through the sampling start point and the data."""
        batch, source = x1.shape[0], generator.device
        drawn = (torch.rand(batch, generator=generator, device=source) < self.start_share).to(x1.device)
        drawn = drawn & start.rows.to(x1.device)
        late = (start.time + (1 - start.time) * torch.rand(batch, generator=generator, device=source)).to(x1)
        t = torch.where(drawn, late, t)
        # the line x_t = (1 - t) x0' + t x1 that passes through time * estimate + (1 - time) * noise at t = time
        shift = start.time / (1 - start.time) * (start.estimate.to(x1) - x1)
        rows = drawn.view(-1, *([1] * (x1.dim() - 1)))
        x0 = torch.where(rows, x0 + shift, x0)
        scale = torch.where(drawn, 1 - t, torch.ones_like(t)).view(rows.shape)
        return x0, t, scale


def broadcast_frame_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """bool [B, L] mask -> bool [B, 1, ..., F] broadcastable to ``like`` [B, ..., F] (True = real frame).

    ``L`` is F (mel frames) or divides it (tokens of F / L frames each, repeated onto the frames).
    """
    frames = like.shape[-1]
    if mask.dim() != 2 or mask.shape[0] != like.shape[0] or mask.shape[1] == 0 or frames % mask.shape[1]:
        raise ValueError(f"mask {tuple(mask.shape)} must be [B, L] with B = {like.shape[0]} and L dividing the "
                         f"{frames} frames of the last axis of {tuple(like.shape)}")
    mask = mask.to(device=like.device, dtype=torch.bool)
    if mask.shape[1] != frames:
        mask = mask.repeat_interleave(frames // mask.shape[1], dim=1)
    return mask.view(mask.shape[0], *([1] * (like.dim() - 2)), frames)


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over the real frames only (float32): padded frames add nothing to the loss or
    its gradient, whatever they hold. The mean is pooled over every real element of the batch, so an
    all-True mask (or none) gives exactly ``F.mse_loss``; an all-False mask gives 0.

    ``mask``: bool [B, L] over the last axis of ``prediction`` [B, ..., F] (see :func:`broadcast_frame_mask`).
    """
    prediction, target = prediction.float(), target.float()
    if mask is None:
        return F.mse_loss(prediction, target)
    real = broadcast_frame_mask(mask, prediction)
    # Zero both sides on padding *before* the error: padded frames then get an exact zero gradient even if
    # they hold inf/NaN (multiplying the error by 0 would give 0 * inf = NaN in the backward pass).
    prediction, target = prediction.masked_fill(~real, 0.0), target.masked_fill(~real, 0.0)
    count = real.sum() * (prediction.numel() // real.numel())
    masked = F.mse_loss(prediction, target, reduction="sum") / count.clamp_min(1)
    # torch.where rather than `if mask.all()`: no host sync; with nothing masked the inputs are unchanged,
    # so an all-True mask gives F.mse_loss bit for bit.
    return torch.where(real.all(), F.mse_loss(prediction, target), masked)


def per_sample_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Each sample's mean squared error over its own real frames (float32, [B]); a sample with no real frame
    gives 0. Its real-frame-weighted mean is :func:`masked_mse`."""
    error = (prediction.float() - target.float()).square()
    if mask is None:
        return error.flatten(1).mean(dim=1)
    real = broadcast_frame_mask(mask, error)
    error = error.masked_fill(~real, 0.0)
    count = real.flatten(1).sum(dim=1) * (error[0].numel() // real[0].numel())
    return error.flatten(1).sum(dim=1) / count.clamp_min(1)
