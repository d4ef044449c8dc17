import numpy as np
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
