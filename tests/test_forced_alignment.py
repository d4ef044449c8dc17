"""The forced alignment of a transcript on what the video shows (speaking probability and mouth opening per frame)."""

import numpy as np
import pytest

from v2a.pipeline.aligner import placement_from_text
from v2a.text.forced_alignment import (
    SILENCE,
    AlignmentCosts,
    align_on_frames,
    chain,
    transcript_fit,
    viterbi_edges,
)
from v2a.text.phoneme_timing import DurationModel
from v2a.text.phonemes import Phoneme


def test_the_chain_has_an_optional_silence_around_every_word_and_drops_the_transcripts_pauses():
    phonemes = [Phoneme("k", 0), Phoneme("a", 0), Phoneme("_", -1), Phoneme("s", 1), Phoneme("i", 1), Phoneme("t", 2)]
    states = chain(phonemes)
    assert [None if s is SILENCE else s.symbol for s in states] == [None, "k", "a", None, "s", "i", None, "t", None]
    assert chain([Phoneme("_", -1)]) == [SILENCE, SILENCE]


def test_viterbi_finds_the_cheapest_segmentation_and_skips_a_silence_that_does_not_pay():
    # three phonemes over 12 samples, each cheap on its own third: the edges fall between the thirds
    emission = np.ones((3, 12))
    for state in range(3):
        emission[state, 4 * state:4 * state + 4] = 0.0
    required = np.zeros(3, dtype=bool)
    assert viterbi_edges(emission, np.full(3, 4.0), required, stiffness=0.1, shortest=0.5).tolist() == [0, 4, 8, 12]
    # the evidence moves the edges away from the expected lengths when stiffness is low, not when it is high
    emission = np.ones((3, 12))
    emission[0, :2], emission[1, 2:10], emission[2, 10:] = 0.0, 0.0, 0.0
    assert viterbi_edges(emission, np.full(3, 4.0), required, stiffness=0.01, shortest=0.0).tolist() == [0, 2, 10, 12]
    assert viterbi_edges(emission, np.full(3, 4.0), required, stiffness=100.0, shortest=0.0).tolist() == [0, 4, 8, 12]
    # ... and never squeezes a phoneme below `shortest` of its expected length (it would go unsaid)
    assert viterbi_edges(emission, np.full(3, 4.0), required, stiffness=0.01, shortest=0.75).tolist() == [0, 3, 9, 12]
    # a silence between two phonemes takes the samples where it is cheap, and none when it costs more than it saves
    emission = np.ones((3, 12))
    emission[0, :5], emission[1, 5:8], emission[2, 8:] = 0.0, 0.0, 0.0
    optional = np.array([False, True, False])
    assert viterbi_edges(emission, np.array([5.0, 0.0, 4.0]), optional, stiffness=0.1, shortest=0.5).tolist() \
        == [0, 5, 8, 12]
    emission[1] = 5.0
    edges = viterbi_edges(emission, np.array([5.0, 0.0, 4.0]), optional, stiffness=0.1, shortest=0.5).tolist()
    assert edges[1] == edges[2] and edges[0] == 0 and edges[-1] == 12
    with pytest.raises(ValueError, match="do not fit"):
        viterbi_edges(np.zeros((3, 2)), np.full(3, 4.0), required, stiffness=1.0, shortest=0.5)


def _clip(words, fps=25.0, seconds=3.0):
    """A talking head's per-frame speaking probability and opening for a known timeline of (symbol, word, start,
    end): the mouth as open as each phoneme's typical openness, shut in silence, averaged over each frame."""
    openness = {"k": 0.05, "a": 1.0, "s": 0.2, "i": 0.6, "t": 0.1, "o": 0.8, "m": 0.0}
    fine = (np.arange(int(seconds * fps) * 10) + 0.5) / (fps * 10)   # ten instants a frame
    speaking, opening = np.full(len(fine), 0.02), np.zeros(len(fine))
    for symbol, _, start, end in words:
        inside = (fine >= start) & (fine < end)
        speaking[inside], opening[inside] = 0.98, openness[symbol]
    per_frame = [signal.reshape(-1, 10).mean(axis=1) for signal in (speaking, opening)]
    return *per_frame, DurationModel({k: 0.1 for k in openness}, openness=openness)


