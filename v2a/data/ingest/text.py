"""Captions, transcripts and licences from sidecar files and manifest rows, made safe to store.

Policy for text that is not UTF-8: ``bad_text=drop`` (default) ignores that file's text with a note, since
mojibake would poison a text encoder; ``bad_text=replace`` keeps it with U+FFFD for the bad bytes.
Over-long fields are truncated (with a note) so a runaway transcript cannot bloat every clip's json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from v2a.data.ingest.issues import Issues

# The text fields a clip's json carries. ``origin`` (where the video came from, e.g. a URL) is read from
# a sidecar's or manifest's ``source`` key: the clip json's own ``source`` is the input's relative path.
TEXT_FIELDS = ("caption", "transcript", "negative_caption", "license", "origin")
ALIASES = {"source": "origin"}
MAX_SIDECAR_BYTES = 1 << 20  # a "caption" larger than 1 MiB is not a caption


@dataclass(frozen=True)
class TextPolicy:
    bad_text: str = "drop"  # drop | replace
    max_transcript_chars: int = 2000
    max_caption_chars: int = 1000

    def __post_init__(self) -> None:
        if self.bad_text not in ("drop", "replace"):
            raise ValueError(f"bad_text must be drop or replace, got {self.bad_text!r}")

    def limit(self, name: str) -> int:
        return self.max_transcript_chars if name == "transcript" else self.max_caption_chars


def read_text_file(path: Path, who: str, policy: TextPolicy, issues: Issues) -> str | None:
    """A sidecar's text, or None (with a note) when it is too large or not UTF-8 under ``drop``."""
    try:
        size = path.stat().st_size
        if size > MAX_SIDECAR_BYTES:
            issues.note(who, "bad_sidecar", f"sidecar {path.name} is {size} bytes (> {MAX_SIDECAR_BYTES}): ignored")
            return None
        data = path.read_bytes()
    except OSError as error:
        issues.note(who, "bad_sidecar", f"cannot read sidecar {path.name}: {error.strerror or error}")
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        if policy.bad_text == "drop":
            issues.note(who, "bad_text", f"sidecar {path.name} is not UTF-8 ({error.reason} at byte {error.start}): ignored")
            return None
        issues.note(who, "bad_text", f"sidecar {path.name} is not UTF-8: undecodable bytes replaced")
        return data.decode("utf-8", errors="replace")


def clean_fields(raw: dict, who: str, policy: TextPolicy, issues: Issues) -> dict[str, str]:
    """Keep the known text fields of a sidecar json / manifest row, as stripped, length-limited strings."""
    fields: dict[str, str] = {}
    for key, value in raw.items():
        name = ALIASES.get(key, key)
        if name not in TEXT_FIELDS or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            issues.note(who, "bad_sidecar", f"field {key!r} is a {type(value).__name__}, not text: ignored")
            continue
        text = " ".join(str(value).split())  # one line; no stray control characters or NULs
        text = "".join(ch for ch in text if ch.isprintable())
        if len(text) > policy.limit(name):
            issues.note(who, "text_truncated", f"{name} truncated from {len(text)} to {policy.limit(name)} characters")
            text = _truncate(text, policy.limit(name))
        if text:
            fields[name] = text
    return fields


def _truncate(text: str, limit: int) -> str:
    """Cut at the last word boundary before ``limit`` (mid-word when there is none)."""
    head = text[:limit]
    return head.rsplit(" ", 1)[0] if " " in head else head


def _sidecar(video: Path, suffix: str) -> Path | None:
    # NAME.txt next to NAME.mp4 (the usual form), or NAME.mp4.txt.
    for candidate in (video.with_suffix(suffix), video.with_name(video.name + suffix)):
        if candidate.is_file():
            return candidate
    return None


def sidecar_fields(video: Path, who: str, policy: TextPolicy, issues: Issues) -> dict[str, str]:
    """Text from ``NAME.txt`` (the caption) and ``NAME.json`` (any TEXT_FIELDS; it wins over the .txt)."""
    raw: dict = {}
    txt = _sidecar(video, ".txt")
    if txt is not None and (text := read_text_file(txt, who, policy, issues)) is not None:
        raw["caption"] = text
    meta = _sidecar(video, ".json")
    if meta is not None and (text := read_text_file(meta, who, policy, issues)) is not None:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            issues.note(who, "bad_sidecar", f"sidecar {meta.name} is not valid JSON ({error.msg}, line {error.lineno}): ignored")
            data = {}
        if not isinstance(data, dict):
            issues.note(who, "bad_sidecar", f"sidecar {meta.name} holds a {type(data).__name__}, not an object: ignored")
            data = {}
        raw.update({k: v for k, v in data.items() if v not in (None, "")})
    return clean_fields(raw, who, policy, issues)
