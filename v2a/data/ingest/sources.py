"""Find the inputs: a folder of videos (recursive, with sidecars), one video, or a CSV / JSONL manifest.

Every input becomes a :class:`Source`; anything unusable (missing file, a folder named like a video, a
manifest row without a path or with a bad start/end) is recorded as a skip, never raised.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import logging
import math
import os
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from v2a.data.ingest.issues import IngestError, Issues
from v2a.data.ingest.text import TextPolicy, clean_fields, sidecar_fields
from v2a.media import VIDEO_SUFFIXES

log = logging.getLogger("v2a.data.ingest")

VIDEO_EXTENSIONS = VIDEO_SUFFIXES  # whatever ffmpeg demuxes, archive formats (.dv, .mxf, .vob ...) included
MANIFEST_EXTENSIONS = frozenset({".csv", ".jsonl"})
SIDECAR_EXTENSIONS = frozenset({".txt", ".json", ".srt", ".vtt"})


@dataclass
class Source:
    """One video (or one manifest row's time range of it)."""

    path: str  # absolute path, opened as is (never passed through a shell)
    rel: str  # relative to the input folder / manifest folder (absolute when outside it): the identity
    start: float = 0.0  # seconds from the first video frame
    end: float | None = None  # None: to the end of the video
    text: dict[str, str] = field(default_factory=dict)
    size: int = 0  # bytes, part of the plan fingerprint

    @property
    def label(self) -> str:
        """How messages name this input."""
        if self.start or self.end is not None:
            return f"{self.rel} [{self.start:g}, {'end' if self.end is None else f'{self.end:g}'})"
        return self.rel


def is_video_name(name: str) -> bool:
    return Path(name).suffix.lower() in VIDEO_EXTENSIONS


def _check_file(path: Path, who: str, issues: Issues) -> int | None:
    """The file's size, or None (with a skip) when it is missing or not a regular file."""
    try:
        info = path.stat()  # follows symlinks: a dangling one is "missing"
    except OSError as error:
        why = "symlink loop" if error.errno == errno.ELOOP else "dangling symlink" if path.is_symlink() else ""
        issues.skip(who, "missing", "no such file" + (f" ({why})" if why else ""))
        return None
    if not stat.S_ISREG(info.st_mode):
        issues.skip(who, "not_a_file", "not a regular file (a folder or device named like a video)")
        return None
    return info.st_size


def discover(input_path: Path, policy: TextPolicy, issues: Issues) -> list[Source]:
    """All sources of a folder, video file or manifest, sorted so that the plan is deterministic."""
    input_path = Path(input_path)
    if not input_path.exists():
        raise IngestError(f"input {input_path} does not exist")
    if not input_path.is_dir() and not input_path.is_file():
        raise IngestError(f"input {input_path} is not a regular file or folder (a FIFO or device?)")
    if input_path.is_dir():
        sources = _from_folder(input_path, policy, issues)
    elif input_path.suffix.lower() in MANIFEST_EXTENSIONS:
        sources = _from_manifest(input_path, policy, issues)
    elif is_video_name(input_path.name):
        size = _check_file(input_path, input_path.name, issues)
        text = sidecar_fields(input_path, input_path.name, policy, issues)
        sources = [] if size is None else [Source(str(input_path.resolve()), input_path.name, text=text, size=size)]
    else:
        raise IngestError(f"input {input_path} is neither a folder, a video nor a .csv/.jsonl manifest")
    return sorted(sources, key=lambda s: (s.rel, s.start, math.inf if s.end is None else s.end))


def _from_folder(root: Path, policy: TextPolicy, issues: Issues) -> list[Source]:
    sources = []
    ignored: Counter[str] = Counter()
    for folder, dirs, files in os.walk(root):
        # Hidden folders (.git, .hydra_run, caches) are not inputs; sorted for a stable walk.
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files) + [d for d in dirs if is_video_name(d)]:
            if not is_video_name(name):
                suffix = Path(name).suffix.lower()
                if not name.startswith(".") and suffix not in SIDECAR_EXTENSIONS | MANIFEST_EXTENSIONS:
                    ignored[suffix or "(no extension)"] += 1
                continue
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            size = _check_file(path, rel, issues)
            if size is not None:
                text = sidecar_fields(path, rel, policy, issues)
                sources.append(Source(str(path.resolve()), rel, text=text, size=size))
    if ignored:  # not skips: files that are not videos by name (list them in a manifest to use them anyway)
        log.info("ignored %d file(s) whose names are not video names: %s", sum(ignored.values()),
                 ", ".join(f"{suffix} x{count}" for suffix, count in sorted(ignored.items())))
    return sources


def _rows(manifest: Path) -> list[tuple[int, dict | None, str]]:
    """(line number, row or None, why not) for each row of a CSV or JSONL manifest."""
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise IngestError(f"manifest {manifest} is not UTF-8 ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise IngestError(f"cannot read manifest {manifest}: {error.strerror or error}") from None
    if manifest.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if "path" not in (reader.fieldnames or []):
            raise IngestError(f"manifest {manifest} has no 'path' column (columns: {reader.fieldnames})")
        return [(reader.line_num, row, "") for row in reader]
    rows: list[tuple[int, dict | None, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            rows.append((number, None, f"invalid JSON ({error.msg})"))
            continue
        rows.append((number, row, "") if isinstance(row, dict) else (number, None, "not a JSON object"))
    return rows


def _seconds(value: object) -> float | None:
    """A start/end value in seconds: None when absent; ValueError when not a finite number >= 0."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(value)
    seconds = float(value)  # type: ignore[arg-type]  (ValueError/TypeError for junk)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(value)
    return seconds


def _from_manifest(manifest: Path, policy: TextPolicy, issues: Issues) -> list[Source]:
    base = manifest.parent.resolve()
    sources = []
    for line, row, why in _rows(manifest):
        where = f"{manifest.name}:{line}"
        if row is None:
            issues.skip(where, "bad_row", f"manifest row: {why}")
            continue
        value = row.get("path")
        if not isinstance(value, str) or not value.strip():
            issues.skip(where, "bad_row", "manifest row has no 'path'")
            continue
        path = Path(value.strip())
        path = path if path.is_absolute() else base / path
        try:
            resolved = path.resolve()
        except (OSError, RuntimeError) as error:  # a symlink loop (RuntimeError before Python 3.13)
            issues.skip(f"{value.strip()} ({where})", "missing", f"cannot resolve the path: {error}")
            continue
        try:
            rel = resolved.relative_to(base).as_posix()
        except ValueError:
            rel = resolved.as_posix()  # outside the manifest's folder: the absolute path is the identity
        who = f"{rel} ({where})"
        try:
            start, end = _seconds(row.get("start")), _seconds(row.get("end"))
        except (TypeError, ValueError):
            issues.skip(who, "bad_range", f"start/end must be seconds >= 0, got {row.get('start')!r}/{row.get('end')!r}")
            continue
        if start is not None and end is not None and end <= start:
            issues.skip(who, "bad_range", f"end {end:g} s is not after start {start:g} s")
            continue
        size = _check_file(path, who, issues)
        if size is None:
            continue
        # Sidecars first, then the row's own non-empty fields on top.
        text = sidecar_fields(path, who, policy, issues)
        text.update(clean_fields({k: v for k, v in row.items() if v not in (None, "")}, who, policy, issues))
        sources.append(Source(str(resolved), rel, start or 0.0, end, text, size))
    return sources
