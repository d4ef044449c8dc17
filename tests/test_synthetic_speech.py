"""Talking heads: espeak-ng speech with word timings; the drawn mouth is open exactly where speech sounds."""

import numpy as np
import pytest

from v2a.data.synthetic import espeak
from v2a.data.synthetic.base import frame_rms
from v2a.data.synthetic.scene import Kind, Scene, render_scene
from v2a.data.synthetic.talking_head import MOUTH, TalkingHead
from v2a.shapes import ClipSpec

SPEC = ClipSpec()  # 2 s, 25 fps, 16 kHz, 32 px

needs_espeak = pytest.mark.skipif(not espeak.available(),
                                  reason="espeak-ng's library is not installed (apt-get install espeak-ng libespeak-ng1)")


def _talk(seed: int, spec: ClipSpec = SPEC, **kwargs):
    return render_scene(np.random.default_rng(seed), spec, Scene(kinds={"talking_head": Kind(1.0, TalkingHead(**kwargs))}))


@needs_espeak
def test_espeak_words_are_timed_and_speech_is_deterministic():
    a = espeak.synthesize("the red ball falls", voice="en-us", rate=170)
    b = espeak.synthesize("the red ball falls", voice="en-us", rate=170)
    assert np.array_equal(a.audio, b.audio) and a.words == b.words  # one fresh process per utterance
    assert [w for _, _, w in a.words] == ["the", "red", "ball", "falls"]
    starts = [s for s, _, _ in a.words]
    assert starts == sorted(starts) and a.words[-1][1] == pytest.approx(len(a.audio) / a.sample_rate)
    assert len(a.phonemes) >= 8 and all(0 <= t <= len(a.audio) / a.sample_rate for t, _ in a.phonemes)
    slow = espeak.synthesize("the red ball falls", voice="en-us", rate=110)
    assert len(slow.audio) > 1.3 * len(a.audio)  # the rate is honoured
    with pytest.raises(espeak.SpeechUnavailable, match="no voice named"):
        espeak.synthesize("hello", voice="no-such-voice")


def test_missing_library_gives_a_clear_error(monkeypatch, tmp_path):
    child = tmp_path / "child.py"
    child.write_text("import sys\nsys.stderr.write('libespeak-ng.so.1 was not found')\nsys.exit(3)\n")
    monkeypatch.setattr(espeak, "CHILD", child)
    with pytest.raises(espeak.SpeechUnavailable, match="apt-get install espeak-ng"):
        espeak.synthesize("hello")


@needs_espeak
def test_mouth_is_open_where_speech_sounds_and_shut_elsewhere():
    sr, frames_checked = SPEC.sample_rate, 0
    for seed in range(3):
        clip = _talk(seed)
        info = next(s for s in clip.meta["sources"] if s["kind"] == "talking_head")
        words = [e for e in clip.meta["events"] if e["kind"] == "word"]
        assert clip.meta["transcript"] and [w["word"] for w in words] == clip.meta["transcript"].split()
        assert clip.meta["caption"] == f"a {info['speaker']} speaking"
        # what is seen: dark mouth pixels per frame
        opening = (np.abs(clip.frames.astype(int) - np.array(MOUTH, dtype=int)).sum(-1) == 0).sum(axis=(1, 2))
        assert [bool(v) for v in opening] == [v > 0 for v in info["mouth"]] and clip.meta["mouth"] == info["mouth"]
        # what is heard: the clip's energy in each frame's interval, over the noise floor
        loud = frame_rms(clip.audio.astype(np.float64), sr, SPEC.fps, SPEC.n_video_frames)
        open_, shut = opening > 0, opening == 0
        assert open_.sum() >= 5 and shut.sum() >= 5
        assert loud[open_].min() > 0.1 * loud.max() and loud[shut].max() < 0.2 * loud.max()
        assert np.median(loud[open_]) > 5 * np.median(loud[shut])
        # frames outside the utterance keep the mouth shut, and wider openings go with louder frames
        times = np.arange(SPEC.n_video_frames) / SPEC.fps
        outside = (times + 1 / SPEC.fps <= info["speech_start"]) | (times >= info["speech_end"])
        assert not open_[outside].any()
        assert np.corrcoef(opening[open_], loud[open_])[0, 1] > 0.5
        # every word lies inside the utterance, in order, and is audible
        for word in words:
            assert info["speech_start"] - 1e-4 <= word["time"] < word["end"] <= info["speech_end"] + 1e-4
            segment = clip.audio[int(word["time"] * sr):int(word["end"] * sr)]
            assert np.sqrt(np.mean(segment**2)) > 5 * 0.003
        frames_checked += len(opening)
    assert frames_checked == 3 * SPEC.n_video_frames


@needs_espeak
def test_talking_heads_vary_voice_and_fit_short_clips():
    short = ClipSpec(duration=1.2)
    clips = [_talk(seed, short) for seed in range(3)]
    for clip in clips:
        info = clip.meta["sources"][0]
        assert info["speech_end"] <= short.duration and clip.meta["transcript"]
    assert len({c.meta["sources"][0]["voice"] for c in clips} | {c.meta["transcript"] for c in clips}) >= 3
    again = _talk(1, short)
    assert np.array_equal(again.audio, clips[1].audio) and again.meta == clips[1].meta

