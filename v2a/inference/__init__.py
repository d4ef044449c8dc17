"""Loading trained models for generation and evaluation."""

from v2a.inference.loading import load_checkpoint, load_module

__all__ = ["load_checkpoint", "load_module"]
