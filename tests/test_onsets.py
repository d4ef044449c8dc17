import itertools

import numpy as np
import pytest
import torch

from v2a.audio import LogMel
from v2a.data.synthetic import render_impact_clip
from v2a.evaluation.onsets import OnsetScores, calibrate, match_onsets, pick_peaks
from v2a.evaluation.references import event_times


def test_matching_is_one_to_one_within_tolerance():
    matched = match_onsets(np.array([0.10, 0.11, 0.50]), np.array([0.105, 0.9]), tolerance=0.04)
    assert matched == [(0.10, 0.105)] or matched == [(0.11, 0.105)]
    scores = OnsetScores()
    scores.add(np.array([0.10, 0.11, 0.50]), np.array([0.105, 0.9]), 0.04)
    result = scores.as_dict()
    assert result["onset_precision"] == 1 / 3 and result["onset_recall"] == 1 / 2
    assert abs(result["onset_f1"] - 0.4) < 1e-9
    assert abs(result["onset_mae_ms"] - 5.0) < 1e-6


def test_matching_finds_every_pair_greedy_closest_first_misses():
    # closest-first would pair 0.05 with 0.03 (|0.02|) and leave 0.00 and 0.08 alone
    matched = match_onsets(np.array([0.00, 0.05]), np.array([0.03, 0.08]), tolerance=0.04)
    assert matched == [(0.00, 0.03), (0.05, 0.08)]
    scores = OnsetScores()
    scores.add(np.array([0.00, 0.05]), np.array([0.03, 0.08]), 0.04)
    result = scores.as_dict()
    assert result["onset_precision"] == result["onset_recall"] == result["onset_f1"] == 1.0
    assert result["onset_mae_ms"] == pytest.approx(30.0)


def test_matching_edge_cases():
    assert match_onsets(np.zeros(0), np.array([0.1]), 0.04) == []
    assert match_onsets(np.array([0.1]), np.zeros(0), 0.04) == []
    assert match_onsets(np.array([0.1]), np.array([0.2]), 0.04) == []
    assert match_onsets(np.array([0.1]), np.array([0.14]), 0.05) == [(0.1, 0.14)]  # inclusive tolerance
    assert match_onsets(np.array([0.5, 0.5]), np.array([0.5]), 0.0) == [(0.5, 0.5)]
    # unsorted input: pairs come back in the order of the detected times
    assert match_onsets(np.array([0.9, 0.1]), np.array([0.12, 0.88]), 0.04) == [(0.1, 0.12), (0.9, 0.88)]


def _brute_force(detected: np.ndarray, reference: np.ndarray, tolerance: float) -> tuple[int, float]:
    """(size, least total |d - r|) of the maximum matchings, by enumerating every one-to-one matching."""
    best = (0, 0.0)
    for size in range(1, min(len(detected), len(reference)) + 1):
        for rows in itertools.combinations(range(len(detected)), size):
            for cols in itertools.permutations(range(len(reference)), size):
                errors = [abs(detected[i] - reference[j]) for i, j in zip(rows, cols, strict=True)]
                if max(errors) <= tolerance and (size > best[0] or sum(errors) < best[1]):
                    best = (size, sum(errors))
    return best


def test_matching_agrees_with_brute_force_maximum_matching():
    rng = np.random.default_rng(0)
    for _ in range(300):
        detected = np.round(rng.uniform(0, 0.3, rng.integers(0, 6)), 3)
        reference = np.round(rng.uniform(0, 0.3, rng.integers(0, 6)), 3)
        tolerance = float(rng.choice([0.02, 0.04, 0.08]))
        matched = match_onsets(detected, reference, tolerance)
        size, total_error = _brute_force(detected, reference, tolerance)
        assert len(matched) == size
        assert sum(abs(d - r) for d, r in matched) == pytest.approx(total_error, abs=1e-9)
        # a one-to-one matching of the given onsets, within tolerance
        assert all(abs(d - r) <= tolerance for d, r in matched)
        for values, column in ((detected, 0), (reference, 1)):
            used = [pair[column] for pair in matched]
            assert all(used.count(v) <= list(values).count(v) for v in used)


def test_timing_error_reads_the_optimal_pairs():
    # both matchings of size 2 exist; the one with the least error pairs 0.10-0.11 and 0.20-0.21
    detected, reference = np.array([0.10, 0.20]), np.array([0.11, 0.21])
    assert match_onsets(detected, reference, 0.15) == [(0.10, 0.11), (0.20, 0.21)]
    scores = OnsetScores()
    scores.add(detected, reference, 0.15)
    scores.add(np.array([0.00, 0.05]), np.array([0.03, 0.08]), 0.04)  # a second clip: 30 ms each
    result = scores.as_dict()
    assert scores.abs_errors == pytest.approx([0.01, 0.01, 0.03, 0.03])
    assert result["onset_mae_ms"] == pytest.approx(20.0)
    assert result["onset_f1"] == 1.0


def test_peak_picking_threshold_and_gap():
    novelty = np.zeros(100)
    novelty[[10, 12, 50]] = [1.0, 0.8, 0.3]
    assert pick_peaks(novelty, 0.1, 100.0, min_gap_s=0.03).tolist() == [0.10, 0.50]
    assert pick_peaks(novelty, 0.5, 100.0).tolist() == [0.10]


def test_calibrated_detector_finds_synthetic_impacts(tiny_spec):
    features = LogMel(spec=tiny_spec)
    clips = [render_impact_clip(np.random.default_rng(s), tiny_spec) for s in range(24)]
    mels = [features(torch.from_numpy(np.stack([c.audio for c in clips[:12]])))]
    refs = [event_times(c.meta) for c in clips[:12]]
    detector = calibrate(mels, refs, tiny_spec.mel_rate, tolerance=0.04)
    scores = OnsetScores()
    held_out = features(torch.from_numpy(np.stack([c.audio for c in clips[12:]])))
    for detected, clip in zip(detector(held_out), clips[12:], strict=True):
        scores.add(detected, event_times(clip.meta), 0.04)
    assert scores.as_dict()["onset_f1"] > 0.85
    # silence has no onsets
    assert all(len(d) == 0 for d in detector(features(torch.zeros(2, tiny_spec.n_samples))))
