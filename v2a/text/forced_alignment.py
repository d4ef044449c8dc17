"""Forced alignment of a transcript on what the video shows: the whole clip's phonemes placed at once by Viterbi
search over a semi-Markov chain (each phoneme a state with an explicit duration, silences optional between words).

The observations are two per-frame signals a lip aligner reads from the frames: the probability that the face
speaks and how far the mouth is open. A phoneme costs, per frame, the squared difference between the mouth's
opening and the phoneme's typical opening (a vowel where the mouth is open, a closure where it shuts) and the
improbability that the face speaks; a silence costs the mouth's opening and the probability that it speaks. Each
phoneme's length costs ``stiffness * log(length / expected)^2`` around its typical duration at the clip's speaking
rate. Unlike dealing words to speech segments, nothing is decided before the search: segments, word onsets and
the phonemes inside words come out of one optimum.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    length, a variable one is let go."""

    mouth: float = 4.0
    speaking: float = 1.0
    stiffness: float = 1.0
    shortest: float = 0.5
    longest: float = 4.0
    per_frame: int = 4
    spread: bool = True

    def __post_init__(self) -> None:
        if self.per_frame < 1 or self.longest < max(self.shortest, 1.0) or \
                min(self.mouth, self.speaking, self.stiffness, self.shortest) < 0:
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


