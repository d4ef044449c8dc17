"""Transcripts as phonemes, and phonemes placed in time (one per audio token)."""

import numpy as np
import pytest
import torch

from v2a.data.synthetic import espeak
from v2a.shapes import ClipSpec
from v2a.text.phoneme_timing import DurationModel, PhonemeSpan, rasterize, recorded_spans
from v2a.text.phonemes import DEFAULT_VOCABULARY, PAUSE, PhonemeVocabulary, Phonemizer

needs_espeak = pytest.mark.skipif(not espeak.available(), reason="espeak-ng is not installed (apt-get install espeak-ng)")


@needs_espeak
@pytest.mark.parametrize("text", [
    "The old man found 42 apples.", "Dr. Smith lives on 3rd St., doesn't he?", "café naïve — déjà vu",
    "line one\n\n\nline two", "tabs\tand\x00control\x07chars", "ALL CAPS AND 1,000,000 dollars!!!", "🙂 emoji only 🙂",
])
def test_awkward_text_becomes_known_phonemes(text):
    phonemes = Phonemizer()(text)
    assert phonemes and all(p.symbol for p in phonemes)
    vocabulary = PhonemeVocabulary()
    unknown = [p.symbol for p in phonemes if vocabulary.id(p.symbol) == 1]
    assert not unknown, unknown
    words = [p.word for p in phonemes if p.word >= 0]
    assert words == sorted(words)  # word indices run forward
    assert phonemes[0].symbol != PAUSE and phonemes[-1].symbol != PAUSE


@needs_espeak
def test_numbers_are_spoken_and_empty_text_is_silence():
    phonemizer = Phonemizer()
    assert len(phonemizer("42")) > 4  # forty-two, not two symbols
    assert phonemizer("") == [] and phonemizer(None) == [] and phonemizer(" \n\t ") == []
    assert sum(p.symbol == PAUSE for p in phonemizer("hello\n\ngood morning")) == 1  # a pause between lines


@needs_espeak
def test_very_long_text_is_cut_with_a_warning(caplog):
    phonemes = Phonemizer(max_phonemes=50)("the quick brown fox jumps over the lazy dog " * 40)
    assert len(phonemes) == 50 and "cut to the first 50" in caplog.text


@needs_espeak
def test_the_phonemizer_speaks_the_names_the_benchmark_records():
    text = "the teacher watched a yellow kite"
    recorded = [s for _, s in espeak.synthesize(text).phonemes if s not in ("_", "_:")]
    phonemized = [p.symbol for p in Phonemizer()(text)]
    assert phonemized == recorded


def test_rasterize_places_each_phoneme_on_the_tokens_it_covers():
    vocabulary = PhonemeVocabulary()
    spans = [PhonemeSpan(0.10, 0.20, "h", 0), PhonemeSpan(0.20, 0.40, "@", 0), PhonemeSpan(0.40, 0.44, "l", 0)]
    ids, where = rasterize(spans, vocabulary, n_tokens=50, token_rate=50)  # token i centred at (i + 0.5) / 50
    assert ids[:5].tolist() == [0] * 5 and ids[5:10].tolist() == [vocabulary.id("h")] * 5
    assert ids[10:20].tolist() == [vocabulary.id("@")] * 10 and ids[20:22].tolist() == [vocabulary.id("l")] * 2
    assert ids[22:].eq(0).all()
    assert torch.all(where[10:20][1:] > where[10:20][:-1]) and 0 < where[10] < 0.1 and 0.9 < where[19] < 1  # monotone


def test_recorded_phonemes_follow_the_crop():
    meta = {"crop_start": 1.0, "events": [{"time": 0.2, "kind": "word", "word": "hello"}],
            "sources": [{"kind": "talking_head", "speech_end": 1.7, "phonemes": [[1.2, "h"], [1.3, "@"], [1.5, "l"]]}]}
    spans = recorded_spans(meta)
    assert [(round(s.start, 3), round(s.end, 3), s.symbol, s.word) for s in spans] == \
        [(0.2, 0.3, "h", 0), (0.3, 0.5, "@", 0), (0.5, 0.7, "l", 0)]


