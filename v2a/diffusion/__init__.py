"""Flow-matching objective and ODE samplers, kept apart from any network."""

from v2a.diffusion.flow_matching import RectifiedFlow, masked_mse
from v2a.diffusion.samplers import ODESampler, guided_velocity

__all__ = ["ODESampler", "RectifiedFlow", "guided_velocity", "masked_mse"]
