"""``v2a serve`` and ``v2a generate --server``: the warm server, its client, and the cache of loaded models."""

import io
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.data.videos import make_video
from v2a.generation.remote import ServerUnavailable, run_remote
from v2a.generation.server import GenerationServer, PipelineCache, serve

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def socket_path():
    # Unix socket paths are limited to ~107 bytes: pytest's tmp_path can be longer
    folder = Path(f"/tmp/v2a-test-{os.getpid()}-{time.monotonic_ns()}")
    yield folder / "s.sock"
    if folder.exists():
        for item in folder.iterdir():
            item.unlink()
        folder.rmdir()


def start(server: GenerationServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


def echo(argv: list[str]) -> int:
    """A stand-in command: prints what a request sees (its argv, folder and V2A_* variables), logs, fails on ask."""
    if argv == ["crash"]:
        raise RuntimeError("boom\nsecond line")
    if argv == ["usage"]:
        raise SystemExit(2)
    print(f"argv={argv} cwd={os.getcwd()} key={os.environ.get('V2A_WATERMARK_KEY')}")
    logging.getLogger("v2a.test").info("a log line")
    print("to stderr", file=sys.stderr)
    return 7


def test_a_request_runs_in_the_clients_folder_with_its_variables_and_its_output_comes_back(socket_path, tmp_path,
                                                                                           monkeypatch):
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    ready = threading.Event()
    thread = threading.Thread(target=serve, args=(socket_path, echo), kwargs={"ready": ready.set}, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        check_requests(socket_path, tmp_path, monkeypatch)
    finally:
        root.handlers, root.level = handlers, level  # serve() routes the root logger to its clients


def check_requests(socket_path, tmp_path, monkeypatch):
    assert oct(socket_path.stat().st_mode & 0o777) == "0o600"  # only its user may ask for work
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("V2A_WATERMARK_KEY", "client-key")
    out, err = io.StringIO(), io.StringIO()
    status = run_remote(socket_path, ["generate", "caf\udce9.mp4"], stdout=out, stderr=err)
    assert status == 7
    assert out.getvalue() == f"argv=['generate', 'caf\\udce9.mp4'] cwd={tmp_path} key=client-key\n"
    assert "a log line" in err.getvalue() and "to stderr" in err.getvalue()

    out, err = io.StringIO(), io.StringIO()
    assert run_remote(socket_path, ["crash"], stdout=out, stderr=err) == 1
    assert err.getvalue().strip() == "error: unexpected RuntimeError: boom"
    assert run_remote(socket_path, ["usage"], stdout=out, stderr=err) == 2


def test_the_server_restores_its_folder_and_variables(socket_path, tmp_path, monkeypatch):
    monkeypatch.setenv("V2A_WATERMARK_KEY", "server-key")
    server = GenerationServer(socket_path, echo)
    start(server)
    try:
        before = os.getcwd()
        other = tmp_path / "client"
        other.mkdir()
        env = {**os.environ, "V2A_WATERMARK_KEY": "client-key"}
        code = ("import sys; from v2a.generation.remote import run_remote; "
                f"sys.exit(run_remote({str(socket_path)!r}, ['x']))")
        done = subprocess.run([sys.executable, "-c", code], cwd=other, env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 7
        assert f"cwd={other} key=client-key" in done.stdout
        assert os.getcwd() == before and os.environ["V2A_WATERMARK_KEY"] == "server-key"
    finally:
        server.shutdown()
        server.server_close()
    assert not socket_path.exists()


def test_a_client_without_a_server_gets_one_clear_error(socket_path):
    with pytest.raises(ServerUnavailable, match="no v2a server at .*v2a serve --ckpt"):
        run_remote(socket_path, ["generate", "x.mp4"])


def test_the_pipeline_cache_reuses_a_loaded_model_until_its_file_changes(tmp_path):
    loads = []
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"one")

    def load(path, **kwargs):
        loads.append((path, kwargs))
        return object()

    cache = PipelineCache(load, size=2)
    first = cache(ckpt, device="cpu", vocoder=None, sampler={"method": None})
    # unset sampler settings are the same load as none; "auto" on a CPU machine is "cpu"
    assert cache(str(ckpt), device="cpu", vocoder=None, sampler=None) is first
    assert cache.hits == 1 and len(loads) == 1
    assert cache(ckpt, device="cpu", vocoder=None, sampler={"steps": 4}) is not first  # another setting: a load
    stat = ckpt.stat()
    ckpt.write_bytes(b"two!")  # retrained in place: loaded again
    os.utime(ckpt, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert cache(ckpt, device="cpu", vocoder=None, sampler=None) is not first
    assert len(loads) == 3 and len(cache.entries) == 2  # the oldest dropped


def test_the_client_imports_no_torch():
    code = ("import sys, v2a.cli; heavy = sorted({m.split('.')[0] for m in sys.modules} & "
            "{'torch', 'omegaconf', 'hydra', 'numpy'}); print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_v2a_generate_through_a_warm_server_writes_what_a_local_run_writes(one_step_checkpoint, tmp_path,
                                                                           socket_path):
    video = make_video(tmp_path / "clip.mp4", size=(64, 48), fps=25, seconds=2.2)
    env = {**os.environ, "V2A_WATERMARK_KEY": "served", "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "v2a.cli", "serve", "--ckpt", one_step_checkpoint, "--socket",
                               str(socket_path), "--threads", "1"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        line = server.stdout.readline()
        assert line.startswith("serving "), line + server.stdout.read()
        common = [str(video.name), "--ckpt", one_step_checkpoint, "--steps", "1", "--seed", "5"]
        for name in ("a", "b"):
            done = subprocess.run([sys.executable, "-m", "v2a.cli", "generate", *common, "-o", f"{name}.mp4",
                                   "--server", "--socket", str(socket_path)], cwd=tmp_path, env=env, capture_output=True,
                                  text=True, timeout=300)
            assert done.returncode == 0, done.stderr
            assert f"wrote {name}.mp4 and {name}.wav" in done.stdout
        local = subprocess.run([sys.executable, "-m", "v2a.cli", "generate", *common, "-o", "local.mp4",
                                "--threads", "1"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert local.returncode == 0, local.stderr
        # same model, seed and key: the served audio is the local run's, byte for byte
        assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "local.wav").read_bytes()
        assert (tmp_path / "b.wav").read_bytes() == (tmp_path / "local.wav").read_bytes()
        bad = subprocess.run([sys.executable, "-m", "v2a.cli", "generate", "missing.mp4", "--ckpt", one_step_checkpoint,
                              "--server", "--socket", str(socket_path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=120)
        assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: ")
        code = f"import sys; from v2a.generation.remote import run_remote; sys.exit(run_remote({str(socket_path)!r}, ['demo']))"
        other = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=60)
        assert other.returncode == 2 and "runs 'v2a generate' commands only" in other.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
