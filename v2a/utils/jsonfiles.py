"""JSON for files whose names may not be UTF-8.

Python keeps the bytes of a file name that is not UTF-8 (Latin-1 from an old archive) as lone surrogates
(``'caf\\udce9.mp4'``), which ``json.dumps(..., ensure_ascii=False).encode()`` cannot write. Here they become
``\\udcXX`` escapes: valid JSON that ``json.loads`` reads back to the same name, so the file opens again.
"""

from __future__ import annotations

import json
from typing import Any


def json_bytes(data: Any, **options: Any) -> bytes:
    """``data`` as readable UTF-8 JSON bytes (``options`` go to ``json.dumps``); any file name survives."""
    return json.dumps(data, ensure_ascii=False, **options).encode("utf-8", "backslashreplace")
