"""What went wrong with an input, recorded for ``index.json``: skips (input dropped) and notes (kept, altered).

Every problem gets a short machine-readable ``kind`` (counted in the index) and a human ``reason``.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

log = logging.getLogger("v2a.data.ingest")

# Kinds used across the package; the README lists them so users can grep index.json.
SKIP_KINDS = (
    "missing", "not_a_file", "bad_row", "bad_range", "duplicate", "empty", "unreadable", "no_video",
    "undecodable", "too_large", "too_long", "bad_fps", "too_short", "no_audio", "decode_error",
)
NOTE_KINDS = ("no_audio", "bad_text", "bad_sidecar", "text_truncated", "range_clamped")


class IngestError(Exception):
    """A problem with the whole run (bad manifest, mismatched output folder): the CLI exits with code 2."""


@dataclass
class Issues:
    """Accumulates skips and notes; picklable, so workers return theirs to the main process."""

    skipped: list[dict] = field(default_factory=list)
    notes: list[dict] = field(default_factory=list)

    def skip(self, path: str, kind: str, reason: str, **extra: object) -> None:
        log.warning("skipping %s: %s", path, reason)
        self.skipped.append({"path": path, "kind": kind, "reason": reason, **extra})

    def note(self, path: str, kind: str, reason: str, **extra: object) -> None:
        log.warning("note %s: %s", path, reason)
        self.notes.append({"path": path, "kind": kind, "reason": reason, **extra})

    def merge_into(self, index: dict) -> None:
        """Add to an index's ``skipped``/``notes`` without duplicates (a rebuilt shard reports again)."""
        for name, entries in (("skipped", self.skipped), ("notes", self.notes)):
            existing = index.setdefault(name, [])
            for entry in entries:
                if entry not in existing:
                    existing.append(entry)
        index["counts"] = {
            name: dict(sorted(Counter(e["kind"] for e in index.get(name, [])).items())) for name in ("skipped", "notes")
        }
