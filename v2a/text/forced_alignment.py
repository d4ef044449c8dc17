"""Forced alignment of a transcript on what the video shows: the whole clip's phonemes placed at once by Viterbi
search over a semi-Markov chain (each phoneme a state with an explicit duration, silences optional between words).

The observations are two per-frame signals a lip aligner reads from the frames: the probability that the face
speaks and how far the mouth is open. A phoneme costs, per frame, the squared difference between the mouth's
opening and the phoneme's typical opening there (a vowel where the mouth is open, a closure where it shuts; with a
profile, the typical opening of each third of the phoneme) and the improbability that the face speaks; a silence
costs the mouth's opening and the probability that it speaks. Each phoneme's length costs
``stiffness * log(length / expected)^2`` around its typical duration at the clip's speaking rate. Unlike dealing
words to speech segments, nothing is decided before the search: segments, word onsets and the phonemes inside words
come out of one optimum (docs/benchmarks.md, dialogue_forced_alignment). A transcript the mouth does not say (it
misses the opening by more than ``AlignmentCosts.doubt``) is placed again with the mouth showing only where the
speaker pauses (docs/benchmarks.md, dialogue_doubt).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from v2a.text.phoneme_timing import DurationModel, PhonemeSpan
from v2a.text.phonemes import PAUSES, Phoneme

SILENCE = None   # a state's phoneme when it is a silence


@dataclass(frozen=True)
class AlignmentCosts:
    """The weights of the search: ``mouth`` (per frame, on the opening's squared error), ``speaking`` (per frame, on
    -log of the speaking probability), ``stiffness`` (on a phoneme's log length ratio), ``shortest`` / ``longest``
    (no phoneme shorter / longer than these multiples of its expected length), ``per_frame`` (search steps per video
    frame); with ``spread``, each phoneme's two costs are divided by its own variance of opening / log duration
    relative to the mean one (where the duration model measured them): a steady phoneme is held to its opening and
    length, a variable one is let go; ``band`` (seconds): each phoneme ends within this of where it would if the
    phonemes were spread over the speaking frames at their typical shares (a clip up to twice as long is searched
    whole; longer ones in a band, so the search grows linearly with them); ``cap`` (> 0): the opening's squared error
    counts at most this much a step, so where the mouth says something else than the transcript (a transcript that
    does not match the lips, a mouth hidden or misread) the words keep their typical lengths instead of being bent
    to it (0: no cap); ``doubt`` (> 0): when the placed phonemes miss the mouth's opening by more than this mean
    squared error (uncapped, over the phonemes' steps), the mouth is taken not to say this transcript (another
    clip's, a dub, a misread mouth) and the transcript is placed again with the phonemes' error capped at
    ``doubt_cap``: the mouth then still says where the speaker pauses (a silence costs the opening, uncapped) but
    no longer which phoneme is where, so the words keep lengths the model can say rather than being bent to lips
    that say other words (0: never)."""

    mouth: float = 4.0
    speaking: float = 1.0
    stiffness: float = 4.0
    shortest: float = 0.5
    longest: float = 4.0
    per_frame: int = 4
    spread: bool = True
    band: float = 8.0
    cap: float = 0.1
    doubt: float = 0.05
    doubt_cap: float = 0.001

    def __post_init__(self) -> None:
        if self.per_frame < 1 or self.longest < max(self.shortest, 1.0) or self.band <= 0 or \
                min(self.mouth, self.speaking, self.stiffness, self.shortest, self.cap, self.doubt, self.doubt_cap) < 0:
            raise ValueError(f"alignment costs must be >= 0 and per_frame >= 1, got {self}")


def chain(phonemes: Sequence[Phoneme]) -> list[Phoneme | None]:
    """The states: an optional silence, then each word's phonemes, an optional silence after every word. The
    transcript's own pauses are left out (a silence may fall between any two words)."""
    states: list[Phoneme | None] = [SILENCE]
    for p in phonemes:
        if p.symbol in PAUSES:
            continue
        if states[-1] is not SILENCE and states[-1].word != p.word:
            states.append(SILENCE)
        states.append(p)
    return states + [SILENCE]


Emission = Callable[[int, int, int], np.ndarray]   # (state, lo, hi) -> costs [parts, hi - lo] of samples lo..hi-1


def viterbi_edges(emission: np.ndarray | Emission, expected: np.ndarray, optional: np.ndarray, *,
                  stiffness: float | np.ndarray, shortest: float, longest: float = 4.0,
                  window: np.ndarray | None = None, n: int | None = None) -> np.ndarray:
    """The best segmentation of ``n`` samples into the chain's states, in order.

    ``emission``: each state's cost at each sample, [S, n], or for each of ``P`` equal parts of the state, [S, P, n]
    (a state over ``L`` samples spends samples ``[floor(i L / P), floor((i + 1) L / P))`` of its span in part
    ``i``); or a function ``(state, lo, hi) -> [P, hi - lo]`` giving them for samples lo..hi-1 only (then ``n`` is
    given), so a long clip's costs are never all held at once. ``expected`` [S]: each state's expected length in
    samples (ignored for optional states, whose length is free and may be 0; they read their first part);
    ``optional`` [S] bool; ``stiffness``: one for all states or one each, on ``log(length / expected)^2``. A required
    state lasts from ``max(1, floor(shortest * expected))`` to ``ceil(longest * expected)`` samples. ``window`` [S, 2]
    (optional): the first and last sample each state may end at, which bounds the search to a band, linear in the
    clip's length for a band of fixed width. Returns the S + 1 edges (0 first, n last; equal neighbours for a skipped
    optional state). A clear error when the states cannot fit.
    """
    if callable(emission):
        if n is None:
            raise ValueError("viterbi_edges: an emission function needs the number of samples n")
        costs_of = emission
    else:
        table = emission[:, None, :] if emission.ndim == 2 else emission
        n = table.shape[2]

        def costs_of(state: int, lo: int, hi: int) -> np.ndarray:
            return table[state, :, lo:hi]
    n_states = len(expected)
    stiffness = np.broadcast_to(np.asarray(stiffness, dtype=np.float64), (n_states,))
    minimum = np.where(optional, 0, np.maximum(1, np.floor(shortest * expected))).astype(np.int64)
    if minimum.sum() > n:
        raise ValueError(f"{int((~optional).sum())} phonemes do not fit in {n} samples")
    windows = np.tile([0, n], (n_states, 1)) if window is None else np.asarray(window, dtype=np.int64)
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    backs: list[tuple[int, np.ndarray]] = []   # per state: (first end, the start of each end from there)
    for state in range(n_states):
        last = int(windows[state, 1])
        if optional[state]:   # best start s <= e of best[s] - (cost before s): a running minimum (s = e: no silence)
            lo = int(np.argmax(np.isfinite(best)))
            last = max(last, lo)
            prefix = np.concatenate([[0.0], np.cumsum(costs_of(state, lo, last)[0])])
            values = best[lo:last + 1] - prefix
            running = np.minimum.accumulate(values)
            starts = np.maximum.accumulate(np.where(values <= running, np.arange(lo, last + 1), lo))
            best = np.full(n + 1, np.inf)
            best[lo:last + 1] = running + prefix
            backs.append((lo, starts))
            continue
        first = int(windows[state, 0])
        lengths = np.arange(minimum[state], max(minimum[state], int(np.ceil(longest * expected[state]))) + 1)
        lo = max(0, first - int(lengths[-1]))
        parts = costs_of(state, lo, last)
        prefix = np.concatenate([np.zeros((len(parts), 1)), np.cumsum(parts, axis=1)], axis=1) # sample lo + j: column j
        ends = np.arange(first, last + 1)
        starts = ends[:, None] - lengths[None, :]                                  # [ends, lengths]
        clipped = np.maximum(starts, lo)
        cost = best[clipped] + stiffness[state] * np.log(lengths / expected[state])[None, :] ** 2
        for part, row in enumerate(prefix):
            low = np.minimum(clipped + (part * lengths // len(prefix))[None, :], last) - lo
            high = np.minimum(clipped + ((part + 1) * lengths // len(prefix))[None, :], last) - lo
            cost = cost + row[high] - row[low]
        cost[starts < lo] = np.inf
        pick = np.argmin(cost, axis=1)
        best = np.full(n + 1, np.inf)
        best[ends] = cost[np.arange(len(ends)), pick]
        backs.append((first, clipped[np.arange(len(ends)), pick]))
    if not np.isfinite(best[n]):
        raise ValueError(f"no alignment of {n_states} states over {n} samples")
    edges = [n]
    for first, starts in reversed(backs):
        edges.append(int(starts[edges[-1] - first]))
    return np.asarray(edges[::-1])


def align_on_frames(phonemes: Sequence[Phoneme], speaking: np.ndarray, opening: np.ndarray, fps: float,
                    durations: DurationModel, costs: AlignmentCosts | None = None) -> list[PhonemeSpan]:
    """The transcript's ``phonemes`` placed on a clip from its per-frame ``speaking`` probability and mouth
    ``opening`` (frame ``i`` centred at ``(i + 0.5) / fps`` s; the opening is taken relative to its widest, as the
    typical openings are): the optimum of :func:`viterbi_edges`. Expected lengths are the typical durations scaled
    so the phonemes fill the frames the face speaks in. Where the duration model knows how the mouth moves through
    a phoneme (:meth:`DurationModel.mouth_profile`: its opening over the first, second, ... part of the phoneme),
    each part of a phoneme's span is held to that part's opening. A transcript the mouth does not say
    (:func:`transcript_fit` over ``costs.doubt``) is placed again with the phonemes' error capped at
    ``costs.doubt_cap``. Returns the spoken phonemes' spans (silences left empty)."""
    costs = costs or AlignmentCosts()
    clip = ClipAlignment(phonemes, speaking, opening, fps, durations, costs)
    if not clip.spoken:
        return []
    edges = clip.search(costs.cap)
    if costs.doubt > 0 and clip.mouth_error(edges) > costs.doubt:
        edges = clip.search(costs.doubt_cap)
    return clip.spans(edges)


def transcript_fit(phonemes: Sequence[Phoneme], speaking: np.ndarray, opening: np.ndarray, fps: float,
                   durations: DurationModel, costs: AlignmentCosts | None = None) -> float | None:
    """How far the mouth is from saying the transcript: the opening's mean squared error over the phonemes placed
    at ``costs.cap`` (what ``costs.doubt`` is compared with); None with nothing to say."""
    costs = costs or AlignmentCosts()
    clip = ClipAlignment(phonemes, speaking, opening, fps, durations, costs)
    return clip.mouth_error(clip.search(costs.cap)) if clip.spoken else None


class ClipAlignment:
    """One clip's search problem (:func:`align_on_frames`): the chain of states, each one's expected length and
    opening profile, and the per-step costs, on ``costs.per_frame`` steps a video frame."""

    def __init__(self, phonemes: Sequence[Phoneme], speaking: np.ndarray, opening: np.ndarray, fps: float,
                 durations: DurationModel, costs: AlignmentCosts) -> None:
        self.states = chain(phonemes)
        self.spoken = [s for s in self.states if s is not SILENCE]
        self.costs, self.fps = costs, fps
        if not self.spoken:
            return
        speaking = np.clip(np.asarray(speaking, dtype=np.float64), 1e-4, 1 - 1e-4)
        opening = np.clip(np.asarray(opening, dtype=np.float64), 0.0, None)
        opening = opening / max(float(opening.max()), 1e-9)
        n_frames, step = len(speaking), costs.per_frame
        frame_times = np.arange(n_frames) + 0.5
        times = (np.arange(n_frames * step) + 0.5) / step
        speaking, opening = np.interp(times, frame_times, speaking), np.interp(times, frame_times, opening)

        spoken = self.spoken
        typical = np.array([durations.duration(p.symbol, p.stressed) for p in spoken]) * fps * step
        self.talking = speaking > 0.5
        speech_samples = float(self.talking.sum())
        rate = np.clip(speech_samples / typical.sum(), 0.5, 2.0) if speech_samples > 0 else 1.0
        precision = np.ones((len(spoken), 2))   # of log duration, of opening: relative to the mean phoneme's
        if costs.spread and durations.spreads:
            spreads = np.array([durations.spread(s.symbol, s.stressed) or (np.nan, np.nan) for s in spoken])
            typical_spread = np.sqrt(np.nanmean(np.array(list(durations.spreads.values())) ** 2, axis=0))
            precision = np.nan_to_num(typical_spread ** 2 / np.maximum(spreads, 1e-2) ** 2, nan=1.0)
        profiles = [durations.mouth_profile(s.symbol, s.stressed) or [durations.mouth_openness(s.symbol, s.stressed)]
                    for s in spoken]
        n_parts = max(len(profile) for profile in profiles)
        optional = self.optional = np.array([s is SILENCE for s in self.states])
        self.expected, self.stiffness = np.zeros(len(optional)), np.ones(len(optional))
        self.mouth_precision = np.ones(len(optional))
        self.target = np.zeros((len(optional), n_parts))   # the opening expected over each part of each state
        self.expected[~optional] = typical * rate
        self.stiffness[~optional], self.mouth_precision[~optional] = precision[:, 0], precision[:, 1]
        self.target[~optional] = [np.resize(profile, n_parts) for profile in profiles]
        self.opening = opening
        self.silence = (costs.mouth * opening ** 2 - costs.speaking * np.log1p(-speaking)) / step
        self.speech = -costs.speaking * np.log(speaking) / step

    def mismatch(self, state: int, lo: int, hi: int) -> np.ndarray:
        """[parts, hi - lo]: the opening's squared error against each part of the state's profile."""
        return (self.opening[None, lo:hi] - self.target[state][:, None]) ** 2

    def search(self, cap: float) -> np.ndarray:
        """The optimal edges of the states (samples), with the phonemes' opening error capped at ``cap`` a step."""
        costs, step = self.costs, self.costs.per_frame

        def emission(state: int, lo: int, hi: int) -> np.ndarray:
            if self.optional[state]:
                return self.silence[None, lo:hi]
            error = self.mismatch(state, lo, hi)
            error = error if cap <= 0 else np.minimum(error, cap)
            return costs.mouth * self.mouth_precision[state] * error / step + self.speech[None, lo:hi]

        options = {"stiffness": costs.stiffness * self.stiffness, "shortest": costs.shortest, "longest": costs.longest}
        n = len(self.opening)
        window = speech_band(self.expected, self.optional, self.talking, costs.band * self.fps * step)
        try:
            return viterbi_edges(emission, self.expected, self.optional, window=window, n=n, **options)
        except ValueError:   # the band left no way through: search the whole clip
            if window is None:
                raise
            return viterbi_edges(emission, self.expected, self.optional, n=n, **options)

    def mouth_error(self, edges: np.ndarray) -> float:
        """The mean squared error of the opening over the steps of the phonemes placed at ``edges`` (each part of a
        phoneme's span against its part of the profile, split as :func:`viterbi_edges` splits spans): how far the
        mouth is from saying the transcript."""
        total, count = 0.0, 0
        for state in np.flatnonzero(~self.optional):
            lo, hi = int(edges[state]), int(edges[state + 1])
            errors = self.mismatch(state, lo, hi)
            starts = np.arange(len(errors)) * (hi - lo) // len(errors)   # where each part of the span starts
            parts = np.searchsorted(starts, np.arange(hi - lo), side="right") - 1
            total += float(errors[parts, np.arange(hi - lo)].sum())
            count += hi - lo
        return total / max(count, 1)

    def spans(self, edges: np.ndarray) -> list[PhonemeSpan]:
        """The spoken phonemes' spans in seconds for the states' ``edges``."""
        seconds = edges / (self.fps * self.costs.per_frame)
        return [PhonemeSpan(float(a), float(b), s.symbol, s.word)
                for s, a, b in zip(self.states, seconds[:-1], seconds[1:], strict=True) if s is not SILENCE]


def speech_band(expected: np.ndarray, optional: np.ndarray, speaking: np.ndarray,
                half_width: float) -> np.ndarray | None:
    """[S, 2]: the samples each state may end between. A phoneme ends within ``half_width`` of where it does when the
    phonemes' expected lengths are laid over the ``speaking`` samples in order; a silence no later than the next
    phoneme may. None when the band would cover the whole clip anyway, or nobody speaks."""
    n = len(speaking)
    if 2 * half_width >= n or not speaking.any():
        return None
    spoken = np.concatenate([[0.0], np.cumsum(speaking)])       # speaking samples before each sample edge
    reached = np.cumsum(np.where(optional, 0.0, expected)) * spoken[-1] / max(float(expected[~optional].sum()), 1e-9)
    centre = np.searchsorted(spoken, reached, side="left").astype(np.float64)
    window = np.stack([np.clip(centre - half_width, 0, n), np.clip(centre + half_width, 0, n)], axis=1).astype(np.int64)
    next_end = n   # a silence may end as late as the phoneme after it (the clip's end after the last phoneme)
    for state in range(len(optional) - 1, -1, -1):
        if optional[state]:
            window[state, 1] = next_end
        else:
            next_end = window[state, 1]
    return window
