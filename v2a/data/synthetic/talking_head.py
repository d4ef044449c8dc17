"""A drawn face speaking a transcript synthesized by espeak-ng; its mouth opens with the speech.

The mouth opening in frame ``f`` is the speech's RMS over that frame's interval [f / fps, (f + 1) / fps),
relative to the utterance's loudest frame, and the mouth is drawn shut (a thin lip line, no dark
opening) below ``closed_below``. Word start/end times from espeak-ng's callback are recorded as ``word``
events; the transcript is stored with the clip. Voices, rates and pitches vary per clip.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from v2a.data.synthetic import piper
from v2a.data.synthetic.base import AudioTrack, Canvas, SourceResult, frame_rms
from v2a.data.synthetic.draw import disc, ellipse, rectangle
from v2a.data.synthetic.espeak import Speech, synthesize
from v2a.media import resample

SKINS = ((224, 172, 140), (198, 134, 100), (141, 85, 60), (240, 200, 170))
EYE = (25.0, 25.0, 35.0)
MOUTH = (45.0, 5.0, 15.0)
LIPS = (170.0, 60.0, 70.0)

SUBJECTS = ("the cat", "my friend", "the old man", "a small dog", "the teacher", "our neighbor", "the little girl")
VERBS = ("likes", "found", "watched", "painted", "carried", "dropped", "opened", "wanted")
OBJECTS = ("the green door", "a blue box", "the window", "some apples", "the little boat", "a yellow kite")
EXTRAS = ("today", "again", "at noon", "in the garden", "very slowly", "last night", "after lunch")
SHORT = ("hello there", "look at this", "come here now", "thank you", "good morning", "not yet", "yes please")

# espeak-ng voices (and variants) that Whisper tiny.en understands best: Scottish, Caribbean and the
# en+f2 / en+f5 variants were dropped after WERs of 0.53-0.71 on solo speech (vs 0.20-0.47 for these)
DEFAULT_VOICES = {"en-us": "man", "en+m3": "man", "en-us-nyc": "man", "en-gb-x-rp": "man", "en+m7": "man",
                  "en+f3": "woman", "en+f4": "woman", "en+f1": "woman"}


def candidate_sentences(rng: np.random.Generator) -> list[str]:
    """A random sentence, then ever shorter fallbacks (so one of them fits any clip length)."""
    subject, verb, obj = (str(rng.choice(words)) for words in (SUBJECTS, VERBS, OBJECTS))
    extra, short = str(rng.choice(EXTRAS)), str(rng.choice(SHORT))
    return [f"{subject} {verb} {obj} {extra}", f"{subject} {verb} {obj}", short, short.split()[0]]


def say(text: str, *, voice: str, rate: int, pitch: int) -> Speech:
    """``text`` spoken by an espeak-ng voice, or by Piper for a voice named ``piper-NAME`` (pitch unused)."""
    if piper.is_piper(voice):
        return piper.synthesize(text, voice=voice[len(piper.PREFIX):], rate=rate)
    return synthesize(text, voice=voice, rate=rate, pitch=pitch)


@dataclass(frozen=True)
class TalkingHead:
    """``voices`` maps espeak-ng voice names (or ``piper-joe``) to the speaker they sound like ("man" / "woman");
    each clip draws a voice, a rate (words per minute) and a pitch, and a sentence that fits the clip."""

    voices: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_VOICES))
    min_rate: int = 140
    max_rate: int = 200
    min_pitch: int = 30  # espeak-ng's pitch parameter, 0..100
    max_pitch: int = 70
    level: float = 0.3
    closed_below: float = 0.15
    kind: str = "talking_head"
    tiled: bool = True

    def _speak(self, rng: np.random.Generator, duration: float) -> tuple[str, str, int, int, Speech]:
        voice = str(rng.choice(sorted(self.voices)))
        rate = int(rng.integers(self.min_rate, self.max_rate + 1))
        pitch = int(rng.integers(self.min_pitch, self.max_pitch + 1))
        room = duration - 0.15
        for text in candidate_sentences(rng):
            # a cheap length estimate first: each synthesis is a process start
            if len(text.split()) * 60.0 / rate * 1.1 + 0.2 > room and len(text.split()) > 1:
                continue
            speech = say(text, voice=voice, rate=rate, pitch=pitch)
            if len(speech.audio) / speech.sample_rate <= room:
                return text, voice, rate, pitch, speech
        raise ValueError(f"clip of {duration:.2f} s is too short for even one word of speech ({text!r})")

    def render(self, canvas: Canvas, audio: AudioTrack, rng: np.random.Generator) -> SourceResult:
        sr = audio.sample_rate
        text, voice, rate, pitch, speech = self._speak(rng, audio.duration)
        wave = resample(speech.audio, speech.sample_rate, sr).astype(np.float64)
        wave *= self.level / (np.abs(wave).max() + 1e-9)
        offset = float(rng.uniform(0.05, max(0.05, audio.duration - 0.1 - len(wave) / sr)))
        start = int(round(offset * sr))
        solo = np.zeros(len(audio.samples))
        solo[start:start + len(wave)] = wave[: len(solo) - start]
        audio.add(solo)

        rms = frame_rms(solo, sr, canvas.fps, canvas.n_frames)
        opening = rms / (rms.max() + 1e-12)
        opening[opening < self.closed_below] = 0.0
        skin = SKINS[int(rng.integers(len(SKINS)))]
        self._draw(canvas, opening, skin)

        voiced = np.nonzero(np.abs(wave) > 0.02 * self.level)[0]
        speech_end = offset + (voiced[-1] + 1) / sr if len(voiced) else offset
        events = [{"time": round(offset + s, 4), "end": round(min(offset + e, speech_end), 4), "kind": "word",
                   "source": "face", "word": word} for s, e, word in speech.words]
        gender = self.voices[voice]
        info = {
            "voice": voice, "speaker": gender, "rate_wpm": rate, "pitch": pitch,
            "speech_start": round(offset, 4), "speech_end": round(speech_end, 4),
            "mouth": [round(float(v), 3) for v in opening],
            "phonemes": [[round(offset + t, 4), symbol] for t, symbol in speech.phonemes],
        }
        if piper.is_piper(voice):
            info.update(engine="piper", pitch=None)
        return SourceResult(name="face", caption=f"a {gender} speaking", transcript=text, events=events, info=info,
                            tags=frozenset({"speech", "voice", "person", gender}), clip_keys={"mouth": info["mouth"]})

    @staticmethod
    def _draw(canvas: Canvas, opening: np.ndarray, skin: tuple[int, int, int]) -> None:
        h, w = canvas.height, canvas.width
        s = min(h, w)
        face = ellipse(h, w, (0.5 * h, 0.5 * w), (0.44 * s, 0.34 * s))
        eyes = disc(h, w, (0.38 * h, 0.5 * w - 0.13 * s), max(1.0, 0.05 * s)) | \
            disc(h, w, (0.38 * h, 0.5 * w + 0.13 * s), max(1.0, 0.05 * s))
        mouth_row, half_width = 0.7 * h, 0.14 * s
        lips = rectangle(h, w, mouth_row - 0.5, 0.5 * w - half_width, mouth_row + 0.5, 0.5 * w + half_width)
        for f, amount in enumerate(opening):
            frame = canvas.frames[f]
            frame[face] = skin
            frame[eyes] = EYE
            frame[lips] = LIPS
            if amount > 0:
                frame[ellipse(h, w, (mouth_row, 0.5 * w), (max(0.75, amount * 0.1 * s), half_width))] = MOUTH
