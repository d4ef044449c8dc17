"""Phonemes placed in time, and that placement as one phoneme per audio token.

Where the times come from is a source behind one interface (a list of :class:`PhonemeSpan`):
- recorded: the phoneme events the benchmark stores for every utterance (``meta["phonemes"]``), training;
- subtitles: a cue's span, filled with the transcript's phonemes in proportion to their typical durations
  (:class:`DurationModel`);
- the video: a lip-driven aligner's speech segments, filled the same way (``v2a.sync``/training stage).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from v2a.shapes import frames_to_tokens
from v2a.text.phonemes import PAUSES, Phoneme, PhonemeVocabulary, clean_symbol

DEFAULT_DURATION = 0.08   # seconds: a phoneme never seen in training


@dataclass(frozen=True)
class PhonemeSpan:
    """A phoneme spoken over [start, end) seconds; ``word`` indexes the transcript's words (-1: a pause)."""

    start: float
    end: float
    symbol: str
    word: int = -1


def recorded_spans(meta: dict) -> list[PhonemeSpan]:
    """The phonemes a benchmark clip recorded while espeak-ng spoke, on the clip's (or its crop's) clock.

    The talking head stores ``phonemes`` ([[time, name], ...]) and ``speech_end`` among ``meta["sources"]``
    on the stored clip's clock; a loader crop's start (``meta["crop_start"]``) is subtracted. Word indices
    come from the clip's ``word`` events (already on the crop's clock).
    """
    offset = float(meta.get("crop_start", 0.0) or 0.0)
    spans: list[PhonemeSpan] = []
    word_starts = [float(e["time"]) for e in meta.get("events", []) if e.get("kind") == "word"]
    for source in [meta, *(s for s in meta.get("sources", []) if isinstance(s, dict))]:
        events = source.get("phonemes") or []
        if not events or not isinstance(events[0], list | tuple):
            continue
        starts = [float(t) - offset for t, _ in events]
        names = [clean_symbol(str(n)) for _, n in events]
        end = float(source.get("speech_end", events[-1][0] + DEFAULT_DURATION)) - offset
        ends = starts[1:] + [max(end, starts[-1])]
        words = word_index_of(starts, word_starts)
        spans += [PhonemeSpan(a, b, n, -1 if n in PAUSES else w)
                  for a, b, n, w in zip(starts, ends, names, words, strict=True)]
    return sorted(spans, key=lambda span: span.start)


def evened_within_words(spans: Sequence[PhonemeSpan]) -> list[PhonemeSpan]:
    """Each word's phonemes spread evenly over the word's recorded span (pauses kept): what a timing source that
    knows only where words start and end gives, so a model trained on it learns that a word's inner timing is a
    guess (and a model that reads the mouth, to take it from the mouth)."""
    out: list[PhonemeSpan] = []
    i = 0
    while i < len(spans):
        j = i + 1
        if spans[i].word >= 0:
            while j < len(spans) and spans[j].word == spans[i].word:
                j += 1
        start, end, count = spans[i].start, spans[j - 1].end, j - i
        out += [PhonemeSpan(start + (end - start) * k / count, start + (end - start) * (k + 1) / count, span.symbol,
                            span.word) for k, span in enumerate(spans[i:j])]
        i = j
    return out


