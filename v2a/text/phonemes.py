"""Transcripts as phonemes: espeak-ng's English phoneme names, with word boundaries and pauses.

The same names as the phoneme events the benchmark records while espeak-ng speaks (``meta["phonemes"]``),
so a model trained on recorded timings reads the phonemes a user's transcript is turned into. Numbers,
abbreviations and punctuation are expanded by espeak-ng itself ("42" -> forty-two, "Dr." -> doctor);
clause punctuation and blank lines become pauses; text beyond ``max_phonemes`` is cut with a warning.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import unicodedata
from dataclasses import dataclass

log = logging.getLogger(__name__)

PAD, UNK, PAUSE = "<pad>", "<unk>", "_"
# espeak-ng's English phoneme names (en-us voice), collected by phonemizing ~40,000 English words,
# numbers and abbreviations; stress marks are dropped (the recorded events carry none).
ENGLISH_PHONEMES = (
    "0", "3", "3:", "?", "@", "@-", "@2", "@L", "A:", "A@", "D", "E", "I", "I#", "I2", "N", "O", "O2", "O:",
    "O@", "OI", "S", "T", "U", "U@", "V", "Z", "_", "_!", "_:", "a", "a#", "a#:", "a:", "aI", "aI3", "aI@", "aU",
    "aa", "b", "d", "dZ", "e@", "eI", "f", "g", "h", "i", "i:", "i@", "i@3", "j", "k", "l", "l#", "m", "n", "n-",
    "o@", "oU", "p", "r", "r-", "s", "t", "t#", "t2", "tS", "u", "u:", "v", "w", "x", "z", ";",
)
# Index 0 is "no phoneme" (silence outside speech, padding); the vocabulary travels in the model's config.
DEFAULT_VOCABULARY = (PAD, UNK, *ENGLISH_PHONEMES)
PAUSES = frozenset({"_", "_:", "_!"})
STRESS_MARKS = ("'", ",")
LINK = ";"
LIBRARY_NAMES = ("libespeak-ng.so.1", "libespeak-ng.so", "libespeak-ng.dylib")
CHARS_UTF8 = 1
PHONEMES_IPA = 0x02  # espeak_TextToPhonemes: IPA instead of phoneme names
INSTALL_HINT = "install it with `apt-get install espeak-ng libespeak-ng1`"


class PhonemizerUnavailable(RuntimeError):
    """espeak-ng's library is missing."""


@dataclass(frozen=True)
class Phoneme:
    """One phoneme of a transcript: its espeak-ng name, the index of its word (-1: a pause) and whether
    espeak-ng marks it stressed (stressed vowels last longer: the duration model tells them apart)."""

    symbol: str
    word: int
    stressed: bool = False


def clean_symbol(name: str) -> str:
    """A phoneme name without espeak-ng's stress marks."""
    return name.replace("'", "").replace(",", "")


class Phonemizer:
    """English text -> phonemes through espeak-ng's ``espeak_TextToPhonemes`` (one library per process)."""

    _lock = threading.Lock()
    _library: ctypes.CDLL | None = None

    def __init__(self, *, voice: str = "en-us", max_phonemes: int = 1000) -> None:
        if max_phonemes < 1:
            raise ValueError(f"max_phonemes must be >= 1, got {max_phonemes}")
        self.voice = voice
        self.max_phonemes = max_phonemes

    @classmethod
    def _load(cls, voice: str) -> ctypes.CDLL:
        if cls._library is None:
            for name in (*LIBRARY_NAMES, ctypes.util.find_library("espeak-ng")):
                try:
                    lib = ctypes.CDLL(name) if name else None
                except OSError:
                    lib = None
                if lib is not None:
                    break
            else:
                raise PhonemizerUnavailable(f"espeak-ng's C library was not found: {INSTALL_HINT}")
            lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
            lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
            lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
            lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
            if lib.espeak_Initialize(2, 0, None, 0) <= 0:
                raise PhonemizerUnavailable("espeak_Initialize failed: is espeak-ng-data installed?")
            cls._library = lib
        if cls._library.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        return cls._library

    def _clauses(self, line: str, *, ipa: bool = False) -> list[str]:
        """espeak-ng's phoneme strings of one line, a clause each (words split by spaces, phonemes by '|'):
        its phoneme names, or with ``ipa`` the same phonemes in the International Phonetic Alphabet."""
        buffer = ctypes.c_char_p(line.encode("utf-8"))
        pointer = ctypes.pointer(buffer)
        clauses = []
        mode = (ord("|") << 8) | (PHONEMES_IPA if ipa else 0)
        with self._lock:
            lib = self._load(self.voice)
            while pointer.contents.value:
                result = lib.espeak_TextToPhonemes(pointer, CHARS_UTF8, mode)
                clauses.append(result.decode("utf-8", "replace") if result else "")
        return clauses

    def __call__(self, text: str | None) -> list[Phoneme]:
        """The phonemes of ``text``: clauses and lines separated by a pause; empty text gives none."""
        out: list[Phoneme] = []
        word = 0
        for line in _lines(text):
            for clause in self._clauses(line):
                names = [[(clean_symbol(p), p[:1] in STRESS_MARKS) for p in w.split("|") if clean_symbol(p)]
                         for w in clause.split()]
                names = [w for w in names if w]
                # espeak-ng writes a linking ";" at the end of a word; it is spoken as the next word begins
                # (its recorded event carries the next word's start), so it belongs to that word
                for current, following in zip(names, names[1:], strict=False):
                    while current and current[-1][0] == LINK:
                        following.insert(0, current.pop())
                names = [w for w in names if w]
                if not names:
                    continue
                if out and out[-1].symbol not in PAUSES:
                    out.append(Phoneme(PAUSE, -1))
                for phonemes in names:
                    out.extend(Phoneme(symbol, word, stressed) for symbol, stressed in phonemes)
                    word += 1
        if len(out) > self.max_phonemes:
            log.warning("transcript of %d phonemes cut to the first %d (max_phonemes)", len(out), self.max_phonemes)
            out = out[: self.max_phonemes]
        return out


def _lines(text: str | None) -> list[str]:
    """Non-blank lines, in NFC, without control characters (espeak-ng reads the rest as it is)."""
    if not text:
        return []
    text = unicodedata.normalize("NFC", text)
    lines = ("".join(c for c in line if unicodedata.category(c)[0] != "C" or c == "\t") for line in text.splitlines())
    return [line.strip() for line in lines if line.strip()]


class PhonemeVocabulary:
    """Phoneme names <-> ids; 0 is "no phoneme" and 1 an unknown name. Stored as a list in the model config."""

    def __init__(self, symbols: list[str] | tuple[str, ...] = DEFAULT_VOCABULARY) -> None:
        symbols = tuple(symbols)
        if symbols[:2] != (PAD, UNK) or len(set(symbols)) != len(symbols):
            raise ValueError(f"a phoneme vocabulary starts with {PAD!r}, {UNK!r} and has no duplicates")
        self.symbols = symbols
        self._ids = {s: i for i, s in enumerate(symbols)}

    def __len__(self) -> int:
        return len(self.symbols)

    def id(self, symbol: str) -> int:
        return self._ids.get(clean_symbol(symbol), 1)
