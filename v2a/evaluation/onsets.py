"""Onset detection (spectral flux on log-mel) and matching against reference onsets.

The detector is deliberately simple and fixed: its threshold and latency are calibrated once on
ground-truth *validation* audio, then applied unchanged to ground truth, generated and
mismatched-video audio of the test split, so the three numbers are comparable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


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
    """Greedy one-to-one matching of closest (detected, reference) pairs within ``tolerance`` seconds."""
    pairs = sorted(
        (abs(d - r), i, j) for i, d in enumerate(detected) for j, r in enumerate(reference) if abs(d - r) <= tolerance
    )
    used_d, used_r, matched = set(), set(), []
    for _, i, j in pairs:
        if i not in used_d and j not in used_r:
            used_d.add(i)
            used_r.add(j)
            matched.append((float(detected[i]), float(reference[j])))
    return matched


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
