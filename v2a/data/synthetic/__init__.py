"""The procedural benchmark: clips whose every sound has a visible cause and an exact ground truth."""

from v2a.data.synthetic.impacts import SyntheticClip, render_impact_clip
from v2a.data.synthetic.materials import MATERIALS, Material

__all__ = ["MATERIALS", "Material", "SyntheticClip", "render_impact_clip"]
