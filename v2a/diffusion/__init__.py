"""Flow-matching objective and ODE samplers, kept apart from any network."""

from v2a.diffusion.flow_matching import RectifiedFlow, SamplingStart, masked_mse
from v2a.diffusion.samplers import ODESampler, batched_guided_velocity, guided_velocity

__all__ = ["ODESampler", "RectifiedFlow", "SamplingStart", "batched_guided_velocity", "guided_velocity", "masked_mse"]
