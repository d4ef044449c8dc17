"""Keyed, robust audio watermark for v2a outputs, with a p-value detector.

``Watermarker(key).embed(audio, sr)`` marks audio; ``.detect(audio, sr)`` returns a
``DetectionResult`` (score, p_value, watermarked). See docs/watermark.md.
"""

from v2a.watermark.keying import DEFAULT_PUBLIC_KEY, ENV_VAR
from v2a.watermark.watermarker import DetectionResult, Watermarker

__all__ = ["DEFAULT_PUBLIC_KEY", "ENV_VAR", "DetectionResult", "Watermarker"]
