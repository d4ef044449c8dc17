"""The console streams of the command-line entry points (standard library only: the thin client imports it)."""

from __future__ import annotations

import sys


def console_for_any_name() -> None:
    """Let stdout and stderr print any file name: bytes that are not UTF-8 show as ``\\udcXX`` escapes instead
    of raising in the middle of a message or a log line."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
