"""Class labels of a clip read from its json (materials, scene categories), for whatever keys it has.

Clips without a label for a head are masked out of that head (training) or skipped (evaluation), so
real videos, the impacts-only benchmark and the full benchmark all work with the same code.
"""

from __future__ import annotations

import torch

# event kind -> scene kind (v2a/conf/data_prep/synthetic_full.yaml), for clips that do not list their kinds
EVENT_CATEGORY = {"impact": "impacts", "word": "talking_head", "note": "music", "switch_on": "lamp",
                  "switch_off": "lamp"}


def clip_labels(meta: dict, head: str) -> set[str]:
    """Names of the classes present in a clip for ``head`` (``material`` or ``category``)."""
    events = meta.get("events") or []
    if head == "material":
        names = set(meta.get("materials") or [])
        names |= {e["material"] for e in events if isinstance(e, dict) and e.get("material")}
        return names
    if head == "category":
        recorded = meta.get("categories") or meta.get("kinds")  # the scene kinds of the full benchmark
        if recorded:
            return set(recorded)
        # older or impacts-only clips: infer the scene kind from what their events are
        return {EVENT_CATEGORY.get(e["kind"], e["kind"]) for e in events if isinstance(e, dict) and e.get("kind")}
    raise ValueError(f"unknown label head '{head}' (material or category)")


def soft_targets(metas: list[dict], head: str, vocabulary: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform distributions over each clip's known classes [B, C], and a mask of clips that have one [B]."""
    index = {name: i for i, name in enumerate(vocabulary)}
    targets = torch.zeros(len(metas), len(vocabulary))
    for row, meta in enumerate(metas):
        present = [index[n] for n in clip_labels(meta, head) if n in index]
        if present:
            targets[row, present] = 1.0 / len(present)
    return targets, targets.sum(dim=1) > 0
