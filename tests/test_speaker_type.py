"""Speaker type: Resemblyzer's encoder (its wheel's weights) tells a man's voice from a woman's; the dialogue
evaluation reports it beside its ground-truth ceiling and mismatched floor."""

import importlib.util

import numpy as np
import pytest

from v2a.data.synthetic import espeak
from v2a.evaluation.dialogue import summarize
from v2a.evaluation.speaker import ask_for_other_type, speaker_of


def row(speaker, heard, heard_gt, other, **extra):
    return {"transcript": "a b", "heard": "a b", "given_swapped": "c d", "heard_swapped": "c d", "heard_gt": "a b",
            "lip": 0.5, "lip_gt": 0.6, "word_onset_err_frames": [1.0], "speaker": speaker, "speaker_heard": heard,
            "speaker_heard_gt": heard_gt, "speaker_heard_other": other, **extra}


def test_speaker_type_metrics_beside_ceiling_and_floor():
    rows = [row("man", "man", "man", "woman"), row("woman", "man", "woman", "woman"),
            row("man", "man", "man", "man"), row("woman", "woman", "woman", "man")]
    metrics = summarize(rows)
    assert metrics["speech/speaker_type_acc"] == 0.75
    assert metrics["ref/gt_speaker_type_acc"] == 1.0
    assert metrics["ref/mismatched_speaker_type_acc"] == 0.5
    assert metrics["eval/speaker_type_clips"] == 4.0
    assert "speech/speaker_type_acc_asked_other" not in metrics  # no prompt was swapped
    asked = [dict(r, speaker_asked="woman" if r["speaker"] == "man" else "man", speaker_heard_asked=h)
             for r, h in zip(rows, ["woman", "woman", "man", "man"], strict=True)]
    assert summarize(asked)["speech/speaker_type_acc_asked_other"] == 0.5  # rows 0 and 3 heard what was asked
    # without a classifier the other metrics are as before, and no speaker keys appear
    plain = summarize([{k: v for k, v in r.items() if not k.startswith("speaker")} for r in rows])
    assert not any("speaker" in k for k in plain) and plain["speech/wer"] == metrics["speech/wer"]


def test_a_prompt_is_made_to_ask_for_the_other_speaker_type():
    assert ask_for_other_type("rain falling, a man speaking") == ("rain falling, a woman speaking", "woman")
    assert ask_for_other_type("A woman speaking; the woman laughs") == ("A man speaking; the man laughs", "man")
    assert ask_for_other_type("a fan, a lamp humming") is None          # no type named
    assert ask_for_other_type("a man and a woman speaking") is None     # both: nothing to swap
    assert ask_for_other_type("the mango falls") is None                # a word, not the type


def test_the_speaker_type_is_read_from_the_talking_head():
    assert speaker_of({"sources": [{"kind": "rain"}, {"kind": "talking_head", "speaker": "woman"}]}) == "woman"
    assert speaker_of({"sources": [{"kind": "rain"}]}) is None


needs_weights = pytest.mark.skipif(importlib.util.find_spec("resemblyzer") is None,
                                   reason="resemblyzer is not installed (pip install -e '.[eval]')")
needs_espeak = pytest.mark.skipif(not espeak.available(), reason="espeak-ng's library is not installed")
TEXTS = ("the cat likes the green door today", "my friend found a blue box", "the teacher opened the window",
         "good morning", "our neighbor carried some apples", "the little girl watched a yellow kite")


@needs_weights
@needs_espeak
def test_the_classifier_separates_men_from_women_on_unseen_voices_and_sentences():
    import torch

    from v2a.evaluation.speaker import SpeakerEncoder, SpeakerTypes

    torch.set_num_threads(1)
    encoder = SpeakerEncoder()
    a = espeak.synthesize(TEXTS[0], voice="en-us")
    e1, e2 = encoder.embed(a.audio, a.sample_rate), encoder.embed(a.audio, a.sample_rate)
    assert e1.shape == (256,) and np.allclose(e1, e2) and abs(np.linalg.norm(e1) - 1) < 1e-5
    references = [(voice, kind, text) for voice, kind in (("en-us", "man"), ("en+m3", "man"), ("en+f3", "woman"),
                                                          ("en+f4", "woman")) for text in TEXTS[:3]]
    audio = [espeak.synthesize(t, voice=v).audio for v, _, t in references]
    types = SpeakerTypes(encoder).fit(audio, [k for _, k, _ in references], 22050)
    assert types.labels == ["man", "woman"]
    for voice, kind in (("en-gb-x-rp", "man"), ("en+m7", "man"), ("en+f1", "woman")):
        for text in TEXTS[3:]:
            speech = espeak.synthesize(text, voice=voice)
            assert types(speech.audio, speech.sample_rate) == kind, (voice, text)
