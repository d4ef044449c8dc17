"""Null distribution of the detector score and its p-value.

Per hypothesis, ``z = sum_j p_j T_j / sqrt(sum_j T_j^2)`` with key bits ``p_j`` that are fair
and independent of the audio under H0 (no mark of this key). Given the audio, ``z`` is then a
normalised Rademacher sum: mean 0, variance 1, and by the CLT over the few hundred tiles close
to N(0, 1). (Rigorous bounds also exist: Hoeffding gives ``P(z >= t) <= exp(-t^2/2)`` and
Pinelis ``<= 4.46 * Q(t)``; we use the Gaussian tail and check it empirically in the bench.)

The detector looks at three nested families of hypotheses and combines them with a weighted
Bonferroni bound, so the common cases pay for fewer hypotheses:

* ``aligned``: speed 1 and the shift an untouched file has (1 hypothesis);
* ``shifted``: speed 1, any circular shift (crops, codec delays; ``P`` hypotheses);
* ``near``: resampling speed changes within ``1 +- near_speed`` x any shift;
* ``any``: every (tempo, pitch) hypothesis x shift (up to ``1 +- max_speed`` on each of the three lines
  of ``detection.scale_hypotheses``).

Within a family the max over ``H`` scores gets a Sidak bound ``1 - (1 - q)^H``; the family
p-values are divided by their weights and the smallest is kept. For long audio the same is
done per window and Sidak-combined over windows. All bounds are conservative even though
neighbouring hypotheses are strongly correlated.
"""

from __future__ import annotations

import math

import numpy as np


def log_gaussian_tail(z: float) -> float:
    """``log P(N(0,1) >= z)``, accurate far into the tail."""
    from scipy.special import log_ndtr  # detection only: generation (embedding) does not load SciPy

    return float(log_ndtr(-z))


def max_p_value(z_max: float, n_hypotheses: int) -> float:
    """P-value of the largest of ``n_hypotheses`` N(0,1) scores being >= ``z_max`` (Sidak)."""
    log_q = log_gaussian_tail(z_max)
    if log_q > -1e-12:  # z far below 0: the tail probability is 1 to machine precision
        return 1.0
    if log_q < -30:  # 1-(1-q)^H ~= H*q, computed in logs to stay finite deep in the tail
        return math.exp(min(0.0, math.log(n_hypotheses) + log_q))
    return float(-math.expm1(n_hypotheses * math.log1p(-math.exp(log_q))))


# Weights of the aligned / shifted / near-speed / any-speed families (sum to 1).
FAMILY_WEIGHTS = (0.4, 0.3, 0.2, 0.1)


def family_p_value(z: np.ndarray, tempo: np.ndarray, pitch: np.ndarray, aligned_shift: int, *,
                   near_speed: float) -> tuple[float, float, float, float]:
    """Combine the ``[hypotheses, shifts]`` z-scores of one window into ``(p_value, z, tempo, pitch)``.

    ``tempo``/``pitch`` give each hypothesis' factors (``detection.scale_hypotheses``); the near family
    is the resampling line (tempo = pitch) within ``near_speed``. ``z``, ``tempo`` and ``pitch`` are
    those of the family that gave the smallest weighted p-value.
    """
    unit = int(np.flatnonzero((tempo == 1.0) & (pitch == 1.0))[0])
    w0, w1, w2, w3 = FAMILY_WEIGHTS
    candidates = [
        (max_p_value(float(z[unit, aligned_shift]), 1) / w0, float(z[unit, aligned_shift]), 1.0, 1.0),
        (max_p_value(float(z[unit].max()), z.shape[1]) / w1, float(z[unit].max()), 1.0, 1.0),
    ]
    near = np.flatnonzero((tempo == pitch) & (np.abs(tempo - 1.0) <= near_speed + 1e-9))
    for rows, weight in ((near, w2), (np.arange(len(tempo)), w3)):
        sub = z[rows]
        flat = int(np.argmax(sub))
        row = rows[flat // z.shape[1]]
        candidates.append((max_p_value(float(sub.flat[flat]), sub.size) / weight, float(sub.flat[flat]),
                           float(tempo[row]), float(pitch[row])))
    pv, zz, tp, pt = min(candidates, key=lambda c: c[0])
    return min(1.0, pv), zz, tp, pt