def viterbi_edges(emission: np.ndarray, expected: np.ndarray, optional: np.ndarray, *,
                  stiffness: float | np.ndarray, shortest: float, longest: float = 4.0) -> np.ndarray:
    """The best segmentation of ``n`` samples into the chain's states, in order.

    ``emission`` [S, n] or [S, P, n]: each state's cost at each sample, or for each of ``P`` equal parts of the
    state (a state over ``L`` samples spends samples ``[floor(i L / P), floor((i + 1) L / P))`` of its span in part
    ``i``); ``expected`` [S]: each state's expected length in samples (ignored for optional states, whose length is
    free and may be 0; they read their first part); ``optional`` [S] bool; ``stiffness``: one for all states or one
    each, on ``log(length / expected)^2``. A required state lasts from ``max(1, floor(shortest * expected))`` to
    ``ceil(longest * expected)`` samples, so the search grows linearly with the clip (a silence, of any length, is
    a running minimum). Returns the S + 1 edges (0 first, n last; equal neighbours for a skipped optional state).
    A clear error when the states cannot fit.
    """
    emission = emission[:, None, :] if emission.ndim == 2 else emission
    n_states, n_parts, n = emission.shape
    stiffness = np.broadcast_to(np.asarray(stiffness, dtype=np.float64), (n_states,))
    minimum = np.where(optional, 0, np.maximum(1, np.floor(shortest * expected))).astype(np.int64)
    if minimum.sum() > n:
        raise ValueError(f"{int((~optional).sum())} phonemes do not fit in {n} samples")
    prefix = np.concatenate([np.zeros((n_states, n_parts, 1)), np.cumsum(emission, axis=2)], axis=2)
    ends = np.arange(n + 1)
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    back = np.zeros((n_states, n + 1), dtype=np.int64)
    for state in range(n_states):
        if optional[state]:   # best start s <= e of best[s] - prefix[s]: a running minimum (s = e: no silence)
            values = best - prefix[state, 0]
            running = np.minimum.accumulate(values)
            back[state] = np.maximum.accumulate(np.where(values <= running, ends, 0))
            best = running + prefix[state, 0]
            continue
        lengths = np.arange(minimum[state], max(minimum[state], int(np.ceil(longest * expected[state]))) + 1)
        starts = ends[:, None] - lengths[None, :]                                  # [n + 1, lengths]
        clipped = np.maximum(starts, 0)
        cost = best[clipped] + stiffness[state] * np.log(lengths / expected[state])[None, :] ** 2
        for part in range(n_parts):
            low = np.minimum(clipped + (part * lengths // n_parts)[None, :], n)
            high = np.minimum(clipped + ((part + 1) * lengths // n_parts)[None, :], n)
            cost = cost + prefix[state, part][high] - prefix[state, part][low]
        cost[starts < 0] = np.inf
        pick = np.argmin(cost, axis=1)
        best, back[state] = cost[ends, pick], clipped[ends, pick]
    if not np.isfinite(best[n]):
        raise ValueError(f"no alignment of {n_states} states over {n} samples")
    edges = [n]
    for state in range(n_states - 1, -1, -1):
        edges.append(int(back[state, edges[-1]]))
    return np.asarray(edges[::-1])


def align_on_frames(phonemes: Sequence[Phoneme], speaking: np.ndarray, opening: np.ndarray, fps: float,
                    durations: DurationModel, costs: AlignmentCosts | None = None) -> list[PhonemeSpan]:
    """The transcript's ``phonemes`` placed on a clip from its per-frame ``speaking`` probability and mouth
    ``opening`` (frame ``i`` centred at ``(i + 0.5) / fps`` s; the opening is taken relative to its widest, as the
    typical openings are): the optimum of :func:`viterbi_edges`. Expected lengths are the typical durations scaled
    so the phonemes fill the frames the face speaks in. Where the duration model knows how the mouth moves through
    a phoneme (:meth:`DurationModel.mouth_profile`: its opening over the first, second, ... part of the phoneme),
    each part of a phoneme's span is held to that part's opening. Returns the spoken phonemes' spans (silences
    left empty)."""
    costs = costs or AlignmentCosts()
    states = chain(phonemes)
    spoken = [s for s in states if s is not SILENCE]
    if not spoken:
        return []
    speaking = np.clip(np.asarray(speaking, dtype=np.float64), 1e-4, 1 - 1e-4)
    opening = np.clip(np.asarray(opening, dtype=np.float64), 0.0, None)
    opening = opening / max(float(opening.max()), 1e-9)
    n_frames, step = len(speaking), costs.per_frame
    frame_times = np.arange(n_frames) + 0.5
    times = (np.arange(n_frames * step) + 0.5) / step
    speaking, opening = np.interp(times, frame_times, speaking), np.interp(times, frame_times, opening)

    typical = np.array([durations.duration(p.symbol, p.stressed) for p in spoken]) * fps * step
    speech_samples = float((speaking > 0.5).sum())
    rate = np.clip(speech_samples / typical.sum(), 0.5, 2.0) if speech_samples > 0 else 1.0
    precision = np.ones((len(spoken), 2))   # of log duration, of opening: relative to the mean phoneme's
    if costs.spread and durations.spreads:
        spreads = np.array([durations.spread(s.symbol, s.stressed) or (np.nan, np.nan) for s in spoken])
        typical_spread = np.sqrt(np.nanmean(np.array(list(durations.spreads.values())) ** 2, axis=0))
        precision = np.nan_to_num(typical_spread ** 2 / np.maximum(spreads, 1e-2) ** 2, nan=1.0)
    profiles = [durations.mouth_profile(s.symbol, s.stressed) or [durations.mouth_openness(s.symbol, s.stressed)]
                for s in spoken]
    n_parts = max(len(profile) for profile in profiles)
    optional = np.array([s is SILENCE for s in states])
    expected, stiffness, mouth_precision = np.zeros(len(states)), np.ones(len(states)), np.ones(len(states))
    target = np.zeros((len(states), n_parts))   # the opening expected over each part of each state
    expected[~optional] = typical * rate
    stiffness[~optional], mouth_precision[~optional] = precision[:, 0], precision[:, 1]
    target[~optional] = [np.resize(profile, n_parts) for profile in profiles]
    talk = np.where(optional[:, None], -np.log1p(-speaking)[None, :], -np.log(speaking)[None, :])
    mouth = costs.mouth * mouth_precision[:, None, None] * (opening[None, None, :] - target[:, :, None]) ** 2
    emission = (mouth + costs.speaking * talk[:, None, :]) / step
    edges = viterbi_edges(emission, expected, optional, stiffness=costs.stiffness * stiffness,
                          shortest=costs.shortest, longest=costs.longest)
    seconds = edges / (fps * step)
    return [PhonemeSpan(float(a), float(b), s.symbol, s.word)
            for s, a, b in zip(states, seconds[:-1], seconds[1:], strict=True) if s is not SILENCE]