def test_the_forced_alignment_recovers_the_timing_the_mouth_shows_where_segments_and_shares_miss_it():
    # three words at their own pace (phonemes 0.06-0.16 s where 0.1 s is typical), a 0.3 s pause after the first
    truth = [("k", 0, 0.50, 0.58), ("a", 0, 0.58, 0.74), ("t", 0, 0.74, 0.80),
             ("s", 1, 1.10, 1.24), ("i", 1, 1.24, 1.32), ("m", 1, 1.32, 1.44),
             ("t", 2, 1.44, 1.50), ("o", 2, 1.50, 1.66), ("k", 2, 1.66, 1.74)]
    speaking, opening, durations = _clip(truth)
    phonemes = [Phoneme(symbol, word) for symbol, word, _, _ in truth]
    spans = align_on_frames(phonemes, speaking, opening, 25.0, durations, AlignmentCosts(mouth=4.0, stiffness=0.5, cap=0.0))
    assert [(s.symbol, s.word) for s in spans] == [(symbol, word) for symbol, word, _, _ in truth]
    assert all(a.end <= b.start + 1e-9 and a.start < a.end for a, b in zip(spans, spans[1:], strict=False))
    errors = np.abs([s.start - start for s, (_, _, start, _) in zip(spans, truth, strict=True)]) * 25.0
    # frames: every phoneme starts where it was spoken, to a quarter of a frame but where the mouth cannot tell two
    # neighbours apart (m, shut, then t, nearly shut: their edge follows the typical durations)
    assert np.median(errors) <= 0.25 and errors.max() <= 1.0
    assert spans[2].end <= 0.82 and spans[3].start >= 1.08   # the pause stays silent
    # the placement by segments and typical shares on the same frames is well off
    shared = durations.fill_segments(phonemes, [(0.5, 0.8), (1.1, 1.74)])
    assert np.abs([s.start - start for s, (_, _, start, _) in zip(shared, truth, strict=True)]).max() * 25.0 > 1.0
    # nothing to say: nothing placed; a face that never speaks still gets the words, in order
    assert align_on_frames([Phoneme("_", -1)], speaking, opening, 25.0, durations) == []
    silent = align_on_frames(phonemes, np.zeros(75), np.zeros(75), 25.0, durations)
    assert [s.symbol for s in silent] == [s for s, _, _, _ in truth] and silent[-1].end <= 3.0 + 1e-9


def test_a_placement_is_named_on_a_command_line():
    assert placement_from_text("segments") is None
    assert placement_from_text("forced") == AlignmentCosts()
    assert placement_from_text("forced:mouth=16,per_frame=2") == AlignmentCosts(mouth=16.0, per_frame=2)
    for bad in ("viterbi", "forced:mouth", "forced:weight=3", "segments:mouth=1"):
        with pytest.raises(ValueError, match="placement"):
            placement_from_text(bad)
    with pytest.raises(ValueError, match="alignment costs"):
        AlignmentCosts(mouth=-1.0)


