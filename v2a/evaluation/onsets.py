"""Onset detection (spectral flux on log-mel) and matching against reference onsets.

The detector is deliberately simple and fixed: its threshold and latency are calibrated once on
ground-truth *validation* audio, then applied unchanged to ground truth, generated and
mismatched-video audio of the test split, so the three numbers are comparable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment


def onset_strength(mel: torch.Tensor) -> torch.Tensor:
    """Normalised log-mel [B, n_mels, F] -> novelty [B, F]: mean positive frame-to-frame increase."""
    flux = torch.diff(mel, dim=-1, prepend=mel[..., :1]).clamp_min(0)
    return flux.mean(dim=-2)


def pick_peaks(novelty: np.ndarray, threshold: float, frame_rate: float, min_gap_s: float = 0.03) -> np.ndarray:
    """Times (s) of local maxima of ``novelty`` above ``threshold``, at least ``min_gap_s`` apart."""
    return pick_peaks_with_strength(novelty, threshold, frame_rate, min_gap_s)[0]


def pick_peaks_with_strength(novelty: np.ndarray, threshold: float, frame_rate: float,
                             min_gap_s: float = 0.03) -> tuple[np.ndarray, np.ndarray]:
    """(times in s, novelty heights) of the peaks that :func:`pick_peaks` keeps, in time order."""
    x = np.asarray(novelty)
    if len(x) < 3:
        return np.zeros(0), np.zeros(0)
    is_peak = (x[1:-1] > x[:-2]) & (x[1:-1] >= x[2:]) & (x[1:-1] > threshold)
    candidates = np.nonzero(is_peak)[0] + 1
    kept: list[int] = []
    for index in candidates[np.argsort(-x[candidates])]:  # strongest first, suppress close neighbours
        if all(abs(index - k) / frame_rate >= min_gap_s for k in kept):
            kept.append(int(index))
    kept.sort()
    return np.array(kept, dtype=np.float64) / frame_rate, x[kept].astype(np.float64)


def match_onsets(detected: np.ndarray, reference: np.ndarray, tolerance: float) -> list[tuple[float, float]]:
    """Optimal one-to-one matching of (detected, reference) onsets within ``tolerance`` seconds.

    The matching has the most pairs possible (a maximum-cardinality matching of the graph whose edges join
    onsets at most ``tolerance`` apart), and among those the smallest total absolute timing error, since the
    onset MAE and the detector's latency are read from the pairs. (A greedy closest-first matching is not
    maximal: ``[0.00, 0.05]`` against ``[0.03, 0.08]`` at 0.04 s pairs 0.05 with 0.03 and stops at one pair.)
    Returns (detected, reference) pairs in the order of the detected times.
    """
    d = np.asarray(detected, dtype=np.float64).reshape(-1)
    r = np.asarray(reference, dtype=np.float64).reshape(-1)
    if len(d) == 0 or len(r) == 0 or tolerance < 0:
        return []
    d_order, r_order = np.argsort(d, kind="stable"), np.argsort(r, kind="stable")
    matched: list[tuple[int, int]] = []
    for d_block, r_block in _independent_blocks(d[d_order], r[r_order], tolerance):
        rows, cols = _match_block(d[d_order[d_block]], r[r_order[r_block]], tolerance)
        matched += [(int(d_order[d_block][i]), int(r_order[r_block][j])) for i, j in zip(rows, cols, strict=True)]
    matched.sort(key=lambda pair: (d[pair[0]], pair))
    return [(float(d[i]), float(r[j])) for i, j in matched]


def _independent_blocks(d: np.ndarray, r: np.ndarray, tolerance: float) -> list[tuple[slice, slice]]:
    """Split sorted ``d`` and ``r`` where the merged timeline has a gap wider than ``tolerance``: no pair
    within tolerance crosses such a gap, so each block is matched on its own (small assignment problems)."""
    times = np.concatenate([d, r])
    is_d = np.concatenate([np.ones(len(d), dtype=bool), np.zeros(len(r), dtype=bool)])
    order = np.argsort(times, kind="stable")
    times, is_d = times[order], is_d[order]
    cuts = np.nonzero(np.diff(times) > tolerance)[0] + 1
    blocks, d_count, r_count = [], np.cumsum(is_d), np.cumsum(~is_d)
    for begin, end in zip(np.r_[0, cuts], np.r_[cuts, len(times)], strict=True):
        d0 = int(d_count[begin - 1]) if begin else 0
        r0 = int(r_count[begin - 1]) if begin else 0
        d1, r1 = int(d_count[end - 1]), int(r_count[end - 1])
        if d1 > d0 and r1 > r0:
            blocks.append((slice(d0, d1), slice(r0, r1)))
    return blocks


def _match_block(d: np.ndarray, r: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of a maximum matching with the least total |d - r| among maximum matchings.

    One assignment problem with lexicographic costs: a pair within tolerance costs ``-1 + |d - r| / scale``
    with ``scale`` larger than any matching's total error, any other pair 0 (dropped afterwards). One more
    pair always lowers the cost by more than timing errors can add, so the optimum is a maximum matching,
    and among those the one with the least total error.
    """
    error = np.abs(d[:, None] - r[None, :])
    valid = error <= tolerance
    scale = (min(len(d), len(r)) + 1) * max(tolerance, np.finfo(np.float64).tiny)
    cost = np.where(valid, error / scale - 1.0, 0.0)
    rows, cols = linear_sum_assignment(cost)
    keep = valid[rows, cols]
    return rows[keep], cols[keep]


