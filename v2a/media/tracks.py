"""The streams written beside the generated audio: the input's video and, with ``original_audio=keep``, its sound.

Video is copied packet by packet when the output container holds its codec: every non-empty packet goes in,
and timestamps the demuxer left out (MKV gives its first B-frame packets, keyframe included, no ``dts``) are
filled in rather than the packet dropped. When the codec cannot be copied (Cinepak, MS-MPEG4, WMV, Theora,
DV ... into an mp4) or the video is cut short, it is decoded and re-encoded as H.264. A kept sound track is
copied when the container holds its codec, else re-encoded losslessly at its own rate, channels and depth
(FLAC; PCM in a .mov): an mp4 ``ipcm`` track plays as noise in many players.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

from v2a.media.probe import frame_rate

VIDEO_CODECS = ("auto", "copy", "h264")  # auto: copy when the container holds the codec, else H.264
H264_ENCODER = "libx264"
H264_OPTIONS = {"crf": "18", "preset": "veryfast"}  # archive footage: visually lossless, not small
# What ``auto`` copies into an mp4: codecs that common players decode there. .mov and .mkv take whatever their
# muxer accepts (ProRes, DV, Cinepak in .mov; Theora, VP8 in .mkv).
MP4_VIDEO = frozenset({"h264", "hevc", "av1", "vp9", "mpeg4"})
MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "flac", "opus"})
MAX_PENDING = 64  # packets held while waiting for a timestamp to fill earlier ones from


class CannotCopy(Exception):
    """The video stream cannot be copied into this output (codec refused, timestamps beyond repair)."""


def container_kind(path: str | Path) -> str:
    """``mp4``, ``mov`` or ``mkv``, by the output's suffix (``.m4v`` is an mp4)."""
    suffix = Path(path).suffix.lower()
    return {".mov": "mov", ".mkv": "mkv"}.get(suffix, "mp4")


def codec_name(stream) -> str:
    """The codec's own name (``av1``), not the decoder's (``libdav1d``)."""
    return stream.codec_context.codec.canonical_name


def video_mode(video_codec: str, codec: str, kind: str, *, cut: bool) -> tuple[str, str]:
    """("copy" or "h264", why it is re-encoded) for a source ``codec`` going into a ``kind`` container."""
    if video_codec not in VIDEO_CODECS:
        raise ValueError(f"video_codec must be one of {VIDEO_CODECS}, got {video_codec!r}")
    if video_codec == "h264":
        return "h264", "video_codec=h264"
    if cut:
        if video_codec == "copy":
            raise CannotCopy("the audio is shorter than the video, which must be cut to it, and a copied video can "
                             "only end at a keyframe: use video_codec=auto or h264 (re-encodes)")
        return "h264", "cut to the audio's length (a copied video can only end at a keyframe)"
    if video_codec == "auto" and kind == "mp4" and codec not in MP4_VIDEO:
        return "h264", f"{codec} video does not play from an mp4 (an .mkv or .mov output may copy it)"
    return "copy", ""


def _ticks(stream) -> int:
    """One frame in the stream's time base (at least one tick)."""
    fps = frame_rate(stream) or 25.0
    return max(1, round(1 / (fps * stream.time_base))) if stream.time_base else 1


def _shifted(value: int | None, offset: int) -> int | None:
    return None if value is None else value - offset


class CopiedVideo:
    """The input's video, packet by packet; each packet gets a dts (increasing, <= pts), a pts and a duration.

    Packets without a dts wait (up to :data:`MAX_PENDING`) for the next one that has it, and are spaced a frame
    apart before it, as an encoder would have stamped them; without any later dts they follow the last one.
    Timestamps move ``origin`` seconds earlier, so the first frame is at 0 as the generated audio is.
    """

    def __init__(self, sink, template, origin: float = 0.0) -> None:
        try:
            self.out = sink.add_stream_from_template(template, opaque=True)
        except (ValueError, av.FFmpegError) as error:
            raise CannotCopy(f"the {sink.format.name} container cannot hold {codec_name(template)} video "
                             f"({error})") from None
        self.step = _ticks(template)
        self.offset = round(origin / template.time_base) if template.time_base else 0
        self.pending: list[av.Packet] = []
        self.last: int | None = None  # the last dts given out

    def push(self, packet: av.Packet) -> list[av.Packet]:
        if not packet.size:  # the demuxer's end-of-stream marker
            return []
        packet.pts, packet.dts = _shifted(packet.pts, self.offset), _shifted(packet.dts, self.offset)
        if not packet.duration:
            packet.duration = self.step
        if packet.dts is None:
            self.pending.append(packet)
            return self._forward(self.pending.pop(0)) if len(self.pending) > MAX_PENDING else []
        return self._backward(packet.dts) + self._stamp(packet, packet.dts)

    def flush(self) -> list[av.Packet]:
        ready = []
        while self.pending:
            ready += self._forward(self.pending.pop(0))
        return ready

    def _backward(self, known: int) -> list[av.Packet]:
        """Stamp the waiting packets a frame apart before ``known`` (never at or below the last dts)."""
        ready = []
        count = len(self.pending)
        for number, packet in enumerate(self.pending):
            dts = known - (count - number) * self.step
            if packet.pts is not None:
                dts = min(dts, packet.pts)
            ready += self._stamp(packet, dts)
        self.pending = []
        return ready

    def _forward(self, packet: av.Packet) -> list[av.Packet]:
        """Stamp a packet that has no later dts to go by: its pts (no reordering), else a frame after the last."""
        after = None if self.last is None else self.last + self.step
        dts = packet.pts if packet.pts is not None else after if after is not None else 0
        if after is not None and packet.pts is not None:
            dts = min(packet.pts, after)
        return self._stamp(packet, dts)

    def _stamp(self, packet: av.Packet, dts: int) -> list[av.Packet]:
        if self.last is not None and dts <= self.last:
            dts = self.last + 1
        if packet.pts is None:
            packet.pts = dts
        if dts > packet.pts:
            raise CannotCopy(f"packet timestamps cannot be repaired (pts {packet.pts} before dts {dts})")
        packet.dts, self.last = dts, dts
        packet.stream = self.out
        return [packet]