def test_a_words_phonemes_can_be_evened_over_its_recorded_span():
    from v2a.text.phoneme_timing import evened_within_words, recorded_track

    meta = {"events": [{"time": 0.2, "kind": "word", "word": "hello"}, {"time": 0.7, "kind": "word", "word": "a"}],
            "sources": [{"kind": "talking_head", "speech_end": 1.0,
                         "phonemes": [[0.1, "_:"], [0.2, "h"], [0.3, "@"], [0.6, "l"], [0.7, "a"]]}]}
    spans = evened_within_words(recorded_spans(meta))
    # the pause and the one-phoneme word as recorded; "hello" [0.2, 0.7) cut in three equal parts
    assert [(round(s.start, 3), round(s.end, 3), s.symbol, s.word) for s in spans] == \
        [(0.1, 0.2, "_:", -1), (0.2, 0.367, "h", 0), (0.367, 0.533, "@", 0), (0.533, 0.7, "l", 0), (0.7, 1.0, "a", 1)]
    vocabulary = PhonemeVocabulary(DEFAULT_VOCABULARY)
    recorded, evened = (recorded_track([meta], vocabulary, 50, 50.0, even_words=even)[0][0] for even in (False, True))
    assert recorded[27].item() == vocabulary.id("@") and evened[27].item() == vocabulary.id("l")  # 0.55 s: moved
    assert torch.equal(recorded[:10], evened[:10]) and torch.equal(recorded[35:], evened[35:])


def test_a_cue_is_filled_in_proportion_to_typical_durations_and_segments_keep_words_whole():
    from v2a.text.phonemes import Phoneme

    model = DurationModel({"a": 0.2, "b": 0.1})
    spans = model.fill([Phoneme("a", 0), Phoneme("b", 0)], 1.0, 1.6)
    assert [(round(s.start, 3), round(s.end, 3)) for s in spans] == [(1.0, 1.4), (1.4, 1.6)]
    words = [Phoneme("a", 0), Phoneme("b", 0), Phoneme(PAUSE, -1), Phoneme("a", 1), Phoneme("a", 2)]
    spans = model.fill_segments(words, [(0.0, 0.3), (1.0, 1.4)])
    assert [s.word for s in spans if s.start < 0.3] == [0, 0] and [s.word for s in spans if s.start >= 1.0] == [1, 2]
    fitted = DurationModel.fit([[PhonemeSpan(0, 0.1, "a"), PhonemeSpan(0.1, 0.4, "a"), PhonemeSpan(0.4, 0.5, "b")]])
    assert fitted.duration("a") == pytest.approx(0.2) and fitted.duration("zz") == fitted.default


def test_word_onsets_go_where_the_mouth_closes_between_words():
    from v2a.text.phoneme_timing import word_onsets
    from v2a.text.phonemes import Phoneme

    # three words whose typical durations say 10 frames each; the mouth shuts at frames 12 and 27
    opening = np.full(40, 0.8)
    opening[[12, 27]] = 0.0
    onsets = word_onsets(opening, 5, 35, [1.0, 1.0, 1.0], stiffness=1.0)
    assert onsets == [5, 12, 27]
    assert word_onsets(opening, 5, 35, [1.0, 1.0, 1.0], stiffness=1e4) == [5, 15, 25]  # stiff: typical shares
    assert word_onsets(np.zeros(10), 0, 3, [1.0, 1.0, 1.0], stiffness=1.0) == [0, 1, 2]  # one frame a word
    with pytest.raises(ValueError, match="do not fit"):
        word_onsets(opening, 0, 2, [1.0, 1.0, 1.0], stiffness=1.0)
    # through the duration model: phonemes follow their word's onset, spans stay ordered and inside the segment
    model = DurationModel({"a": 0.1, "b": 0.1})
    words = [Phoneme("a", 0), Phoneme("b", 0), Phoneme("a", 1), Phoneme("b", 1), Phoneme("a", 2), Phoneme("b", 2)]
    spans = model.fill_segments(words, [(0.2, 1.4)], opening=opening, fps=25.0, stiffness=1.0)
    starts = {s.word: s.start for s in reversed(spans)}
    assert starts == pytest.approx({0: 0.2, 1: 12 / 25, 2: 27 / 25})
    assert all(a.end == pytest.approx(b.start) for a, b in zip(spans, spans[1:], strict=False))
    assert spans[-1].end == pytest.approx(1.4)
    shares = model.fill_segments(words, [(0.2, 1.4)])  # without the mouth: equal shares
    assert {s.word: s.start for s in reversed(shares)} == pytest.approx({0: 0.2, 1: 0.6, 2: 1.0})


