"""Mux generated audio into a copy of the input video (video stream copied untouched, via PyAV).

Streaming: the generated audio is read from its file a block at a time and encoded in step with the
video packets (so the output is interleaved and memory does not grow with the length).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from v2a.media.audio_io import audio_blocks, read_audio
from v2a.media.container import open_input, video_stream

AUDIO_MODES = ("drop", "keep", "mix")
ENCODE_FRAME = 1024  # samples per encoded audio frame (AAC's frame size)


class MuxError(RuntimeError):
    """The output container cannot hold what was asked (e.g. the original audio codec in mp4)."""


class _GeneratedTrack:
    """Encodes the generated audio on demand, up to a time, so it interleaves with the copied packets."""

    def __init__(self, sink, stream, blocks: Iterator[np.ndarray], sample_rate: int, pts0: int,
                 mix_with: str | None, origin: float) -> None:
        self.sink, self.stream, self.blocks, self.rate = sink, stream, blocks, sample_rate
        self.pts0, self.mix_with, self.origin = pts0, mix_with, origin
        self.written = 0  # samples encoded so far
        self.done = False

    def write_until(self, seconds: float) -> None:
        while not self.done and self.written < seconds * self.rate:
            block = next(self.blocks, None)
            if block is None:
                self.done = True
                return
            if self.mix_with is not None:  # the original audio under the new one, on the video's clock
                begin = self.written / self.rate
                original = read_audio(self.mix_with, begin, begin + len(block) / self.rate, origin=self.origin,
                                      rate=self.rate)[: len(block)]
                block = 0.5 * block + 0.5 * np.pad(original, (0, len(block) - len(original)))
            self._encode(np.clip(block, -1, 1).astype(np.float32))

    def _encode(self, block: np.ndarray) -> None:
        for start in range(0, len(block), ENCODE_FRAME):
            piece = block[start : start + ENCODE_FRAME]
            frame = av.AudioFrame.from_ndarray(piece[None, :], format="flt", layout="mono")
            frame.sample_rate = self.rate
            frame.pts = self.pts0 + self.written
            frame.time_base = Fraction(1, self.rate)
            self.written += len(piece)
            for packet in self.stream.encode(frame):
                self.sink.mux(packet)

    def finish(self) -> None:
        self.write_until(float("inf"))
        for packet in self.stream.encode():
            self.sink.mux(packet)


def _has_audio(path: Path) -> bool:
    with open_input(path) as container:
        return bool(container.streams.audio)


def mux_audio(video_path: str | Path, audio: str | Path | np.ndarray, sample_rate: int, out_path: str | Path, *,
              original_audio: str = "drop", origin: float = 0.0, codec: str = "aac") -> Path:
    """Write ``out_path``: the input's video stream copied packet by packet, plus the generated ``audio``.

    ``audio`` is an audio file (read block by block) or an array, mono at ``sample_rate``, starting at
    the first video frame (``origin`` seconds on the input's clock). ``original_audio``: ``drop`` it,
    ``keep`` it as a second track (its packets copied untouched), or ``mix`` it under the new audio.
    The file is written to a temporary name and renamed, so a failure leaves nothing half-written.
    """
    if original_audio not in AUDIO_MODES:
        raise ValueError(f"original_audio must be one of {AUDIO_MODES}, got {original_audio!r}")
    video_path, out_path = Path(video_path), Path(out_path)
    has_original = original_audio != "drop" and _has_audio(video_path)
    tmp = out_path.with_name(f".{out_path.stem}.tmp{out_path.suffix}")
    try:
        with open_input(video_path) as source, av.open(str(tmp), mode="w") as sink:
            in_video = video_stream(source)
            if in_video is None:
                raise MuxError(f"{video_path} holds no video stream")
            out_video = sink.add_stream_from_template(in_video)
            generated = sink.add_stream(codec, rate=sample_rate, layout="mono")
            copied = source.streams.audio[0] if has_original and original_audio == "keep" else None
            out_copied = sink.add_stream_from_template(copied) if copied is not None else None
            track = _GeneratedTrack(sink, generated, audio_blocks(audio, sample_rate), sample_rate,
                                    int(round(origin * sample_rate)),
                                    str(video_path) if has_original and original_audio == "mix" else None, origin)
            for packet in source.demux(*([in_video] + ([copied] if copied is not None else []))):
                if packet.dts is None:  # demuxer flush packets carry no data
                    continue
                stamp = packet.pts if packet.pts is not None else packet.dts
                track.write_until(float(stamp * packet.time_base) - origin + 1.0)  # audio leads by <= 1 s
                packet.stream = out_video if packet.stream.index == in_video.index else out_copied
                sink.mux(packet)
            track.finish()
        os.replace(tmp, out_path)
    except av.FFmpegError as error:
        raise MuxError(f"cannot write {out_path} ({error}); try original_audio=drop or an .mkv output") from error
    finally:
        if tmp.exists():
            tmp.unlink()
    return out_path
