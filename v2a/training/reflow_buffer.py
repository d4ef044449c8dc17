"""A ring buffer of teacher pairs (frames, noise x0, teacher sample x1) for reflow distillation.

Integrating the guided teacher costs tens of network passes per clip, a student step one forward and
backward pass; reusing each pair for a few steps (mixed with other recent pairs, not repeated as one
batch) keeps the teacher from dominating the cost of a CPU-sized run.
"""

from __future__ import annotations

import torch


class PairBuffer:
    """The last ``capacity`` batches of pairs; ``sample`` draws a batch from all of them."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"buffer capacity must be >= 1 batch, got {capacity}")
        self.capacity = capacity
        self.batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def __len__(self) -> int:
        return sum(b[0].shape[0] for b in self.batches)

    def add(self, frames: torch.Tensor, x0: torch.Tensor, x1: torch.Tensor) -> None:
        if not frames.shape[0] == x0.shape[0] == x1.shape[0]:
            raise ValueError("frames, x0 and x1 must hold the same number of clips")
        self.batches.append((frames.detach(), x0.detach(), x1.detach()))
        if len(self.batches) > self.capacity:
            self.batches.pop(0)

    def sample(self, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``size`` pairs drawn without replacement (all of them when fewer are stored)."""
        if not self.batches:
            raise RuntimeError("the pair buffer is empty")
        frames, x0, x1 = (torch.cat(parts) for parts in zip(*self.batches, strict=True))
        index = torch.randperm(frames.shape[0], generator=generator)[:size].to(frames.device)
        return frames[index], x0[index], x1[index]

    def clear(self) -> None:
        self.batches.clear()

    def state_dict(self) -> dict:
        """The stored pairs (on CPU), so a resumed run samples from the same pairs as an uninterrupted one."""
        return {"capacity": self.capacity,
                "batches": [tuple(t.detach().cpu() for t in batch) for batch in self.batches]}

    def load_state_dict(self, state: dict) -> None:
        if int(state["capacity"]) != self.capacity:
            raise ValueError(f"checkpoint's reflow buffer holds {state['capacity']} batches, this run "
                             f"{self.capacity} (model.reflow.buffer_batches must match to resume)")
        self.batches = [tuple(batch) for batch in state["batches"]]
