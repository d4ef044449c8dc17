"""Mux generated audio into a copy of the input video (via PyAV).

The video stream is copied packet by packet when the output container holds its codec, else re-encoded as
H.264 (:mod:`v2a.media.tracks`); ``video_codec`` chooses (``auto``, ``copy``, ``h264``). The audio and
the video of the output last equally long: audio longer than the video is cut at the video's end (as its
packets hold it: a truncated file ends where its data ends), and a video longer than the audio is cut at the
audio's end (re-encoded: a copy can only end at a keyframe). Streaming: the generated audio is read from its
file a block at a time and encoded in step with the video packets (so the output is interleaved and memory
does not grow with the length). Everything is written to a temporary name and renamed: a failure leaves
nothing behind, and the input is never the output.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf

from v2a.media.audio_io import audio_blocks, decode_audio, read_audio
from v2a.media.container import open_input, video_stream
from v2a.media.probe import scan_video
from v2a.media.tracks import (
    VIDEO_CODECS,
    CannotCopy,
    CopiedVideo,
    EncodedVideo,
    KeptAudio,
    codec_name,
    container_kind,
    video_mode,
)

log = logging.getLogger(__name__)

AUDIO_MODES = ("drop", "keep", "mix")
ENCODE_FRAME = 1024  # samples per encoded audio frame (AAC's frame size)


class MuxError(RuntimeError):
    """The output cannot be written as asked (e.g. ``video_codec=copy`` of a codec the container refuses)."""


@dataclass(frozen=True)
class Muxed:
    """What :func:`mux` wrote: the file, and how its video and kept original audio got there."""

    path: Path
    video: str  # "copied", or "re-encoded as h264 (why)"
    original_audio: str | None = None  # "copied", "re-encoded as flac (why)", or None (not kept)


class _GeneratedTrack:
    """Encodes the generated audio on demand, up to a time, so it interleaves with the copied packets."""

    def __init__(self, sink, stream, blocks: Iterator[np.ndarray], sample_rate: int, pts0: int,
                 mix_with: str | None, origin: float, limit: int) -> None:
        self.sink, self.stream, self.blocks, self.rate = sink, stream, blocks, sample_rate
        self.pts0, self.mix_with, self.origin, self.limit = pts0, mix_with, origin, limit
        self.written = 0  # samples encoded so far
        self.done = False

    def write_until(self, seconds: float) -> None:
        while not self.done and self.written < seconds * self.rate:
            block = next(self.blocks, None)
            if block is None or self.written >= self.limit:
                self.done = True
                return
            block = block[: self.limit - self.written]  # never past the video's end
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
            self._put(self.stream.encode(frame))

    def _put(self, packets: list[av.Packet]) -> None:
        for packet in packets:  # the last frame is padded to a whole AAC frame: its packet lasts what it holds
            if packet.pts is not None and packet.duration:
                packet.duration = max(1, min(packet.duration, self.pts0 + self.written - packet.pts))
            self.sink.mux(packet)

    def finish(self) -> None:
        self.write_until(float("inf"))
        self._put(self.stream.encode())


def _has_audio(path: Path) -> bool:
    with open_input(path) as container:
        return bool(container.streams.audio)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _audio_samples(audio: str | Path | np.ndarray, sample_rate: int) -> int:
    """Length of the generated audio in samples at ``sample_rate``."""
    if isinstance(audio, np.ndarray):
        return len(audio)
    try:
        info = sf.info(os.fsencode(audio))  # bytes: libsndfile opens any file name
        return int(round(info.frames * sample_rate / info.samplerate))
    except (sf.LibsndfileError, RuntimeError):  # not a libsndfile format: decode it
        samples, rate = decode_audio(audio)
        return int(round(samples.shape[1] * sample_rate / rate))


def mux_audio(video_path: str | Path, audio: str | Path | np.ndarray, sample_rate: int, out_path: str | Path, *,
              original_audio: str = "drop", origin: float = 0.0, codec: str | None = None,
              video_codec: str = "auto") -> Path:
    """:func:`mux`, returning only the written path."""
    return mux(video_path, audio, sample_rate, out_path, original_audio=original_audio, origin=origin, codec=codec,
               video_codec=video_codec).path


def mux(video_path: str | Path, audio: str | Path | np.ndarray, sample_rate: int, out_path: str | Path, *,
        original_audio: str = "drop", origin: float = 0.0, codec: str | None = None,
        video_codec: str = "auto") -> Muxed:
    """Write ``out_path``: the input's main video stream plus the generated ``audio``.

    ``audio`` is an audio file (read block by block) or an array, mono at ``sample_rate``, starting at
    the first video frame (``origin`` seconds on the input's clock). ``original_audio``: ``drop`` it,
    ``keep`` it as a second track (copied, or re-encoded losslessly where the container cannot hold its
    codec), or ``mix`` it under the new audio. ``video_codec``: ``auto`` copies the video when the container
    holds its codec and re-encodes it as H.264 otherwise; ``copy`` refuses what cannot be copied; ``h264``
    always re-encodes. Audio and video last equally long (see the module's doc). ``codec`` encodes the
    generated audio: by default AAC in an mp4 or mov (whose edit list trims the encoder's padding, so the
    track lasts exactly as long as ``audio``), FLAC in an mkv (which has no such trim: AAC would run up to one
    1024-sample frame past the video).
    """
    if original_audio not in AUDIO_MODES:
        raise ValueError(f"original_audio must be one of {AUDIO_MODES}, got {original_audio!r}")
    if video_codec not in VIDEO_CODECS:
        raise ValueError(f"video_codec must be one of {VIDEO_CODECS}, got {video_codec!r}")
    video_path, out_path = Path(video_path), Path(out_path)
    if _same_file(video_path, out_path) or video_path.resolve() == out_path.resolve():
        raise MuxError(f"the output {out_path} is the input video: choose another out=")
    has_original = original_audio != "drop" and _has_audio(video_path)
    codec = codec or ("flac" if container_kind(out_path) == "mkv" else "aac")
    samples, scan = _audio_samples(audio, sample_rate), scan_video(video_path)
    video_samples = samples if scan is None else max(1, int(round((scan.end - origin) * sample_rate)))
    # audio shorter than the video (by more than half a frame) cuts the video: it is re-encoded up to there
    cut = scan is not None and samples < video_samples - 0.5 * sample_rate / scan.fps
    tmp = out_path.with_name(f".{out_path.stem}.tmp{out_path.suffix}")
    job = dict(video_path=video_path, audio=audio, sample_rate=sample_rate, tmp=tmp, codec=codec, origin=origin,
               keep=has_original and original_audio == "keep", mix=has_original and original_audio == "mix",
               end=origin + samples / sample_rate if cut else None, limit=min(samples, video_samples))
    try:
        with open_input(video_path) as source:
            in_video = video_stream(source)
            if in_video is None:
                raise MuxError(f"{video_path} holds no video stream")
            name, kind = codec_name(in_video), container_kind(out_path)
        try:
            mode, why = video_mode(video_codec, name, kind, cut=cut)
        except CannotCopy as error:
            raise MuxError(str(error)) from None

        def re_encode(why: str) -> tuple[str, str, str | None]:
            log.info("%s: re-encoding the video as H.264: %s", video_path.name, why)
            return "h264", why, _write(mode="h264", **job)

        try:
            kept = _write(mode=mode, **job)
        except CannotCopy as error:  # the container refused the codec, or its timestamps are beyond repair
            if video_codec == "copy":
                raise MuxError(f"cannot copy the video into {out_path.name}: {error}; use video_codec=auto "
                               f"(re-encodes as H.264) or an .mkv/.mov output") from None
            mode, why, kept = re_encode(str(error))
        except av.FFmpegError as error:  # e.g. a .mov takes AV1 and VP9 streams but cannot write their header
            if mode != "copy" or video_codec == "copy":
                raise
            mode, why, kept = re_encode(f"the {kind} muxer refused the copied {name} stream "
                                        f"({error.strerror or error})")
        os.replace(tmp, out_path)
    except av.FFmpegError as error:
        raise MuxError(f"cannot write {out_path} ({error}); try original_audio=drop or an .mkv output") from error
    finally:
        tmp.unlink(missing_ok=True)
    return Muxed(out_path, "copied" if mode == "copy" else f"re-encoded as h264 ({why})", kept)


def _write(*, video_path: Path, audio, sample_rate: int, tmp: Path, codec: str, origin: float, keep: bool,
           mix: bool, end: float | None, limit: int, mode: str) -> str | None:
    """One attempt at the output file; returns how the original audio was kept (None: not kept)."""
    with open_input(video_path) as source, av.open(str(tmp), mode="w") as sink:
        in_video = video_stream(source)
        # The output's clock starts at the first video frame (``origin`` on the input's): the generated audio
        # starts at 0 too, so the AAC encoder's priming samples fall before 0 and every player skips them.
        if mode == "copy":
            video = CopiedVideo(sink, in_video, origin)
        else:
            video = EncodedVideo(sink, in_video, end, origin)
        generated = sink.add_stream(codec, rate=sample_rate, layout="mono")
        kept = KeptAudio(sink, source.streams.audio[0], container_kind(tmp), end, origin) if keep else None
        track = _GeneratedTrack(sink, generated, audio_blocks(audio, sample_rate), sample_rate, 0,
                                str(video_path) if mix else None, origin, limit)

        def put(packets: list[av.Packet]) -> None:
            for packet in packets:
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is not None and packet.time_base is not None:
                    track.write_until(float(stamp * packet.time_base) + 1.0)  # audio leads by <= 1 s
                sink.mux(packet)

        for packet in source.demux(*([in_video] + ([kept.template] if kept is not None else []))):
            if packet.stream.index == in_video.index:
                put(video.push(packet))
            else:
                for ready in kept.push(packet):
                    sink.mux(ready)
        put(video.flush())
        if kept is not None:
            for ready in kept.flush():
                sink.mux(ready)
        track.finish()
    return None if kept is None else kept.mode
