"""v2a: a research training framework for video-to-audio generation.

``from v2a import V2APipeline`` is the inference entry point (imported on first use, so ``import v2a``
stays cheap for the command line and the configs).
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "V2APipeline":
        from v2a.pipeline import V2APipeline

        return V2APipeline
    raise AttributeError(f"module 'v2a' has no attribute {name!r}")