class EncodedVideo:
    """The input's video decoded and encoded as H.264 (yuv420p, even size, the source's timestamps less
    ``origin`` seconds, its aspect), up to ``end`` seconds on the input's clock. Corrupt packets are dropped."""

    def __init__(self, sink, template, end: float | None, origin: float = 0.0) -> None:
        source = template.codec_context
        rate = Fraction(frame_rate(template) or 25).limit_denominator(1001)
        self.out = sink.add_stream(H264_ENCODER, rate=rate)
        self.width, self.height = source.width + source.width % 2, source.height + source.height % 2
        self.out.width, self.out.height, self.out.pix_fmt = self.width, self.height, "yuv420p"
        self.out.options = dict(H264_OPTIONS)
        self.out.codec_context.time_base = template.time_base  # timestamps pass through unchanged
        if source.sample_aspect_ratio:
            self.out.codec_context.sample_aspect_ratio = source.sample_aspect_ratio
        self.time_base, self.step = template.time_base, _ticks(template)
        self.end = None if end is None else end / float(template.time_base)  # frames starting before it
        self.offset = round(origin / template.time_base)
        self.last: int | None = None
        self.rotated = False

    def push(self, packet: av.Packet) -> list[av.Packet]:
        try:
            frames = packet.decode()
        except av.FFmpegError:  # a corrupt packet: its frame is skipped, the previous one stays on screen
            return []
        ready = []
        for frame in frames:
            ready += self._encode(frame)
        return ready

    def _encode(self, frame: av.VideoFrame) -> list[av.Packet]:
        pts = frame.pts if frame.pts is not None else (0 if self.last is None else self.last + self.step)
        if (self.last is not None and pts <= self.last) or (self.end is not None and pts >= self.end):
            return []
        if not self.rotated:
            self.rotated = True
            if frame.rotation:
                self.out.set_display_rotation(frame.rotation)
        picture = frame.reformat(width=self.width, height=self.height, format="yuv420p")
        picture.pts, picture.time_base, self.last = pts - self.offset, self.time_base, pts
        return self._timed(self.out.encode(picture))

    def flush(self) -> list[av.Packet]:
        return self._timed(self.out.encode(None))

    def _timed(self, packets: list[av.Packet]) -> list[av.Packet]:
        for packet in packets:
            if not packet.duration:
                packet.duration = self.step
        return packets


class KeptAudio:
    """The input's first sound track as a second track: copied, or re-encoded losslessly when the container
    does not hold its codec; moved ``origin`` seconds earlier as the video is, and cut at ``end`` (input clock)."""

    def __init__(self, sink, template, kind: str, end: float | None, origin: float = 0.0) -> None:
        self.template, self.end, self.origin = template, end, origin
        self.offset = round(origin / template.time_base) if template.time_base else 0
        self.out = None
        codec = codec_name(template)
        if kind != "mp4" or codec in MP4_AUDIO:
            try:
                self.out = sink.add_stream_from_template(template, opaque=True)
                self.mode = "copied"
            except (ValueError, av.FFmpegError):
                self.out = None
        if self.out is None:
            context = template.codec_context
            deep = context.format is None or context.format.bytes > 2  # 24/32-bit or float: keep 24 bits
            encoder = ("pcm_s24le" if deep else "pcm_s16le") if kind == "mov" else "flac"
            self.out = sink.add_stream(encoder, rate=context.sample_rate, layout=context.layout.name)
            self.out.format = "s32" if deep else "s16"  # FLAC and pcm_s24le store 24 of the 32 bits
            self.out.codec_context.open()
            self.resampler = av.AudioResampler(format=self.out.format.name, layout=context.layout.name,
                                               rate=context.sample_rate,
                                               frame_size=self.out.codec_context.frame_size or None)
            self.mode = f"re-encoded as {encoder} ({codec} audio is not kept as is in .{kind} files)"
            self.written: int | None = None

    def push(self, packet: av.Packet) -> list[av.Packet]:
        if self.mode == "copied":
            if not packet.size or self._past_end(packet.pts, packet.time_base):
                return []
            packet.pts, packet.dts = _shifted(packet.pts, self.offset), _shifted(packet.dts, self.offset)
            if packet.dts is None:
                packet.dts = packet.pts
            packet.stream = self.out
            return [packet]
        try:
            frames = packet.decode()
        except av.FFmpegError:
            return []
        ready = []
        for frame in frames:
            if self._past_end(frame.pts, frame.time_base):
                continue
            ready += self._encode(frame)
        return ready

    def flush(self) -> list[av.Packet]:
        if self.mode == "copied":
            return []
        return self._encode(None) + list(self.out.encode(None))

    def _past_end(self, pts: int | None, time_base) -> bool:
        return self.end is not None and pts is not None and time_base is not None and float(pts * time_base) >= self.end

    def _encode(self, frame: av.AudioFrame | None) -> list[av.Packet]:
        rate = self.out.codec_context.sample_rate
        if frame is not None and self.written is None:
            self.written = round((frame.time - self.origin) * rate) if frame.time is not None else 0
        ready = []
        for piece in self.resampler.resample(frame):
            piece.pts, piece.time_base = self.written or 0, Fraction(1, rate)
            self.written = (self.written or 0) + piece.samples
            ready += self.out.encode(piece)
        return ready
