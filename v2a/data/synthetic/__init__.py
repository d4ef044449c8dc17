"""The procedural benchmark: clips whose every sound has a visible cause and an exact ground truth.

``render_impact_clip`` renders the impacts-only default; ``render_scene`` mixes every kind of source
(impacts, fan, lamp, rain, music bed, talking heads) following a :class:`Scene` recipe.
"""

from v2a.data.synthetic.impacts import SyntheticClip, render_impact_clip
from v2a.data.synthetic.materials import MATERIALS, Material
from v2a.data.synthetic.scene import Kind, Scene, render_scene

__all__ = ["MATERIALS", "Kind", "Material", "Scene", "SyntheticClip", "render_impact_clip", "render_scene"]