def test_a_phonemes_profile_places_it_where_the_mouth_moves_through_it():
    # the mouth opens at a vowel's start and closes during it; a consonant's last third already opens for the
    # next vowel (each part's opening is what the aligner fits from recorded clips)
    profiles = {"k": [0.0, 0.0, 0.5], "a": [1.0, 0.7, 0.2], "t": [0.0, 0.1, 0.4], "o": [0.9, 0.6, 0.1]}
    means = {key: float(np.mean(parts)) for key, parts in profiles.items()}
    truth = [("k", 0, 0.40, 0.52), ("a", 0, 0.52, 0.62), ("t", 0, 0.62, 0.78), ("o", 0, 0.78, 0.86),
             ("t", 1, 0.86, 0.94), ("a", 1, 0.94, 1.14), ("k", 1, 1.14, 1.22), ("o", 1, 1.22, 1.40)]
    fps, fine = 25.0, (np.arange(50 * 20) + 0.5) / (25.0 * 20)   # twenty instants a frame
    speaking, opening = np.full(len(fine), 0.02), np.zeros(len(fine))
    for symbol, _, start, end in truth:
        inside = (fine >= start) & (fine < end)
        part = np.minimum(((fine[inside] - start) / (end - start) * 3).astype(int), 2)
        speaking[inside], opening[inside] = 0.98, np.asarray(profiles[symbol])[part]
    speaking, opening = (signal.reshape(-1, 20).mean(axis=1) for signal in (speaking, opening))
    phonemes = [Phoneme(symbol, word) for symbol, word, _, _ in truth]
    costs = AlignmentCosts(mouth=16.0, stiffness=1.0)

    def error(model: DurationModel) -> float:
        spans = align_on_frames(phonemes, speaking, opening, fps, model, costs)
        assert [s.symbol for s in spans] == [s for s, _, _, _ in truth]
        return float(np.mean(np.abs([s.start - t[2] for s, t in zip(spans, truth, strict=True)])) * fps)

    with_profiles = DurationModel({k: 0.12 for k in profiles}, openness=means, profiles=profiles)
    assert with_profiles.mouth_profile("a") == [1.0, 0.7, 0.2] and with_profiles.mouth_profile("zz") is not None
    assert DurationModel({"a": 0.1}, openness=means).mouth_profile("a") is None   # no profiles: one state a phoneme
    assert error(with_profiles) <= 0.25 < error(DurationModel({k: 0.12 for k in profiles}, openness=means))
    restored = DurationModel.from_state(with_profiles.state())
    assert restored.profiles == with_profiles.profiles


def test_a_long_clip_is_searched_in_a_band_that_finds_the_same_timeline():
    # twelve sentences, each the three words of _clip with its pause, one after another over 24 s
    sentence = [("k", 0, 0.50, 0.58), ("a", 0, 0.58, 0.74), ("t", 0, 0.74, 0.80),
                ("s", 1, 1.10, 1.24), ("i", 1, 1.24, 1.32), ("m", 1, 1.32, 1.44)]
    truth = [(symbol, word + 2 * k, start + 2.0 * k, end + 2.0 * k)
             for k in range(12) for symbol, word, start, end in sentence]
    speaking, opening, durations = _clip(truth, seconds=24.0)
    phonemes = [Phoneme(symbol, word) for symbol, word, _, _ in truth]
    # (doubt=0: the frames average the steps between phonemes, which one opening a phoneme misses by 0.044)
    banded = align_on_frames(phonemes, speaking, opening, 25.0, durations, AlignmentCosts(band=2.0, doubt=0.0))
    whole = align_on_frames(phonemes, speaking, opening, 25.0, durations, AlignmentCosts(band=100.0, doubt=0.0))
    assert banded == whole   # the band (2 s either side) holds the optimum of the whole search
    errors = np.abs([s.start - t[2] for s, t in zip(banded, truth, strict=True)]) * 25.0
    assert np.median(errors) <= 0.25 and errors.max() <= 1.0
    # the costs as a function of a span of samples give what the table gives
    table = np.random.default_rng(0).random((3, 2, 30))
    expected, required = np.full(3, 10.0), np.zeros(3, dtype=bool)
    assert viterbi_edges(table, expected, required, stiffness=1.0, shortest=0.5).tolist() == viterbi_edges(
        lambda state, lo, hi: table[state, :, lo:hi], expected, required, stiffness=1.0, shortest=0.5, n=30).tolist()
    with pytest.raises(ValueError, match="needs the number of samples"):
        viterbi_edges(lambda state, lo, hi: table[state, :, lo:hi], expected, required, stiffness=1.0, shortest=0.5)


