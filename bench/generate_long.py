"""Long-video generation: wall time, RTF, peak RSS by length, ffprobe of the output, watermark p-value.

    nice -n 10 .venv/bin/python bench/generate_long.py [--ckpt CKPT] [--minutes 1 3] [--threads N] [--write]

Renders a synthetic silent video per length (a bouncing, colour-changing square, 320x240 at 25 fps,
H.264), runs ``generate.py`` on it as a child process (the peak RSS is that child's, from ``wait4``),
then checks the output with ffprobe (both streams, their durations) and the watermark detector.
``--write`` puts the table into the "generation" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: bench/ is not part of the package

from bench.report import load_average, machine, write_section  # noqa: E402

KEY = "bench-generate-long"  # the watermark key given to the child and to the detector


def render_video(path: Path, seconds: float, *, size: tuple[int, int] = (320, 240), fps: int = 25) -> Path:
    """A silent H.264 video: a square bouncing off the walls, its colour changing at every bounce."""
    width, height = size
    side = 40
    rng = np.random.default_rng(0)
    x, y, vx, vy = 50.0, 30.0, 170.0, 120.0  # pixels per second
    colour = rng.integers(60, 255, 3)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for _ in range(int(round(seconds * fps))):
            x, y = x + vx / fps, y + vy / fps
            if not 0 <= x <= width - side:
                vx, x, colour = -vx, min(max(x, 0), width - side), rng.integers(60, 255, 3)
            if not 0 <= y <= height - side:
                vy, y, colour = -vy, min(max(y, 0), height - side), rng.integers(60, 255, 3)
            image = np.full((height, width, 3), 24, np.uint8)
            image[int(y) : int(y) + side, int(x) : int(x) + side] = colour
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def is_v2a(path: Path) -> bool:
    """Whether a checkpoint holds a video-to-audio model (not a vocoder, sync or classifier run)."""
    import torch

    try:
        config = torch.load(path, map_location="cpu", weights_only=True).get("v2a_config") or {}
    except Exception:  # unreadable: not a candidate
        return False
    return str(config.get("model", {}).get("_target_", "")).endswith("V2AModule")


def newest_checkpoint() -> Path:
    """The most recent video-to-audio ``last.ckpt`` under outputs/."""
    found = [p for p in sorted((ROOT / "outputs").rglob("last.ckpt"), key=lambda p: p.stat().st_mtime) if is_v2a(p)]
    if not found:
        raise SystemExit("no outputs/**/last.ckpt: train one (python train.py experiment=v2a_tiny) or pass --ckpt")
    return found[-1]


def run_child(command: list[str]) -> tuple[float, float, int, str]:
    """(wall seconds, peak RSS MiB, exit status, stderr tail) of one child process."""
    env = dict(os.environ, V2A_WATERMARK_KEY=KEY)
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read()[-2000:].decode("utf-8", "replace")
    return time.perf_counter() - started, usage.ru_maxrss / 1024, proc.returncode, tail


def ffprobe(path: Path) -> list[dict]:
    """codec type, codec name and duration of each stream (ffprobe's own reading of the file)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name,duration",
                          "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout
    return [{"type": s["codec_type"], "codec": s["codec_name"], "duration": float(s.get("duration", "nan"))}
            for s in json.loads(out)["streams"]]


def detect(path: Path) -> float:
    from v2a.media import decode_audio
    from v2a.watermark import Watermarker

    audio, rate = decode_audio(path)
    return Watermarker(key=KEY).detect(audio.mean(axis=0), rate).p_value


def measure(minutes: float, ckpt: Path, work: Path, extra: list[str]) -> dict:
    seconds = 60.0 * minutes
    video = render_video(work / f"long_{minutes:g}min.mp4", seconds)
    out = work / f"long_{minutes:g}min_v2a.mp4"
    command = [sys.executable, "generate.py", f"video={video}", f"ckpt={ckpt}", f"out={out}", *extra]
    wall, rss, status, tail = run_child(command)
    if status != 0:
        raise SystemExit(f"generate.py failed ({status}):\n{tail}")
    sidecar = json.loads(out.with_suffix(".json").read_text())
    streams = ffprobe(out)
    return {"minutes": minutes, "video_s": seconds, "wall_s": wall, "rtf": wall / seconds, "peak_rss_mib": rss,
            "generate_s": sidecar["elapsed_s"], "windows": sidecar["windows"], "streams": streams,
            "p_mp4": detect(out), "p_wav": detect(Path(sidecar["audio"]))}


def table(rows: list[dict]) -> str:
    lines = ["| video | windows | wall (s) | RTF (wall) | RTF (in-process) | peak RSS (MiB) | video stream (s) "
             "| audio stream (s) | watermark p (mp4 AAC) | watermark p (wav) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        video = next(s for s in r["streams"] if s["type"] == "video")
        audio = next(s for s in r["streams"] if s["type"] == "audio")
        lines.append(f"| {r['minutes']:g} min | {r['windows']} | {r['wall_s']:.1f} | {r['rtf']:.3f} | "
                     f"{r['generate_s'] / r['video_s']:.3f} | {r['peak_rss_mib']:.0f} | {video['codec']} "
                     f"{video['duration']:.3f} | {audio['codec']} {audio['duration']:.3f} | {r['p_mp4']:.2g} | "
                     f"{r['p_wav']:.2g} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, default=None, help="checkpoint (default: newest outputs/**/last.ckpt)")
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 3.0])
    parser.add_argument("--threads", type=int, default=None, help="num_threads= of the child (default: torch's)")
    parser.add_argument("--write", action="store_true", help="write the generation section of docs/benchmarks.md")
    args = parser.parse_args()
    ckpt = args.ckpt or newest_checkpoint()
    with tempfile.TemporaryDirectory() as tmp:
        extra = [] if args.threads is None else [f"num_threads={args.threads}"]
        rows = [measure(m, ckpt, Path(tmp), extra) for m in args.minutes]
    for row in rows:
        print(json.dumps(row))
    load = load_average()
    text = table(rows)
    print(text)
    if args.write:
        command = "nice -n 10 .venv/bin/python bench/generate_long.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        write_section("generation", "\n".join([
            "## Long-video generation (generate.py, streaming)", "",
            f"Command: `{command}`", "",
            f"Checkpoint `{ckpt.relative_to(ROOT) if ckpt.is_relative_to(ROOT) else ckpt}`; defaults of "
            "v2a/conf/generate.yaml (8 Euler steps, CFG from the checkpoint, Griffin-Lim, 0.5 s window overlap, "
            f"watermark on), torch threads: {args.threads or 'default'}. Synthetic silent 320x240 25 fps H.264 input. Machine: {machine()}; {load} at the end "
            "(a shared machine: wall times include waiting for the CPU).", "",
            "Wall time and peak RSS are those of the whole `generate.py` child process (Python start, imports and "
            "model load included; RSS from `wait4`); the in-process RTF is the sidecar's `elapsed_s` / video length. "
            "Durations are ffprobe's. p-values: `Watermarker(key).detect` on the muxed AAC track and on the wav.", "",
            text]))


if __name__ == "__main__":
    main()