def test_phonemes_inside_a_word_go_where_the_mouth_matches_them():
    from v2a.text.phoneme_timing import phoneme_edges
    from v2a.text.phonemes import Phoneme

    # consonant (shut) - vowel (open) - consonant over 12 samples; the mouth is open over samples 2..9 only
    opening = np.zeros(12)
    opening[2:10] = 1.0
    assert phoneme_edges(opening, [1.0, 1.0, 1.0], [0.0, 1.0, 0.0], stiffness=0.1, weight=1.0) == [0, 2, 10, 12]
    # a strong pull never squeezes a phoneme below half its typical share (2 of 4 samples here): it would go unsaid
    pulled = phoneme_edges(np.ones(12), [1.0, 1.0, 1.0], [0.0, 1.0, 0.0], stiffness=0.0, weight=100.0)
    assert pulled == [0, 2, 10, 12] and min(np.diff(pulled)) >= 2
    assert phoneme_edges(np.ones(12), [1.0, 1.0, 1.0], [0.0, 1.0, 0.0], stiffness=0.0, weight=100.0,
                         shortest=0.0) == [0, 1, 11, 12]
    # stiff: typical shares (4 samples each), whatever the mouth does
    assert phoneme_edges(opening, [1.0, 1.0, 1.0], [0.0, 1.0, 0.0], stiffness=1e4, weight=1.0) == [0, 4, 8, 12]
    assert phoneme_edges(np.zeros(3), [1.0, 1.0, 1.0], [0.0, 1.0, 0.0], stiffness=1.0, weight=1.0) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="do not fit"):
        phoneme_edges(np.zeros(2), [1.0, 1.0, 1.0], [0.0, 1.0, 0.0], stiffness=1.0, weight=1.0)
    # through the duration model, on per-frame openings (25 fps): the word's vowel sits where the mouth is open
    word = [Phoneme("k", 0), Phoneme("a", 0), Phoneme("t", 0)]
    frames = np.zeros(10)
    frames[3:8] = 1.0   # frames 3..7 open: 0.12 s .. 0.32 s
    model = DurationModel({"k": 0.1, "a": 0.1, "t": 0.1}, openness={"k": 0.0, "a": 1.0, "t": 0.0},
                          mouth_weight=1.0, phoneme_stiffness=0.1)
    spans = model.fill_by_mouth(word, 0.0, 0.4, frames, fps=25.0)
    assert [s.symbol for s in spans] == ["k", "a", "t"] and spans[0].start == 0.0 and spans[-1].end == pytest.approx(0.4)
    assert spans[1].start == pytest.approx(0.12, abs=0.011) and spans[1].end == pytest.approx(0.32, abs=0.011)
    shares = DurationModel({"k": 0.1, "a": 0.1, "t": 0.1}).fill_by_mouth(word, 0.0, 0.4, frames, fps=25.0)
    assert [round(s.start, 3) for s in shares] == [0.0, 0.133, 0.267]  # no openness known: typical shares
    restored = DurationModel.from_state(model.state())
    assert restored.openness == model.openness and (restored.mouth_weight, restored.phoneme_stiffness) == (1.0, 0.1)
    off = DurationModel.from_state({**model.state(), "mouth_weight": 0.0}).fill_by_mouth(word, 0.0, 0.4, frames, 25.0)
    assert [round(s.start, 3) for s in off] == [0.0, 0.133, 0.267]  # weight 0: typical shares
    assert DurationModel.from_state({"durations": {"a": 0.1}, "default": 0.08}).openness == {}  # an older export


def test_the_vocabulary_is_stored_in_the_model_config(tmp_path):
    from hydra.utils import instantiate

    from tests.conftest import compose_config

    cfg = compose_config(["experiment=v2a_dialogue_aligned_tiny", f"paths.root_dir={tmp_path}"])
    assert list(cfg.model.phoneme_vocabulary) == list(DEFAULT_VOCABULARY)
    assert cfg.model.phoneme_encoder.vocab_size == len(DEFAULT_VOCABULARY)
    module = instantiate(cfg.model)
    assert module.net.reads_phonemes and "transcript" not in module.net.text_streams
    spec = ClipSpec(**{k: cfg.spec[k] for k in ("duration", "fps", "sample_rate", "hop_length", "n_mels",
                                                 "mel_frames_per_token", "image_size", "n_fft")})
    assert module.features.spec.n_audio_tokens == spec.n_audio_tokens