def test_a_cap_on_the_mouth_keeps_words_the_mouth_contradicts_at_their_length():
    # the face speaks throughout but the mouth stays shut: it contradicts the open vowel of every word
    durations = DurationModel({"k": 0.1, "a": 0.1, "t": 0.1}, openness={"k": 0.0, "a": 1.0, "t": 0.0})
    phonemes = [Phoneme(symbol, word) for word in range(4) for symbol in ("k", "a", "t")]
    speaking, opening = np.full(50, 0.98), np.zeros(50)
    speaking[[0, 1, 2, 47, 48, 49]] = 0.02   # speech over frames 3..46, about its typical length
    opening[0] = 1.0                          # the widest the mouth opens in the clip: before the speech

    def vowel_lengths(cap: float) -> np.ndarray:
        costs = AlignmentCosts(mouth=16.0, cap=cap, doubt=0.0)   # the cap alone (doubt: the next test)
        spans = align_on_frames(phonemes, speaking, opening, 25.0, durations, costs)
        return np.array([s.end - s.start for s in spans if s.symbol == "a"])

    # twelve phonemes fill the 44 speaking frames: 0.147 s each is their length at this rate
    bent, kept = vowel_lengths(0.0), vowel_lengths(0.01)
    assert bent.max() < 0.08 and kept.min() > 0.13   # squeezed to half their length vs kept at it


def test_a_transcript_the_mouth_does_not_say_is_placed_again_with_a_lower_cap():
    durations = DurationModel({"k": 0.1, "a": 0.1, "t": 0.1}, openness={"k": 0.0, "a": 1.0, "t": 0.0})
    phonemes = [Phoneme(symbol, word) for word in range(4) for symbol in ("k", "a", "t")]
    speaking = np.full(50, 0.98)
    speaking[[0, 1, 2, 47, 48, 49]] = 0.02
    shut = np.zeros(50)
    shut[0] = 1.0                                      # the mouth stays shut over every open vowel
    said = np.zeros(50)
    said[[7, 8, 18, 19, 29, 30, 40, 41]] = 1.0         # ... or opens once a word, as the transcript says

    def vowel_lengths(opening: np.ndarray, **options: float) -> np.ndarray:
        costs = AlignmentCosts(**{"mouth": 16.0, "cap": 0.0, "doubt": 0.0, **options})
        return np.array([s.end - s.start for s in align_on_frames(phonemes, speaking, opening, 25.0, durations, costs)
                         if s.symbol == "a"])

    # the shut mouth misses the vowels, the opening one says them: their fits lie either side of the threshold
    fit = {name: transcript_fit(phonemes, speaking, opening, 25.0, durations, AlignmentCosts(mouth=16.0, cap=0.0))
           for name, opening in (("shut", shut), ("said", said))}
    assert fit["said"] < 0.1 < fit["shut"]
    assert transcript_fit([Phoneme("_", -1)], speaking, said, 25.0, durations) is None
    # the shut mouth is doubted: the words keep their lengths (as with the low cap from the start)
    assert vowel_lengths(shut).max() < 0.08
    assert np.allclose(vowel_lengths(shut, doubt=0.1, doubt_cap=0.01), vowel_lengths(shut, cap=0.01))
    assert vowel_lengths(shut, doubt=0.1, doubt_cap=0.01).min() > 0.13
    # the mouth that says the transcript fits it: not doubted, placed as without the test
    assert np.allclose(vowel_lengths(said, doubt=0.1, doubt_cap=0.01), vowel_lengths(said))
    assert not np.allclose(vowel_lengths(said, doubt=0.1, doubt_cap=0.01), vowel_lengths(said, cap=0.01))
    with pytest.raises(ValueError, match="must be >= 0"):
        AlignmentCosts(doubt=-1.0)
