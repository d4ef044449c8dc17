"""Conditional flow matching (rectified flow): time sampling, interpolation, target, CFG dropout.

Convention: t = 0 is noise (x0), t = 1 is data (x1); x_t = (1 - t) x0 + t x1, velocity = x1 - x0.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


class RectifiedFlow:
    """The training objective. ``loss`` takes the network as an argument, so any network fits."""

    def __init__(self, *, time_sampling: str = "logit_normal", cond_dropout: float = 0.1) -> None:
        if time_sampling not in ("uniform", "logit_normal"):
            raise ValueError(f"time_sampling must be 'uniform' or 'logit_normal', got {time_sampling!r}")
        if not 0.0 <= cond_dropout < 1.0:
            raise ValueError(f"cond_dropout must be in [0, 1), got {cond_dropout}")
        self.time_sampling = time_sampling
        self.cond_dropout = cond_dropout

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

    def keep_mask(self, batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """Per-sample bool: keep the condition (False = dropped, trains the unconditional branch)."""
        return torch.rand(batch, generator=generator, device=device) >= self.cond_dropout

    def loss(self, velocity: Callable[..., torch.Tensor], x1: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """MSE between ``velocity(x_t, t, keep)`` and the straight-line target."""
        # Draw on the generator's device (a CPU generator's state is portable and checkpointable),
        # then move: the random stream does not depend on where the model runs.
        batch, source = x1.shape[0], generator.device
        x0 = torch.randn(x1.shape, generator=generator, device=source).to(x1)
        t = self.sample_time(batch, generator, source).to(x1.device)
        keep = self.keep_mask(batch, generator, source).to(x1.device)
        prediction = velocity(self.interpolate(x0, x1, t), t, keep)
        return F.mse_loss(prediction.float(), self.target(x0, x1).float())
