"""Checking and resolving generation options before any work starts: text inputs, model identity."""

from __future__ import annotations

from pathlib import Path

from v2a.checkpoints.export import WEIGHTS
from v2a.utils.hashing import sha256_file

# A transcript value that looks like one of these files is read as a file (and must exist).
TRANSCRIPT_FILE_SUFFIXES = (".txt", ".srt", ".vtt", ".md")
MAX_TRANSCRIPT_BYTES = 1 << 20  # a transcript, not a book: larger files are almost surely the wrong path


def read_text_option(name: str, value: str | None) -> str | None:
    """``value`` itself, or the UTF-8 text of the file it names.

    A value is a file when it names an existing file, or when it is a single word ending in
    ``.txt``/``.srt``/``.vtt``/``.md`` (then a missing file is an error, not text to speak).
    """
    if value is None:
        return None
    value = str(value)
    path = Path(value).expanduser()
    looks_like_file = not any(ch.isspace() for ch in value) and path.suffix.lower() in TRANSCRIPT_FILE_SUFFIXES
    try:
        is_file = path.is_file()
    except OSError:  # e.g. a name longer than the file system allows: it is text
        is_file = False
    if not is_file:
        if looks_like_file:
            raise ValueError(f"{name} file {value} does not exist (pass the text itself, or an existing file)")
        return value
    if path.stat().st_size > MAX_TRANSCRIPT_BYTES:
        raise ValueError(f"{name} file {path} is larger than {MAX_TRANSCRIPT_BYTES} bytes")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{name} file {path} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise ValueError(f"cannot read {name} file {path}: {error.strerror or error}") from None


def model_sha256(ckpt: str | Path) -> str | None:
    """SHA-256 of the weights file: the checkpoint itself, or an export's ``model.safetensors``."""
    path = Path(ckpt)
    if path.is_dir():
        path = path / WEIGHTS
    return sha256_file(path) if path.is_file() else None


def check_numbers(*, num_candidates: int, steps: int | None, duration: float | None, overlap_s: float,
                  cfg_scale: float | None) -> None:
    """Clear errors for option values that cannot work."""
    if num_candidates < 1:
        raise ValueError(f"num_candidates must be >= 1, got {num_candidates}")
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if duration is not None and duration <= 0:
        raise ValueError(f"duration must be positive, got {duration}")
    if overlap_s < 0:
        raise ValueError(f"overlap_s must be >= 0, got {overlap_s}")
    if cfg_scale is not None and cfg_scale < 0:
        raise ValueError(f"cfg_scale must be >= 0, got {cfg_scale}")
