"""Chunked vocoding / watermarking of an endless signal: exact where chunks agree, seamless where they do not."""

import numpy as np
import pytest

from v2a.pipeline.chunked import overlapped_map


def _pieces(signal, sizes):
    start = 0
    for size in sizes:
        yield signal[..., start : start + size]
        start += size
    if start < signal.shape[-1]:
        yield signal[..., start:]


@pytest.mark.parametrize("total", [5, 40, 123, 1000])
def test_identity_and_scaled_maps_are_exact(total):
    rng = np.random.default_rng(total)
    signal = rng.standard_normal((2, total)).astype(np.float32)
    sizes = rng.integers(1, 30, 200)
    out = np.concatenate(list(overlapped_map(_pieces(signal, sizes), lambda x: x, chunk=20, pad=4)), axis=-1)
    np.testing.assert_allclose(out, signal, atol=1e-6)
    scaled = np.concatenate(list(overlapped_map(_pieces(signal, sizes), lambda x: np.repeat(x, 3, axis=-1),
                                                chunk=20, pad=4, scale=3)), axis=-1)
    np.testing.assert_allclose(scaled, np.repeat(signal, 3, axis=-1), atol=1e-6)


def test_chunks_are_bounded_in_phase_and_crossfaded_without_a_seam():
    signal = np.arange(1000, dtype=np.float32)
    seen = []

    def shifted(x):  # each chunk comes back with its own offset: a seam would show as a jump
        seen.append((int(x[0]), len(x)))
        return np.full(len(x), 100.0 * len(seen), dtype=np.float32)

    out = np.concatenate(list(overlapped_map(_pieces(signal, [7] * 200), shifted, chunk=96, pad=24)))
    assert len(out) == 1000
    assert all(length <= 2 * 96 + 2 * 24 for _, length in seen)  # memory: a few chunks, whatever the length
    assert all((first + 24) % 96 == 0 for first, _ in seen[1:])  # chunk starts keep the period's phase
    assert np.abs(np.diff(out)).max() <= 100.0 / 48 + 1e-3  # linear crossfades over 2 x pad, no step
    assert out[0] == 100.0 and out[-1] == 100.0 * len(seen)


def test_bad_chunking_and_wrong_lengths_are_errors():
    with pytest.raises(ValueError, match="chunk"):
        list(overlapped_map([np.zeros(10)], lambda x: x, chunk=10, pad=6))
    with pytest.raises(ValueError, match="returned"):
        list(overlapped_map([np.zeros(50)], lambda x: x[:-1], chunk=10, pad=2))
    assert list(overlapped_map([], lambda x: x, chunk=10, pad=2)) == []
