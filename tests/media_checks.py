"""Checks on a muxed output: durations agree, copied video lost no packet, every frame decodes, nothing left over."""

from __future__ import annotations

import hashlib
from pathlib import Path

import av

from v2a.media import scan_video


def video_extent(path: Path) -> tuple[float, float, float]:
    """(start, end, frame duration) of the main video stream's packets, seconds."""
    scan = scan_video(path)
    assert scan is not None, path
    return scan.start, scan.end, 1.0 / scan.fps


def audio_extent(path: Path, index: int = 0) -> tuple[float, float]:
    """(start, end) of an audio stream: where its first decoded sample plays, and where its packets end (the
    container's view: an mp4 edit list trims the encoder's padding)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[index]
        first = next(iter(container.decode(stream)))
        start = float(first.time)
    with av.open(str(path)) as container:
        stream = container.streams.audio[index]
        ends = [float((p.pts + p.duration) * p.time_base) for p in container.demux(stream) if p.size and p.pts is not None]
    return start, max(ends)


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(container.streams.video[0]))


def check_muxed(source: Path, result: dict) -> dict:
    """Assert the invariants of one generated result; returns measurements for the report."""
    out = Path(result["video"])
    v_start, v_end, frame = video_extent(out)
    a_start, a_end = audio_extent(out)
    assert abs((v_end - v_start) - (a_end - a_start)) <= frame + 1e-3, (out, v_start, v_end, a_start, a_end)
    assert abs(v_end - a_end) <= frame + 1e-3, (out, v_end, a_end)
    frames = decoded_frames(out)
    out_scan = scan_video(out)
    assert frames == out_scan.packets > 0, (out, frames, out_scan)  # playable: every packet decodes to a frame
    if result["muxed_video"] == "copied":
        in_scan = scan_video(source)
        assert (out_scan.packets, out_scan.keyframes) == (in_scan.packets, in_scan.keyframes), (in_scan, out_scan)
    return {"video_s": round(v_end - v_start, 3), "audio_s": round(a_end - a_start, 3), "frames": frames}


def digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def leftovers(folder: Path) -> list[Path]:
    """Hidden temporaries (``.NAME.v2a-partial.mp4``, ``.NAME.tmp.mp4`` ...) left in ``folder``."""
    return [p for p in folder.iterdir() if p.name.startswith(".")] if folder.is_dir() else []
