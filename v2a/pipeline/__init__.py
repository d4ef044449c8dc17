"""The inference pipeline: network, features, sampler, vocoder, text conditioning and guidance.

``V2APipeline.from_pretrained(path)`` loads a training checkpoint or an export without Lightning.
"""

from v2a.pipeline.pipeline import V2APipeline

__all__ = ["V2APipeline"]
