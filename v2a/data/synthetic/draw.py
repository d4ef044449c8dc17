"""Pixel masks for the scene sources: discs, ellipses, rectangles and thick line segments.

Masks are plain boolean arrays (no anti-aliasing): tests find a drawn object by its exact colour.
Coordinates are pixels, (row, column), with fractional centres allowed.
"""

from __future__ import annotations

import numpy as np


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[0:height, 0:width]
    # pixel centres, so a disc centred at (h/2, w/2) is symmetric
    return rows + 0.5, cols + 0.5


def ellipse(height: int, width: int, centre: tuple[float, float], radii: tuple[float, float]) -> np.ndarray:
    """Pixels inside the axis-aligned ellipse with ``radii`` = (vertical, horizontal)."""
    rows, cols = _grid(height, width)
    ry, rx = max(radii[0], 1e-6), max(radii[1], 1e-6)
    return ((rows - centre[0]) / ry) ** 2 + ((cols - centre[1]) / rx) ** 2 <= 1.0


def disc(height: int, width: int, centre: tuple[float, float], radius: float) -> np.ndarray:
    """Pixels inside a circle."""
    return ellipse(height, width, centre, (radius, radius))


def rectangle(height: int, width: int, top: float, left: float, bottom: float, right: float) -> np.ndarray:
    """Pixels whose centres lie in [top, bottom) x [left, right)."""
    rows, cols = _grid(height, width)
    return (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)


def segment(height: int, width: int, start: tuple[float, float], end: tuple[float, float], thickness: float) -> np.ndarray:
    """Pixels within ``thickness / 2`` of the segment from ``start`` to ``end``."""
    rows, cols = _grid(height, width)
    p0, p1 = np.asarray(start, dtype=float), np.asarray(end, dtype=float)
    direction = p1 - p0
    length2 = float(direction @ direction) or 1e-12
    t = np.clip(((rows - p0[0]) * direction[0] + (cols - p0[1]) * direction[1]) / length2, 0.0, 1.0)
    dr = rows - (p0[0] + t * direction[0])
    dc = cols - (p0[1] + t * direction[1])
    return dr**2 + dc**2 <= (thickness / 2) ** 2
