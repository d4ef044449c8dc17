"""Loader throughput and video decoders: clips/s of three ways to get a training clip, and of each decoder.

    python bench/loader.py [--sources 4] [--minutes 1.5] [--batches 10] [--naive 20] [--steps 10] [--rounds 3]
                           [--decoder-clips 48] [--only loader|decoders] [--work DIR] [--write]

Realistic sources: ``--sources`` long videos (30 fps, 320x240, H.264 with a keyframe every 5 s, stereo AAC
at 44.1 kHz, moving textured content) are rendered once into ``--work``, cut into 2 s clips with
``data_prep/make_shards.py`` and given frames with ``data_prep/add_frames.py``. Then, in this process
(no worker processes, so the numbers are per core):

  (a) shards, mp4 decoded by v2a.media (PyAV) — the training loader (ShardDataModule) on the make_shards output;
  (b) shards with frames.npy          — the same loader on the add_frames output (no video decoding);
  (c) naive, source video per sample  — open the source mp4, seek to a random clip, decode at the model's
                                         size, decode and resample its audio (``v2a.media.read_frames/read_audio``);

and the consumption rate of one ``v2a_tiny`` training step (forward, backward, AdamW, EMA) at batch 32.

Decoders (``--only decoders``, bench/video_decoders.py): PyAV, decord and torchcodec on the two decoding
jobs (a shard clip's mp4 bytes -> all frames; a source video -> a 2 s clip's frames at 32x32), with
correctness checked on an mp4, an MPEG-TS copy and a phone video (display rotation 90).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.report import machine, write_section  # noqa: E402
from bench.train_throughput import time_steps  # noqa: E402
from v2a.data.datamodule import ShardDataModule  # noqa: E402
from v2a.media import probe, read_audio, read_frames  # noqa: E402
from v2a.shapes import ClipSpec  # noqa: E402

SIZE, FPS, RATE, GOP_S = (320, 240), 30, 44100, 5


def render_source(path: Path, seconds: float, seed: int, *, fmt: str | None = None, rotation: int = 0) -> None:
    """A video with texture and motion (a scrolling pattern, moving squares, light noise) and clicks over a hum;
    ``fmt`` names the container (default: mp4), ``rotation`` sets a display rotation (a phone video)."""
    rng = np.random.default_rng(seed)
    width, height = SIZE
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([np.sin(xx / (7 + c * 3) + c) * np.cos(yy / (11 + c * 2)) for c in range(3)], -1)
    base = ((base + 1) * 90 + 20).astype(np.uint8)
    squares = rng.uniform([0, 0, -3, -3], [width - 24, height - 24, 3, 3], size=(6, 4))
    tmp = path.with_name(path.name + ".tmp" + path.suffix)
    with av.open(str(tmp), "w", format=fmt) as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "veryfast", "g": str(GOP_S * FPS), "crf": "23"}
        if rotation:
            video.set_display_rotation(rotation)
        sound = container.add_stream("aac", rate=RATE)
        sound.layout = "stereo"
        for index in range(int(seconds * FPS)):
            frame = np.roll(base, (index * 2, index), axis=(0, 1)).copy()
            for square in squares:
                square[:2] = (square[:2] + square[2:]) % [width - 24, height - 24]
                x, y = square[:2].astype(int)
                frame[y : y + 24, x : x + 24] = (255, 64, 32)
            frame = np.clip(frame.astype(np.int16) + rng.integers(-6, 7, frame.shape), 0, 255).astype(np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        t = np.arange(int(seconds * RATE)) / RATE
        audio = 0.05 * np.sin(2 * np.pi * 110 * t)
        for click in rng.uniform(0, seconds, int(seconds)):
            start = int(click * RATE)
            audio[start : start + 200] += 0.5 * np.exp(-np.arange(len(audio[start : start + 200])) / 40)
        audio = np.stack([audio, audio]).astype(np.float32)
        step = sound.frame_size or 1024
        for first in range(0, audio.shape[1], step):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[:, first : first + step]), format="fltp",
                                               layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = RATE, first, Fraction(1, RATE)
            for packet in sound.encode(frame):
                container.mux(packet)
        for packet in sound.encode():
            container.mux(packet)
    tmp.replace(path)


def prepare(work: Path, sources: int, minutes: float) -> tuple[list[Path], Path, Path]:
    """Source videos, their shards (mp4) and the same shards with frames.npy, built once into ``work``."""
    source_dir, shards, frames = work / "sources", work / "shards", work / "frames"
    source_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(sources):
        path = source_dir / f"source{number:02d}.mp4"
        if not path.exists():
            started = time.perf_counter()
            render_source(path, minutes * 60, number)
            print(f"rendered {path} in {time.perf_counter() - started:.0f} s", flush=True)
        paths.append(path)
    python = sys.executable
    if not (shards / "train" / "index.json").exists() or not list((shards / "train").glob("*.tar")):
        subprocess.run([python, "data_prep/make_shards.py", f"input={source_dir}", f"out={shards / 'train'}",
                        "shard_size=20", "workers=2"], cwd=ROOT, check=True)
    subprocess.run([python, "data_prep/add_frames.py", f"root={shards}", f"out={frames}", "workers=2"], cwd=ROOT,
                   check=True)
    return paths, shards, frames


def loader_rate(root: Path, spec: ClipSpec, batches: int, batch_size: int) -> float:
    """clips/s of the training loader (in this process), after one warm-up batch."""
    module = ShardDataModule(root=str(root), spec=spec, batch_size=batch_size, num_workers=0, shuffle_buffer=100,
                             samples_per_epoch=batch_size * (batches + 1))
    iterator = iter(module.train_dataloader())
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(iterator)
        assert batch["frames"].shape[1:] == (spec.n_video_frames, 3, spec.image_size, spec.image_size)
    return batches * batch_size / (time.perf_counter() - start)


def naive_rate(paths: list[Path], spec: ClipSpec, clips: int, seed: int = 0) -> float:
    """clips/s of opening a source video per clip: seek, decode at the model's size, resample (ingest's reader)."""
    infos = {p: probe(str(p), max_resolution=4096, max_duration_s=7200) for p in paths}
    rng = random.Random(seed)
    start = time.perf_counter()
    for _ in range(clips):
        path = rng.choice(paths)
        info = infos[path]
        begin = rng.randrange(int((info.duration - spec.duration) / spec.duration)) * spec.duration
        times = begin + np.arange(spec.n_video_frames) / spec.fps
        frames, _ = read_frames(path, times, origin=info.origin, size=spec.image_size, rotation=info.rotation)
        audio = read_audio(str(path), begin, begin + spec.duration, origin=info.origin, rate=spec.sample_rate)
        clip = {"frames": torch.from_numpy(frames).permute(0, 3, 1, 2), "audio": torch.from_numpy(audio)}
        assert clip["frames"].shape[0] == spec.n_video_frames and clip["audio"].shape[0] == spec.n_samples
    return clips / (time.perf_counter() - start)


def measure_rounds(rounds: int, measures: dict) -> dict[str, list[float]]:
    """Each measure once per round, interleaved, so load from other processes hits all of them alike."""
    results: dict[str, list[float]] = {name: [] for name in measures}
    for number in range(rounds):
        for name, measure in measures.items():
            results[name].append(measure())
            print(f"round {number + 1}: ({name}) {results[name][-1]:.1f} clips/s", flush=True)
    return results


def loader_report(args, paths: list[Path], shards: Path, frames: Path, spec: ClipSpec) -> str:
    load_before = os.getloadavg()[0]

    def with_threads(threads: int, fn):
        def run() -> float:
            torch.set_num_threads(threads)
            return fn()
        return run

    # Loaders run with 1 thread, as in a DataLoader worker (PyTorch sets 1 there); the step with 2.
    results = measure_rounds(args.rounds, {
        "a": with_threads(1, lambda: loader_rate(shards, spec, args.batches, 32)),
        "b": with_threads(1, lambda: loader_rate(frames, spec, args.batches, 32)),
        "c": with_threads(1, lambda: naive_rate(paths, spec, args.naive)),
        "step1": with_threads(1, lambda: time_steps("tiny", args.steps, 32, torch.device("cpu"))["clips_per_s"]),
        "step": with_threads(2, lambda: time_steps("tiny", args.steps, 32, torch.device("cpu"))["clips_per_s"]),
    })
    load_after = os.getloadavg()[0]
    rates = {name: statistics.median(values) for name, values in results.items()}
    spread = {name: f"{min(values):.1f}–{max(values):.1f}" for name, values in results.items()}
    ratio = rates["a"] / rates["c"]
    command = "python bench/loader.py " + " ".join(sys.argv[1:])
    size_mb = {name: sum(p.stat().st_size for p in (root / "train").glob("*.tar")) / 1e6
               for name, root in (("a", shards), ("b", frames))}
    n_shards = sum(1 for _ in (shards / "train").glob("*.tar"))
    step, step1 = rates["step"], rates["step1"]
    text = "\n".join([
        "## Loader throughput (can the data keep up with training?)", "",
        f"Command: `{command}` — {machine().rsplit(', ', 1)[0]}. Loaders run in one process with 1 torch thread "
        f"(as a DataLoader worker does), the training step with 1 and with 2; {args.rounds} interleaved rounds, median (range). Load "
        f"average (1 min) {load_before:.1f} before, {load_after:.1f} after: the machine was shared, so absolute "
        "rates are low; the ratios were measured under the same load.", "",
        f"Sources: {args.sources} videos × {args.minutes:g} min, {FPS} fps, {SIZE[0]}x{SIZE[1]} H.264 (keyframe every "
        f"{GOP_S} s), stereo AAC {RATE} Hz; cut by `data_prep/make_shards.py` into 2 s clips (25 fps, 32x32, 16 kHz) "
        f"in {n_shards} shards of ≤ 20 clips; `data_prep/add_frames.py` added frames.npy "
        f"(shards: {size_mb['a']:.1f} MB with mp4, {size_mb['b']:.1f} MB with frames.npy).", "",
        "| way to get a training clip | clips/s, median (range) |", "| --- | --- |",
        f"| (a) shard loader, mp4 decoded with PyAV (batch 32, {args.batches} batches a round) | "
        f"{rates['a']:.1f} ({spread['a']}) |",
        f"| (b) shard loader, pre-extracted frames.npy (batch 32, {args.batches} batches a round) | "
        f"{rates['b']:.1f} ({spread['b']}) |",
        f"| (c) naive: open the source mp4 per clip, seek, decode at 32x32, resample audio "
        f"({args.naive} clips a round) | {rates['c']:.2f} ({spread['c']}) |",
        f"| `v2a_tiny` training step consumes, 1 thread (batch 32, {args.steps} steps a round) | "
        f"{step1:.1f} ({spread['step1']}) |",
        f"| `v2a_tiny` training step consumes, 2 threads (batch 32, {args.steps} steps a round) | "
        f"{step:.1f} ({spread['step']}) |",
        "",
        f"(a) / (c) = **{ratio:.0f}×** (goal ≥ 10×: {'met' if ratio >= 10 else 'NOT met'}). Core for core (one loader "
        f"process vs the step on one thread), the loader delivers {rates['a'] / step1:.1f}× (mp4) and "
        f"{rates['b'] / step1:.1f}× (frames.npy) what the tiny step consumes "
        f"({'faster' if min(rates['a'], rates['b']) > step1 else 'NOT faster'} than the step). (c) decodes at the "
        "model's size inside ffmpeg with PyAV; before, decord re-indexed the whole source at every open, so (c) "
        "was slower and the ratio larger.",
    ])
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=1.5)
    parser.add_argument("--batches", type=int, default=10, help="batches of 32 timed per shard loader and round")
    parser.add_argument("--naive", type=int, default=20, help="source clips timed per naive reader and round")
    parser.add_argument("--steps", type=int, default=10, help="v2a_tiny training steps timed per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--decoder-clips", type=int, default=48, help="shard clips timed per decoder and round")
    parser.add_argument("--only", choices=("loader", "decoders"), help="run one part (default: both)")
    parser.add_argument("--work", default="/tmp/v2a_loader_bench", help="where sources and shards are built (kept)")
    parser.add_argument("--write", action="store_true",
                        help="write the 'loader' / 'video_decoders' sections of docs/benchmarks.md")
    args = parser.parse_args()
    from bench.video_decoders import decoders_report

    spec = ClipSpec()
    paths, shards, frames = prepare(Path(args.work), args.sources, args.minutes)
    for name, report in (("loader", loader_report), ("video_decoders", decoders_report)):
        if args.only in (None, name.removeprefix("video_")):
            text = report(args, paths, shards, frames, spec) if name == "loader" else report(args, paths, shards, spec)
            print(text, flush=True)
            if args.write:
                write_section(name, text)




if __name__ == "__main__":
    main()
