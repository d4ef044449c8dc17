"""``v2a serve``: a resident generation process that ``v2a generate --server SOCKET`` hands its work to.

The server has torch imported and keeps loaded pipelines (:class:`PipelineCache`), so a request costs the
generation itself. Requests run one at a time, each in the client's working folder with the client's
``V2A_*`` variables, and everything the command prints (its progress bars and log lines included) goes
back to the client (:mod:`v2a.generation.remote` is the client and the protocol).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socketserver
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from v2a.generation.remote import FORWARDED_ENV_PREFIX, read_lines, send_line
from v2a.utils.devices import resolve_device

log = logging.getLogger(__name__)

Command = Callable[[list[str]], int]


class PipelineCache:
    """``V2APipeline.from_pretrained`` remembered: the same checkpoint (same path, size and modification
    time), device, vocoder and sampler give the already loaded pipeline. Holds the ``size`` latest."""

    def __init__(self, load: Callable[..., Any], size: int = 2) -> None:
        self.load = load
        self.size = size
        self.entries: OrderedDict[tuple, Any] = OrderedDict()
        self.hits = 0

    @staticmethod
    def key(path: str | Path, kwargs: Mapping[str, Any]) -> tuple:
        """The checkpoint file (or an export's newest file) by path, size and time, and the load settings with
        the unset ones left out (``sampler={'method': None}`` loads what ``sampler=None`` does)."""
        resolved = Path(path).resolve()
        files = [resolved] if resolved.is_file() else sorted(p for p in resolved.iterdir() if p.is_file())
        stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
        settings = dict(kwargs)
        if isinstance(settings.get("sampler"), Mapping):
            settings["sampler"] = {k: v for k, v in settings["sampler"].items() if v is not None} or None
        if settings.get("device") is not None:
            settings["device"] = str(resolve_device(settings["device"]))
        return str(resolved), stamp, repr(sorted(settings.items()))

    def __call__(self, path: str | Path, **kwargs: Any) -> Any:
        if not Path(path).exists():  # not cached: the loader says what is missing, in its own words
            return self.load(path, **kwargs)
        key = self.key(path, kwargs)
        if key in self.entries:
            self.entries.move_to_end(key)
            self.hits += 1
            return self.entries[key]
        pipeline = self.load(path, **kwargs)
        self.entries[key] = pipeline
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)
        return pipeline


class _ClientStream:
    """A text stream whose writes become ``{name: text}`` messages to the client (lost if it has gone)."""

    def __init__(self, socket_file: Any, name: str) -> None:
        self.socket_file = socket_file
        self.name = name
        self.gone = False

    def write(self, text: str) -> int:
        if text and not self.gone:
            try:
                send_line(self.socket_file, {self.name: text})
            except OSError:  # the client went away (Ctrl-C): the command still finishes and writes its files
                self.gone = True
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


class _CurrentStderr:
    """The log handler's stream: whatever ``sys.stderr`` is at the moment, so a request's logs reach its client."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@contextlib.contextmanager
def _request_context(cwd: str, env: Mapping[str, str]) -> Iterator[None]:
    """The client's working folder and ``V2A_*`` variables for the duration of one request."""
    def swap(values: Mapping[str, str]) -> None:
        for name in [k for k in os.environ if k.startswith(FORWARDED_ENV_PREFIX)]:
            os.environ.pop(name)
        os.environ.update({k: v for k, v in values.items() if k.startswith(FORWARDED_ENV_PREFIX)})

    previous_cwd, previous_env = os.getcwd(), dict(os.environ)
    os.chdir(cwd)
    swap(env)
    try:
        yield
    finally:
        os.chdir(previous_cwd)
        swap(previous_env)


def run_request(command: Command, request: Mapping[str, Any], socket_file: Any) -> int:
    """One client's command, its output streamed back; the exit status (a crash is status 1 and one line)."""
    out, err = _ClientStream(socket_file, "out"), _ClientStream(socket_file, "err")
    with _request_context(request["cwd"], request.get("env", {})), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = command(list(request["argv"]))
        except SystemExit as exit_:  # argparse's usage errors
            status = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
        except Exception as error:  # the server outlives a bug in one request
            log.debug("traceback", exc_info=True)
            print(f"error: unexpected {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
                  file=sys.stderr)
            status = 1
    return status


class GenerationServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Serves ``command(argv)`` to clients on a Unix socket, one request at a time (the others wait)."""

    daemon_threads = True

    def __init__(self, socket_path: str | Path, command: Command) -> None:
        self.socket_path = Path(socket_path)
        self.command = command
        self.lock = threading.Lock()
        self.socket_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):  # a stale socket of a server that did not exit cleanly
            self.socket_path.unlink()
        super().__init__(str(self.socket_path), _Handler)
        os.chmod(self.socket_path, 0o600)  # only this user may ask for work (and name files as this user)

    def server_close(self) -> None:
        super().server_close()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()


class _Handler(socketserver.StreamRequestHandler):
    server: GenerationServer

    def handle(self) -> None:
        stream = self.request.makefile("rwb")
        for request in read_lines(stream):
            with self.server.lock:
                status = run_request(self.server.command, request, stream)
            with contextlib.suppress(OSError):
                send_line(stream, {"status": status})
            return


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def serve(socket_path: str | Path, command: Command, *, ready: Callable[[], None] | None = None) -> None:
    """Serve until interrupted (Ctrl-C or SIGTERM; the socket file is removed). Log lines go to each request's
    client (``_CurrentStderr``)."""
    root = logging.getLogger()
    root.handlers = [logging.StreamHandler(_CurrentStderr())]
    root.handlers[0].setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.setLevel(logging.INFO)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
    with GenerationServer(socket_path, command) as server:
        if ready is not None:
            ready()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
