"""Captions from the sources' phrases, and negative captions that never name an audible source.

Every negative candidate carries the tags (nouns) of what it names; a candidate is allowed only when
none of its tags is among the clip's audible tags, so the data stays truthful: "a fan whirring" is
never the negative of a clip with a fan, nor "a lamp humming" of a clip with any hum.
"""

from __future__ import annotations

import numpy as np

from v2a.data.synthetic.base import SourceResult

# (phrase, tags it names): sources of this benchmark first (hard negatives), then everyday sounds
NEGATIVES: tuple[tuple[str, frozenset[str]], ...] = tuple((phrase, frozenset(tags)) for phrase, tags in (
    ("a fan whirring", {"fan", "motor"}),
    ("a lamp humming", {"lamp", "hum"}),
    ("rain falling", {"rain", "water"}),
    ("a person speaking", {"speech", "voice", "person", "man", "woman"}),
    ("a woman talking", {"speech", "voice", "person", "woman"}),
    ("background music", {"music", "melody"}),
    ("a metal object clanging", {"metal"}),
    ("a wooden block knocking", {"wood"}),
    ("glass clinking", {"glass"}),
    ("a rubber ball bouncing", {"rubber"}),
    ("a dog barking", {"dog"}),
    ("a car engine", {"car", "engine", "motor"}),
    ("a siren wailing", {"siren"}),
    ("birds chirping", {"birds"}),
    ("footsteps", {"footsteps"}),
    ("a door slamming", {"door"}),
    ("applause", {"applause"}),
    ("a telephone ringing", {"telephone"}),
))


def join_captions(results: list[SourceResult]) -> str:
    """The clip caption: the sources' phrases in rendering order, comma separated."""
    return ", ".join(r.caption for r in results if r.caption)


def audible_tags(results: list[SourceResult]) -> frozenset[str]:
    return frozenset().union(*(r.tags for r in results))


def negative_caption(results: list[SourceResult], rng: np.random.Generator) -> str:
    """A phrase naming a source that is absent from (inaudible in) the clip."""
    audible = audible_tags(results)
    allowed = [phrase for phrase, tags in NEGATIVES if not tags & audible]
    return str(allowed[int(rng.integers(len(allowed)))]) if allowed else ""