@dataclass
class OnsetScores:
    """Micro-averaged onset scores over a set of clips."""

    true_positives: int = 0
    detected: int = 0
    reference: int = 0
    abs_errors: list[float] | None = None

    def add(self, detected: np.ndarray, reference: np.ndarray, tolerance: float) -> None:
        matched = match_onsets(detected, reference, tolerance)
        self.true_positives += len(matched)
        self.detected += len(detected)
        self.reference += len(reference)
        self.abs_errors = (self.abs_errors or []) + [abs(d - r) for d, r in matched]

    def as_dict(self) -> dict[str, float]:
        precision = self.true_positives / self.detected if self.detected else 0.0
        recall = self.true_positives / self.reference if self.reference else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        mae = 1000 * float(np.mean(self.abs_errors)) if self.abs_errors else float("nan")
        return {"onset_precision": precision, "onset_recall": recall, "onset_f1": f1, "onset_mae_ms": mae}


@dataclass(frozen=True)
class OnsetDetector:
    """A calibrated detector: threshold on the novelty curve and a latency correction (seconds)."""

    threshold: float
    latency: float
    frame_rate: float
    min_gap_s: float = 0.03

    def __call__(self, mel: torch.Tensor) -> list[np.ndarray]:
        novelty = onset_strength(mel).cpu().numpy()
        return [pick_peaks(n, self.threshold, self.frame_rate, self.min_gap_s) - self.latency for n in novelty]

    def candidates(self, mel: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every peak of the novelty curve (no threshold) as (latency-corrected times, strengths): for AP."""
        out = []
        for n in onset_strength(mel).cpu().numpy():
            times, strengths = pick_peaks_with_strength(n, 0.0, self.frame_rate, self.min_gap_s)
            out.append((times - self.latency, strengths))
        return out


def average_precision(candidates: list[tuple[np.ndarray, np.ndarray]], references: list[np.ndarray],
                      tolerance: float) -> float:
    """Onset AP: detections of all clips ranked by strength, each matched to the closest unmatched
    reference of its clip within ``tolerance``; the area under the (non-interpolated) precision-recall
    curve, i.e. the mean precision at each true positive over all references (as in PASCAL VOC)."""
    n_references = sum(len(r) for r in references)
    if n_references == 0:
        return float("nan")
    ranked = sorted(((float(s), clip, float(t)) for clip, (times, strengths) in enumerate(candidates)
                     for t, s in zip(times, strengths, strict=True)), key=lambda item: -item[0])
    used: list[set[int]] = [set() for _ in references]
    hits, precision_sum = 0, 0.0
    for rank, (_, clip, t) in enumerate(ranked, start=1):
        reference = references[clip]
        free = [(abs(t - r), j) for j, r in enumerate(reference) if j not in used[clip] and abs(t - r) <= tolerance]
        if free:
            used[clip].add(min(free)[1])
            hits += 1
            precision_sum += hits / rank
    return precision_sum / n_references


def calibrate(mels: list[torch.Tensor], references: list[np.ndarray], frame_rate: float, tolerance: float,
              thresholds: np.ndarray | None = None) -> OnsetDetector:
    """Choose the threshold that maximises F1 on ground-truth audio, then its median latency."""
    thresholds = np.linspace(0.005, 0.2, 40) if thresholds is None else thresholds
    novelties = [n for mel in mels for n in onset_strength(mel).cpu().numpy()]
    best_threshold, best_f1, best_latency = float(thresholds[0]), -1.0, 0.0
    for threshold in thresholds:
        # latency from a generous window first, so a constant delay does not hide good thresholds
        offsets = []
        for novelty, reference in zip(novelties, references, strict=True):
            detected = pick_peaks(novelty, threshold, frame_rate)
            offsets += [d - r for d, r in match_onsets(detected, reference, 3 * tolerance)]
        latency = float(np.median(offsets)) if offsets else 0.0
        scores = OnsetScores()
        for novelty, reference in zip(novelties, references, strict=True):
            scores.add(pick_peaks(novelty, threshold, frame_rate) - latency, reference, tolerance)
        f1 = scores.as_dict()["onset_f1"]
        if f1 > best_f1:
            best_threshold, best_f1, best_latency = float(threshold), f1, latency
    return OnsetDetector(threshold=best_threshold, latency=best_latency, frame_rate=frame_rate)
