"""The client side of ``v2a serve``: hand a ``v2a generate`` command line to a warm generation server.

Importing torch alone takes longer than generating an 8 s clip (docs/benchmarks.md, generate_speed), so a
``v2a generate --server SOCKET`` (or with ``V2A_SERVER`` set) sends its arguments to a resident process that
has torch imported and the model loaded, and prints what that process prints. This module imports nothing
but the standard library: the client never loads torch, Hydra or the model.

The protocol, one JSON object per line over a Unix socket: the client sends ``{"argv", "cwd", "env"}``; the
server answers with ``{"out": text}`` / ``{"err": text}`` lines as the command prints, then ``{"status": N}``.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

ENV_VAR = "V2A_SERVER"
# Environment variables a request carries to the server (the watermark key among them): the client's values
# apply to its own request, as they would to a local run.
FORWARDED_ENV_PREFIX = "V2A_"


class ServerUnavailable(ConnectionError):
    """No server answers at the socket (not started, stopped, or a stale file)."""


def default_socket_path() -> Path:
    """Where ``v2a serve`` listens unless told otherwise: a per-user runtime folder."""
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/v2a-{os.getuid()}"
    return Path(runtime) / "v2a-generate.sock"


def send_line(stream: Any, message: Mapping[str, Any]) -> None:
    """One protocol message (a JSON object on one line) on a socket file."""
    stream.write(json.dumps(message, ensure_ascii=True).encode() + b"\n")
    stream.flush()


def read_lines(stream: Any) -> Iterator[dict]:
    """The protocol messages arriving on a socket file, until it closes."""
    for line in stream:
        if line.strip():
            yield json.loads(line)


def forwarded_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``V2A_*`` variables of this process, which the server applies to the request."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items() if k.startswith(FORWARDED_ENV_PREFIX) and k != ENV_VAR}


def run_remote(socket_path: str | Path, argv: Sequence[str], *, stdout: TextIO | None = None,
               stderr: TextIO | None = None) -> int:
    """Run ``v2a`` with ``argv`` in the server at ``socket_path``; its output goes to ``stdout``/``stderr``.

    Returns the command's exit status. Raises :class:`ServerUnavailable` when nothing answers there.
    """
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(str(socket_path))
    except OSError as error:
        client.close()
        raise ServerUnavailable(f"no v2a server at {socket_path} ({error.strerror or error}); start one with "
                                f"'v2a serve --ckpt CKPT'") from None
    with client, client.makefile("rwb") as stream:
        send_line(stream, {"argv": list(argv), "cwd": os.getcwd(), "env": forwarded_env()})
        for message in read_lines(stream):
            if "status" in message:
                return int(message["status"])
            target = stdout if "out" in message else stderr
            target.write(message.get("out", message.get("err", "")))
            target.flush()
    print(f"error: the v2a server at {socket_path} closed the connection before the command ended", file=stderr)
    return 1
