"""The watermark's moving averages (numpy) equal SciPy's ``uniform_filter`` with ``mode="nearest"``."""

import numpy as np
import pytest
from scipy.ndimage import uniform_filter, uniform_filter1d

from v2a.watermark.smoothing import box_mean, box_mean1d


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_box_means_equal_scipys_uniform_filters(dtype):
    rng = np.random.default_rng(0)
    x = (rng.random((37, 29)) ** 8 * 1e3).astype(dtype)  # a wide dynamic range, as power spectra have
    tol = {"rtol": 1e-5 if dtype == np.float32 else 1e-10, "atol": 1e-12 * float(x.max())}
    for size in (1, 2, 3, 4, 7, 8, 31, 50):  # even sizes: the window starts at i - size // 2, as in SciPy
        for axis in (0, 1):
            ours = box_mean1d(x, size, axis=axis)
            assert ours.dtype == x.dtype
            np.testing.assert_allclose(ours, uniform_filter1d(x, size, axis=axis, mode="nearest"), **tol)
    for size in ((3, 7), 5, (4, 2)):
        np.testing.assert_allclose(box_mean(x, size), uniform_filter(x, size=size, mode="nearest"), rtol=1e-5,
                                   atol=1e-9 * float(x.max()))


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="size must be >= 1"):
        box_mean1d(np.zeros(4), 0)
    with pytest.raises(ValueError, match="does not match"):
        box_mean(np.zeros((4, 4)), (3, 3, 3))
