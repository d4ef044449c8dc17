"""Apply a whole-clip operation (vocoder, watermark) to an endless signal in overlapping chunks.

Input arrives as pieces of any length along the last axis; ``fn`` is applied to chunks of ``chunk``
input units with ``pad`` units of context on each side, and neighbouring outputs are crossfaded
linearly across the ``2 * pad`` units they share, so there is no seam. Memory is a few chunks,
whatever the length of the signal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np


def overlapped_map(pieces: Iterable[np.ndarray], fn: Callable[[np.ndarray], np.ndarray], *, chunk: int, pad: int,
                   scale: int = 1) -> Iterator[np.ndarray]:
    """Yield ``fn`` of the concatenated ``pieces`` (axis -1), computed chunk by chunk.

    ``fn`` maps ``n`` input units to ``n * scale`` output samples (a vocoder: mel frames -> samples,
    ``scale`` = hop; a watermark: samples -> samples). Chunk boundaries fall on multiples of
    ``chunk`` and chunks start ``pad`` before their boundary, so a ``chunk`` and ``pad`` that are
    multiples of some period keep every chunk in phase with it. The final chunk absorbs the remainder
    (it is between ``chunk`` and ``2 * chunk`` long), so each crossfade has its full length.
    """
    if chunk < 1 or pad < 0 or 2 * pad > chunk:
        raise ValueError(f"need chunk >= 1 and 0 <= 2 * pad <= chunk (chunk={chunk}, pad={pad})")
    buffer: list[np.ndarray] = []
    buffered, base = 0, 0  # buffer holds input units [base, base + buffered)
    core = 0  # next chunk's first unit (a chunk boundary)
    carry: np.ndarray | None = None  # previous output over [core - pad, core + pad), to crossfade

    def take(first: int, last: int) -> np.ndarray:
        joined = np.concatenate(buffer, axis=-1) if len(buffer) > 1 else buffer[0]
        buffer[:] = [joined]
        return joined[..., first - base : last - base]

    def process(end: int, final: bool) -> Iterator[np.ndarray]:
        nonlocal carry, core, buffered, base
        lo, hi = max(0, core - pad), end if final else end + pad
        out = np.asarray(fn(take(lo, hi)))
        if out.shape[-1] != (hi - lo) * scale:
            raise ValueError(f"chunk function returned {out.shape[-1]} samples for {hi - lo} units x {scale}")
        head = (core - lo) * scale  # output samples before the boundary (the crossfade's first half)
        if carry is not None:
            fade = carry.shape[-1]
            ramp = (np.arange(fade, dtype=np.float32) + 0.5) / fade
            yield carry * (1 - ramp) + out[..., :fade] * ramp
            start = fade
        else:
            start = head
        stop = out.shape[-1] if final else (end - pad - lo) * scale
        if stop > start:
            yield out[..., start:stop]
        carry = None if final else out[..., stop:]
        core = end
        drop = max(0, core - pad) - base  # input before the next chunk's context is no longer needed
        if drop > 0:
            joined = take(base, base + buffered)
            buffer[:] = [joined[..., drop:]]
            base, buffered = base + drop, buffered - drop

    for piece in pieces:
        piece = np.asarray(piece)
        if piece.shape[-1] == 0:
            continue
        buffer.append(piece)
        buffered += piece.shape[-1]
        # a chunk is processed once the next one is sure to be at least ``chunk`` long
        while base + buffered >= core + 2 * chunk + pad:
            yield from process(core + chunk, final=False)
    if base + buffered > core:
        yield from process(base + buffered, final=True)
