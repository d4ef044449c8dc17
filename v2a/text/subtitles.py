"""Timed transcripts: SubRip (.srt) and WebVTT (.vtt) cues, and the words spoken in a stretch of time.

A long video is generated window by window (``windowed``); with a plain-text transcript every window
is conditioned on all of it, but subtitles say *when* each line is spoken, so each window gets only the
lines that overlap it — what a real film's dialogue track needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{1,3})"
CUE_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}")
_MARKUP = re.compile(r"<[^>]*>|\{[^}]*\}")   # <i>, <v Speaker>, <00:01.500> and SSA {\an8} tags


@dataclass(frozen=True)
class Cue:
    """One subtitle: ``text`` is spoken from ``start`` to ``end`` (seconds from the start of the video)."""

    start: float
    end: float
    text: str


def _seconds(hours: str | None, minutes: str, seconds: str, fraction: str) -> float:
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(fraction.ljust(3, "0")) / 1000


def is_subtitles(text: str) -> bool:
    """Whether ``text`` holds subtitle cues (a ``00:00:01,000 --> 00:00:02,500`` timing line)."""
    return any(CUE_TIMING.match(line) for line in text.splitlines())


def parse_subtitles(text: str) -> list[Cue]:
    """The cues of SRT or WebVTT ``text``, in time order; markup removed, multi-line cues joined.

    Cue numbers, the ``WEBVTT`` header, ``NOTE``/``STYLE`` blocks and cue settings are ignored. A cue that
    ends before it starts, or subtitles without any cue, are a ``ValueError`` naming the line.
    """
    cues: list[Cue] = []
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    i = 0
    while i < len(lines):
        match = CUE_TIMING.match(lines[i])
        if not match:
            i += 1
            continue
        start, end = _seconds(*match.groups()[:4]), _seconds(*match.groups()[4:])
        if end < start:
            raise ValueError(f"subtitle line {i + 1} ends before it starts: {lines[i].strip()!r}")
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() and not CUE_TIMING.match(lines[i]):
            body.append(_MARKUP.sub("", lines[i]).strip())
            i += 1
        words = " ".join(part for part in body if part)
        if words:
            cues.append(Cue(start, end, words))
    if not cues:
        raise ValueError("the subtitles hold no cue with text (expected lines like '00:00:01,000 --> 00:00:02,500')")
    return sorted(cues, key=lambda cue: cue.start)


def text_for_span(cues: list[Cue], start: float, end: float) -> str:
    """The text of every cue that overlaps ``[start, end)`` seconds, in order ('' when none does)."""
    return " ".join(cue.text for cue in cues if cue.start < end and cue.end > start)


def window_transcripts(cues: list[Cue], starts: list[int], window_frames: int, fps: float) -> list[str]:
    """One transcript per generation window starting at video frame ``starts[i]`` and ``window_frames`` long."""
    return [text_for_span(cues, s / fps, (s + window_frames) / fps) for s in starts]
