"""ODE samplers for flow models. They accept any ``velocity(x, t) -> v`` callable."""

from __future__ import annotations

from collections.abc import Callable

import torch

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def guided_velocity(conditional: Velocity, unconditional: Velocity | None, scale: float) -> Velocity:
    """Classifier-free guidance: v = v_uncond + s (v_cond - v_uncond); s = 1 is plain conditioning."""
    if unconditional is None or scale == 1.0:
        return conditional

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        v_uncond = unconditional(x, t)
        return v_uncond + scale * (conditional(x, t) - v_uncond)

    return velocity


class ODESampler:
    """Integrates dx/dt = v(x, t) from t = 0 (noise) to t = 1 (data) with Euler or Heun steps."""

    METHODS = ("euler", "heun")

    def __init__(self, *, steps: int = 8, method: str = "euler") -> None:
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if method not in self.METHODS:
            raise ValueError(f"method must be one of {self.METHODS}, got {method!r}")
        self.steps = steps
        self.method = method

    @torch.no_grad()
    def __call__(self, velocity: Velocity, noise: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        steps = self.steps if steps is None else steps
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        times = torch.linspace(0, 1, steps + 1, device=noise.device)
        x = noise
        for t0, t1 in zip(times[:-1], times[1:], strict=True):
            dt = t1 - t0
            v0 = velocity(x, t0.expand(x.shape[0]))
            if self.method == "heun":
                x_pred = x + dt * v0
                v1 = velocity(x_pred, t1.expand(x.shape[0]))
                x = x + dt * (v0 + v1) / 2
            else:
                x = x + dt * v0
        return x