def recorded_track(metas: Sequence[dict], vocabulary: PhonemeVocabulary, n_tokens: int,
                   token_rate: float, *, even_words: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The recorded phoneme track of a batch of clips: ids int64 [B, N] and positions float [B, N]; with
    ``even_words`` each word's phonemes evenly spread over it (:func:`evened_within_words`)."""
    return stack_tracks(recorded_clip_spans(metas, even_words=even_words), vocabulary, n_tokens, token_rate)


def recorded_clip_spans(metas: Sequence[dict], *, even_words: bool = False) -> list[list[PhonemeSpan]]:
    """Each clip's recorded spans (:func:`recorded_spans`), with ``even_words`` each word's phonemes evenly spread."""
    spans = [recorded_spans(meta) for meta in metas]
    return [evened_within_words(clip) for clip in spans] if even_words else spans


def stack_tracks(spans: Sequence[Sequence[PhonemeSpan]], vocabulary: PhonemeVocabulary, n_tokens: int,
                 token_rate: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Each clip's spans rasterized (:func:`rasterize`) and stacked: ids int64 [B, N], positions float [B, N]."""
    tracks = [rasterize(clip, vocabulary, n_tokens, token_rate) for clip in spans]
    return torch.stack([ids for ids, _ in tracks]), torch.stack([where for _, where in tracks])


def mouth_track(meta: dict) -> np.ndarray | None:
    """The per-video-frame mouth opening a clip records (``mouth_opening`` or ``mouth``), if any."""
    for key in ("mouth_opening", "mouth"):
        value = meta.get(key)
        if isinstance(value, list | tuple) and len(value) > 1:
            return np.asarray(value, dtype=np.float64)
    return None


def recorded_mouth(metas: Sequence[dict], n_tokens: int, tokens_per_frame: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The recorded mouth opening of a batch of clips at each audio token (each video frame's value held over its
    tokens, the last one past the end), float32 [B, N], and whether each clip records one, bool [B]."""
    values = torch.zeros(len(metas), n_tokens)
    known = torch.zeros(len(metas), dtype=torch.bool)
    for row, meta in enumerate(metas):
        mouth = mouth_track(meta)
        if mouth is None:
            continue
        values[row] = frames_to_tokens(torch.from_numpy(mouth.astype(np.float32))[None], tokens_per_frame, n_tokens)[0]
        known[row] = True
    return values, known


def word_index_of(starts: Sequence[float], word_starts: Sequence[float]) -> list[int]:
    """The index of the word each phoneme start falls in (word starts sorted); -1 before the first word."""
    return [int(np.searchsorted(np.asarray(sorted(word_starts)), s + 1e-6)) - 1 for s in starts]


def rasterize(spans: Iterable[PhonemeSpan], vocabulary: PhonemeVocabulary, n_tokens: int,
              token_rate: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per audio token (centre at (i + 0.5) / token_rate s): the id of the phoneme being spoken (0: none) and
    where in it the token is (0 at its start, 1 at its end). Returns int64 [n_tokens], float32 [n_tokens]."""
    ids = torch.zeros(n_tokens, dtype=torch.long)
    where = torch.zeros(n_tokens, dtype=torch.float32)
    centres = (np.arange(n_tokens) + 0.5) / token_rate
    for span in spans:
        if span.end <= span.start:
            continue
        inside = np.nonzero((centres >= span.start) & (centres < span.end))[0]
        if len(inside):
            ids[inside] = vocabulary.id(span.symbol)
            where[inside] = torch.from_numpy(((centres[inside] - span.start) / (span.end - span.start)).astype(np.float32))
    return ids, where


def shift(spans: Iterable[PhonemeSpan], seconds: float) -> list[PhonemeSpan]:
    """The spans on a clock that starts ``seconds`` later (a window's start)."""
    return [PhonemeSpan(s.start - seconds, s.end - seconds, s.symbol, s.word) for s in spans]


def duration_key(symbol: str, stressed: bool = False) -> str:
    """The duration model's key of a phoneme: its name, with a trailing ' when stressed."""
    return clean_symbol(symbol) + ("'" if stressed else "")


def stress_keys(spans: Sequence[PhonemeSpan], phonemes: Sequence[Phoneme]) -> list[str] | None:
    """The duration keys of recorded ``spans``, stressed where the transcript's ``phonemes`` (the same utterance
    through the phonemizer) say so; None when the two sequences do not match one to one (such an utterance would
    blur stressed and unstressed durations, so fitting leaves it out)."""
    spoken = [p for p in phonemes if p.symbol not in PAUSES]
    recorded = [i for i, s in enumerate(spans) if s.symbol not in PAUSES]
    if [spans[i].symbol for i in recorded] != [p.symbol for p in spoken]:
        return None
    keys = [duration_key(s.symbol) for s in spans]
    for i, phoneme in zip(recorded, spoken, strict=True):
        keys[i] = duration_key(phoneme.symbol, phoneme.stressed)
    return keys


def spoken_words(phonemes: Sequence[Phoneme]) -> list[list[Phoneme]]:
    """The phonemes grouped by word, pauses left out."""
    words: list[list[Phoneme]] = []
    for p in phonemes:
        if p.symbol in PAUSES:
            continue
        if not words or words[-1][-1].word != p.word:
            words.append([])
        words[-1].append(p)
    return words


def word_onsets(opening: np.ndarray, first: int, last: int, typical: Sequence[float], stiffness: float) -> list[int]:
    """The frames in [first, last) where each of ``len(typical)`` words starts (the first at ``first``).

    Dynamic programming over the onsets of the later words: an onset costs the mouth's opening at that frame
    relative to the clip's widest (words start where the mouth is closing or shut), and each word
    ``stiffness * log(frames / expected)^2``, where expected is its typical duration scaled so that the words
    fill the segment. Returns the onset frames, increasing, every word at least one frame long.
    """
    n_words, n_frames = len(typical), last - first
    expected = scaled_shares(typical, n_frames, "words", "frames")
    level = np.asarray(opening, dtype=np.float64)[first:last]
    level = level / max(float(np.max(opening)), 1e-9)

    def cost(word: int, starts: np.ndarray, end: int) -> np.ndarray:
        total = stiffness * np.log((end - starts) / expected[word]) ** 2
        return total + level[starts] if word > 0 else total

    return [first + edge for edge in best_split(n_words, n_frames, cost)[:-1]]


def scaled_shares(typical: Sequence[float], n_samples: int, parts: str, samples: str) -> np.ndarray:
    """The ``typical`` durations scaled to fill ``n_samples`` samples (each at least 1e-3); a clear error when
    fewer samples than parts (``parts`` / ``samples`` name them in the message)."""
    if len(typical) < 1 or n_samples < len(typical):
        raise ValueError(f"{len(typical)} {parts} do not fit in {n_samples} {samples}")
    expected = np.asarray(typical, dtype=np.float64)
    return np.maximum(expected * n_samples / expected.sum(), 1e-3)


def best_split(n_parts: int, n_samples: int, cost: Callable[[int, np.ndarray, int], np.ndarray]) -> list[int]:
    """The cheapest split of ``n_samples`` samples into ``n_parts`` consecutive parts, each at least one sample
    long, by dynamic programming; ``cost(part, starts, end)`` prices part ``part`` over [start, end) for every
    candidate start at once. Returns the n + 1 edges, 0 first and ``n_samples`` last."""
    total = np.full((n_parts + 1, n_samples + 1), np.inf)
    back = np.zeros((n_parts + 1, n_samples + 1), dtype=np.int64)
    total[0, 0] = 0.0
    for part in range(1, n_parts + 1):
        for end in range(part, n_samples - (n_parts - part) + 1):
            starts = np.arange(part - 1, end)
            candidates = total[part - 1, starts] + cost(part - 1, starts, end)
            best = int(np.argmin(candidates))
            total[part, end], back[part, end] = candidates[best], starts[best]
    edges, end = [n_samples], n_samples
    for part in range(n_parts, 0, -1):
        end = int(back[part, end])
        edges.append(end)
    return edges[::-1]


def phoneme_edges(opening: np.ndarray, typical: Sequence[float], openness: Sequence[float], *, stiffness: float,
                  weight: float, shortest: float = 0.5) -> list[int]:
    """Where each of ``len(typical)`` phonemes of one word starts and the last ends, as indices into ``opening``,
    the mouth's opening sampled finely over the word's span (0 shut .. 1 widest).

    Dynamic programming over the boundaries: a phoneme over samples [s, e) costs ``weight`` times the squared
    difference between the mouth's opening there and the phoneme's typical ``openness`` (per sample, so a vowel
    lands where the mouth is open and a closure where it shuts), plus ``stiffness * log(samples / expected)^2``,
    where expected is its typical duration scaled so the phonemes fill the word; no phoneme is shorter than
    ``shortest`` times that (nor than one sample): a phoneme squeezed to nothing is not said at all. Returns n + 1
    edges, increasing, the first 0 and the last ``len(opening)``.
    """
    level = np.asarray(opening, dtype=np.float64)
    n, m = len(typical), len(level)
    expected = scaled_shares(typical, m, "phonemes", "samples")
    first, second = np.concatenate([[0.0], np.cumsum(level)]), np.concatenate([[0.0], np.cumsum(level ** 2)])
    targets = np.asarray(openness, dtype=np.float64)

    def cost(k: int, starts: np.ndarray, end: int) -> np.ndarray:
        length, target = end - starts, targets[k]
        squared = (second[end] - second[starts]) - 2 * target * (first[end] - first[starts]) + target ** 2 * length
        total = weight * squared + stiffness * np.log(length / expected[k]) ** 2
        return np.where(length >= np.floor(shortest * expected[k]), total, np.inf)

    return best_split(n, m, cost)


class DurationModel:
    """Typical duration of each phoneme (seconds), fitted to recorded utterances; fills a span with phonemes.

    Keys are phoneme names, stressed ones with a trailing ' (:func:`duration_key`); a stressed phoneme never
    seen stressed falls back to its plain name, an unseen name to ``default``. ``openness`` (the mean mouth
    opening while each phoneme is spoken, same keys, 0 shut .. 1 widest) lets a word's phonemes be placed by the
    mouth (:func:`phoneme_edges`, ``mouth_weight`` against ``phoneme_stiffness``) instead of by typical shares.
    ``spreads`` (same keys): how much each phoneme's log duration and mouth opening vary, which the forced alignment
    uses to trust a steady phoneme more than a variable one; ``profiles``: the mean opening over each equal part of
    the phoneme (first, second, ...; None where never seen), how the mouth moves through it.
    """

    def __init__(self, durations: dict[str, float] | None = None, default: float = DEFAULT_DURATION, *,
                 openness: dict[str, float] | None = None, mouth_weight: float = 0.0,
                 phoneme_stiffness: float = 1.0, spreads: dict[str, Sequence[float]] | None = None,
                 profiles: dict[str, Sequence[float | None]] | None = None) -> None:
        self.durations = dict(durations or {})
        self.spreads = {key: (float(a), float(b)) for key, (a, b) in (spreads or {}).items()}
        self.profiles = {key: list(parts) for key, parts in (profiles or {}).items()}
        self.default = float(default)
        self.openness = dict(openness or {})
        # a phoneme never seen: the mean openness of those seen
        self.unseen_openness = float(np.mean(list(self.openness.values()))) if self.openness else 0.0
        self.mouth_weight = float(mouth_weight)
        self.phoneme_stiffness = float(phoneme_stiffness)

    @classmethod
    def fit(cls, utterances: Iterable[list[PhonemeSpan]]) -> DurationModel:
        """The median recorded duration of every phoneme name (pauses at utterance ends left out)."""
        seen: dict[str, list[float]] = defaultdict(list)
        for spans in utterances:
            for span in spans[:-1]:
                seen[span.symbol].append(span.end - span.start)
        durations = {symbol: float(np.median(values)) for symbol, values in seen.items()}
        overall = float(np.median([d for values in seen.values() for d in values])) if seen else DEFAULT_DURATION
        return cls(durations, default=overall)

    def duration(self, symbol: str, stressed: bool = False) -> float:
        key = duration_key(symbol, stressed)
        return self.durations.get(key, self.durations.get(duration_key(symbol), self.default))

    def mouth_openness(self, symbol: str, stressed: bool = False) -> float:
        """The typical mouth opening while ``symbol`` is spoken (the mean of all phonemes if never seen)."""
        key = duration_key(symbol, stressed)
        return self.openness.get(key, self.openness.get(duration_key(symbol), self.unseen_openness))

    def spread(self, symbol: str, stressed: bool = False) -> tuple[float, float] | None:
        """(spread of the log duration, spread of the mouth's opening) of ``symbol``; None if never measured."""
        key = duration_key(symbol, stressed)
        return self.spreads.get(key, self.spreads.get(duration_key(symbol)))

    def mouth_profile(self, symbol: str, stressed: bool = False) -> list[float] | None:
        """The mouth's typical opening over each part of ``symbol`` (a part never seen: the phoneme's mean opening);
        None when the model has no profiles, a profile of the mean of all phonemes for one never seen."""
        if not self.profiles:
            return None
        parts = self.profiles.get(duration_key(symbol, stressed), self.profiles.get(duration_key(symbol)))
        mean = self.mouth_openness(symbol, stressed)
        n_parts = len(next(iter(self.profiles.values())))
        return [mean if part is None else float(part) for part in (parts or [None] * n_parts)]

    def fill_by_mouth(self, phonemes: Sequence[Phoneme], start: float, end: float, opening: np.ndarray,
                      fps: float, per_frame: int = 4) -> list[PhonemeSpan]:
        """One word's ``phonemes`` over [start, end), their boundaries where the mouth's per-frame ``opening`` (frame
        ``i`` centred at ``(i + 0.5) / fps`` s) matches each phoneme's typical openness (:func:`phoneme_edges`, on
        ``per_frame`` samples a frame); typical shares (:meth:`fill`) when openness is unknown or the word too short."""
        step = 1.0 / (fps * per_frame)
        n_samples = int(round((end - start) / step))
        if not self.openness or self.mouth_weight <= 0 or len(phonemes) < 2 or n_samples < len(phonemes):
            return self.fill(phonemes, start, end)
        times = start + (np.arange(n_samples) + 0.5) * (end - start) / n_samples
        level = np.interp(times, (np.arange(len(opening)) + 0.5) / fps, np.clip(opening, 0.0, 1.0))
        edges = phoneme_edges(level, [self.duration(p.symbol, p.stressed) for p in phonemes],
                              [self.mouth_openness(p.symbol, p.stressed) for p in phonemes],
                              stiffness=self.phoneme_stiffness, weight=self.mouth_weight / per_frame)
        bounds = start + np.asarray(edges, dtype=np.float64) * (end - start) / n_samples
        return [PhonemeSpan(float(a), float(b), p.symbol, p.word)
                for p, a, b in zip(phonemes, bounds[:-1], bounds[1:], strict=True)]

    def fill(self, phonemes: Sequence[Phoneme], start: float, end: float) -> list[PhonemeSpan]:
        """``phonemes`` spread over [start, end), each in proportion to its typical duration."""
        if not phonemes or end <= start:
            return []
        weights = np.array([self.duration(p.symbol, p.stressed) for p in phonemes], dtype=np.float64)
        edges = start + (end - start) * np.concatenate([[0.0], np.cumsum(weights)]) / weights.sum()
        return [PhonemeSpan(float(a), float(b), p.symbol, p.word) for p, a, b in zip(phonemes, edges[:-1], edges[1:],
                                                                                   strict=True)]

    def fill_segments(self, phonemes: Sequence[Phoneme], segments: Sequence[tuple[float, float]], *,
                      opening: np.ndarray | None = None, fps: float | None = None,
                      stiffness: float = 3.0) -> list[PhonemeSpan]:
        """``phonemes`` spread over several speech segments: words are dealt to segments in order, each segment
        taking a share of the words in proportion to its length (a word is never split across segments).

        With the mouth's per-frame ``opening`` (frame ``i`` at ``i / fps`` s), each segment's word onsets are
        placed where the mouth closes between words (:func:`word_onsets`, ``stiffness`` holding the words near
        their typical durations); without it, words and phonemes take their typical share of the segment.
        """
        segments = [(a, b) for a, b in segments if b > a]
        if not segments or not phonemes:
            return []
        words = spoken_words(phonemes)
        lengths = np.array([b - a for a, b in segments])
        word_time = np.array([self.word_duration(w) for w in words])
        # cut the words' cumulative typical time where the segments' cumulative length is
        cuts = np.cumsum(lengths)[:-1] / lengths.sum() * word_time.sum()
        ends = np.cumsum(word_time)
        spans: list[PhonemeSpan] = []
        first = 0
        for index, (a, b) in enumerate(segments):
            last = len(words) if index == len(segments) - 1 else int(np.searchsorted(ends, cuts[index], side="right"))
            last = max(last, first + 1) if first < len(words) else first
            spans += self._fill_words(words[first:last], a, b, opening, fps, stiffness)
            first = last
        return spans

    def word_duration(self, word: Sequence[Phoneme]) -> float:
        return sum(self.duration(p.symbol, p.stressed) for p in word)

    def _fill_words(self, words: list[list[Phoneme]], start: float, end: float, opening: np.ndarray | None,
                    fps: float | None, stiffness: float) -> list[PhonemeSpan]:
        if opening is None or fps is None:
            return self.fill([p for w in words for p in w], start, end)
        if not words:
            return []
        if len(words) == 1:
            return self.fill_by_mouth(words[0], start, end, opening, fps)
        first, last = round(start * fps), min(round(end * fps), len(opening))
        if last - first < len(words):  # too few frames to give every word one
            return self.fill([p for w in words for p in w], start, end)
        onsets = word_onsets(opening, first, last, [self.word_duration(w) for w in words], stiffness)
        times = [start] + [frame / fps for frame in onsets[1:]] + [end]
        return [span for word, a, b in zip(words, times[:-1], times[1:], strict=True)
                for span in self.fill_by_mouth(word, a, b, opening, fps)]

    def state(self) -> dict:
        return {"durations": self.durations, "default": self.default, "openness": self.openness,
                "mouth_weight": self.mouth_weight, "phoneme_stiffness": self.phoneme_stiffness, "spreads": self.spreads,
                "profiles": self.profiles}

    @classmethod
    def from_state(cls, state: dict) -> DurationModel:
        """The model :meth:`state` described (an aligner export's ``durations``; older ones carry no openness,
        spreads or profiles)."""
        return cls(state["durations"], default=state["default"], openness=state.get("openness"),
                   mouth_weight=state.get("mouth_weight", 0.0), phoneme_stiffness=state.get("phoneme_stiffness", 1.0),
                   spreads=state.get("spreads"), profiles=state.get("profiles"))
