"""Speech with word and phoneme timings from espeak-ng's C library (ctypes), one fresh process per utterance.

The library (Debian/Ubuntu ``libespeak-ng1``, pulled in by ``apt-get install espeak-ng``) runs with
``AUDIO_OUTPUT_SYNCHRONOUS`` and a synthesis callback whose ``espeakEVENT_WORD`` / ``espeakEVENT_PHONEME``
events carry the sample where each word or phoneme starts. espeak-ng keeps state between utterances
(the same text twice in one process differs by a few hundred samples), so :mod:`espeak_child` speaks each
utterance in a new ``python -I -S`` process: the audio is then a pure function of the request. Without the
library, :func:`synthesize` raises :class:`SpeechUnavailable` saying what to install.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

CHILD = Path(__file__).with_name("espeak_child.py")
EVENT_WORD, EVENT_PHONEME = 1, 7
INSTALL_HINT = "install it with `apt-get install espeak-ng libespeak-ng1` (talking-head scenes need it)"


class SpeechUnavailable(RuntimeError):
    """espeak-ng's library is missing or refused a request."""


@dataclass(frozen=True)
class Speech:
    """Mono float32 speech and its timings: words as (start s, end s, text), phonemes as (start s, symbol)."""

    audio: np.ndarray
    sample_rate: int
    words: list[tuple[float, float, str]]
    phonemes: list[tuple[float, str]]


def synthesize(text: str, *, voice: str = "en-us", rate: int = 170, pitch: int = 50, timeout: float = 30.0) -> Speech:
    """Speak ``text`` with an espeak-ng ``voice`` at ``rate`` words per minute and ``pitch`` (0..100)."""
    request = json.dumps({"text": text, "voice": voice, "rate": int(rate), "pitch": int(pitch)})
    done = subprocess.run([sys.executable, "-I", "-S", str(CHILD)], input=request.encode(), capture_output=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip() or f"exit code {done.returncode}"
        hint = f": {INSTALL_HINT}" if done.returncode == 3 else ""
        raise SpeechUnavailable(f"espeak-ng could not speak {text!r} with voice {voice!r}: {reason}{hint}")
    header, _, pcm = done.stdout.partition(b"\n")
    meta = json.loads(header)
    sr = int(meta["sample_rate"])
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    data = text.encode("utf-8")
    # text_position is 1-based, in bytes of the UTF-8 text
    starts = [(sample / sr, data[pos - 1:pos - 1 + length].decode("utf-8", "replace"))
              for kind, pos, length, sample, _ in meta["events"] if kind == EVENT_WORD]
    ends = [start for start, _ in starts[1:]] + [len(audio) / sr]
    words = [(start, end, word) for (start, word), end in zip(starts, ends, strict=True)]
    phonemes = [(sample / sr, symbol) for kind, _, _, sample, symbol in meta["events"] if kind == EVENT_PHONEME and symbol]
    return Speech(audio=audio, sample_rate=sr, words=words, phonemes=phonemes)


@lru_cache(maxsize=1)
def available() -> bool:
    """Whether espeak-ng's library works here (checked once per process)."""
    try:
        synthesize("a")
        return True
    except (SpeechUnavailable, OSError, subprocess.TimeoutExpired):
        return False
