"""ODE samplers for flow models. They accept any ``velocity(x, t) -> v`` callable."""

from __future__ import annotations

import math
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


def batched_guided_velocity(both: Velocity, scale: float) -> Velocity:
    """Classifier-free guidance in one network pass: ``both`` maps ``([x; x], [t; t])`` (a batch of 2B) to
    ``[v_cond; v_uncond]``, and v = v_uncond + s (v_cond - v_uncond) as in :func:`guided_velocity`."""

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        v_cond, v_uncond = both(torch.cat([x, x]), torch.cat([t, t])).chunk(2)
        return v_uncond + scale * (v_cond - v_uncond)

    return velocity


def time_grid(steps: int, *, schedule: str = "uniform", shift: float = 1.0,
              device: torch.device | str | None = None) -> torch.Tensor:
    """The ``steps + 1`` times 0 = t_0 < ... < t_N = 1 an ODE sampler visits (t = 0 noise, t = 1 data).

    ``uniform``: equal steps. ``cosine``: (1 - cos(pi u)) / 2, shorter steps near noise and near data.
    ``shift`` (SD3's time shift, applied after the schedule) maps the noise level s = 1 - t to
    shift * s / (1 + (shift - 1) s): shift > 1 spends more of the steps near noise, shift < 1 near data.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if shift <= 0:
        raise ValueError(f"shift must be > 0, got {shift}")
    if schedule == "uniform" and shift == 1.0:
        return torch.linspace(0, 1, steps + 1, device=device)  # bit-identical to the grid used before schedules
    u = torch.linspace(0, 1, steps + 1, device=device, dtype=torch.float64)
    if schedule == "uniform":
        t = u
    elif schedule == "cosine":
        t = (1 - torch.cos(math.pi * u)) / 2
    else:
        raise ValueError(f"schedule must be one of {ODESampler.SCHEDULES}, got {schedule!r}")
    if shift != 1.0:
        sigma = 1 - t
        t = 1 - shift * sigma / (1 + (shift - 1) * sigma)
    t[0], t[-1] = 0.0, 1.0  # exact ends, whatever rounding the maps left
    return t.float()


class ODESampler:
    """Integrates dx/dt = v(x, t) from t = 0 (noise) to t = 1 (data).

    Methods: ``euler`` (1 velocity evaluation per step), ``heun`` (explicit trapezoid, 2 per step) and
    ``midpoint`` (2 per step); both second-order methods are exact on velocities linear in t, where
    Euler is not. ``schedule``/``shift`` place the steps (:func:`time_grid`). ``nfe(steps)`` is the
    number of velocity evaluations, the cost to compare samplers by (with CFG each costs two network
    passes). ``prior_start`` is where a model with a phoneme prior starts (``V2APipeline.generate_mel``):
    at that flow time, from the prior mixed with noise; a call integrates from its ``start`` argument.
    ``prior_source`` says the model was *trained* to flow from its prior plus unit noise (not from noise alone,
    as Grad-TTS and PriorGrad start from the text's predicted mel): sampling starts from there at t = 0, or at
    ``prior_start`` from the prior plus ``1 - prior_start`` of the noise (where the training path passes when the
    clip sounds as its prior predicts: less noise to remove, less room to leave the prior). ``prior_noise`` scales
    that source's noise (x0 = prior + prior_noise * noise; 1: unit noise): below 1 the prior outweighs the noise
    (measured at 0.3 and 0.5: the voice still follows the prompt, the words are still lost; docs/benchmarks.md,
    dialogue_prior_noise). ``voice_temperature`` (models whose prior renders a voice code): the code is drawn around
    the one the prompt asks for, its learnt spread times this (0: the type's mean code, heard clearest in
    docs/benchmarks.md, dialogue_session16; 1: one voice of the type, drawn).
    """

    METHODS = ("euler", "heun", "midpoint")
    SCHEDULES = ("uniform", "cosine")
    EVALUATIONS_PER_STEP = {"euler": 1, "heun": 2, "midpoint": 2}

    def __init__(self, *, steps: int = 8, method: str = "euler", schedule: str = "uniform", shift: float = 1.0,
                 prior_start: float = 0.0, prior_source: bool = False, prior_noise: float = 1.0,
                 voice_temperature: float = 0.0) -> None:
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if method not in self.METHODS:
            raise ValueError(f"method must be one of {self.METHODS}, got {method!r}")
        if schedule not in self.SCHEDULES:
            raise ValueError(f"schedule must be one of {self.SCHEDULES}, got {schedule!r}")
        if shift <= 0:
            raise ValueError(f"shift must be > 0, got {shift}")
        if not 0.0 <= prior_start < 1.0:
            raise ValueError(f"prior_start must be in [0, 1), got {prior_start}")
        if prior_noise <= 0:
            raise ValueError(f"prior_noise must be > 0, got {prior_noise}")
        if voice_temperature < 0:
            raise ValueError(f"voice_temperature must be >= 0, got {voice_temperature}")
        self.steps = steps
        self.voice_temperature = float(voice_temperature)
        self.prior_start = float(prior_start)
        self.prior_source = bool(prior_source)
        self.prior_noise = float(prior_noise)
        self.method = method
        self.schedule = schedule
        self.shift = float(shift)

    def times(self, steps: int | None = None, device: torch.device | str | None = None) -> torch.Tensor:
        """The time grid of a ``steps``-step solve (default: the configured steps)."""
        return time_grid(self.steps if steps is None else steps, schedule=self.schedule, shift=self.shift, device=device)

    def nfe(self, steps: int | None = None) -> int:
        """Velocity evaluations of a ``steps``-step solve."""
        return self.EVALUATIONS_PER_STEP[self.method] * (self.steps if steps is None else steps)

    @torch.no_grad()
    def __call__(self, velocity: Velocity, noise: torch.Tensor, steps: int | None = None,
                 start: float = 0.0) -> torch.Tensor:
        """Integrate from ``noise`` at flow time ``start`` (0: pure noise; > 0: a partly formed sample, the
        grid squeezed into [start, 1]) to t = 1."""
        if not 0.0 <= start < 1.0:
            raise ValueError(f"start must be in [0, 1), got {start}")
        times = self.times(steps, device=noise.device)
        if start > 0:
            times = start + (1 - start) * times
        x = noise
        batch = x.shape[0]
        for t0, t1 in zip(times[:-1], times[1:], strict=True):
            dt = t1 - t0
            v0 = velocity(x, t0.expand(batch))
            if self.method == "heun":
                v1 = velocity(x + dt * v0, t1.expand(batch))
                x = x + dt * (v0 + v1) / 2
            elif self.method == "midpoint":
                half = t0 + dt / 2
                x = x + dt * velocity(x + dt / 2 * v0, half.expand(batch))
            else:
                x = x + dt * v0
        return x
