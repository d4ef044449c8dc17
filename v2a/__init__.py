"""v2a: a research training framework for video-to-audio generation."""

__version__ = "0.1.0"
