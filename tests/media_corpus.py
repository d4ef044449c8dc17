"""The damaged and unusual input corpus, made on the fly with PyAV (no binaries in the repository).

What archivists and creators bring: archive codecs (Cinepak, MS-MPEG4, WMV, FLV1, H.263, DV, HuffYUV, ProRes,
GIF, AV1, Theora, MPEG-1/2, MPEG-4 ASP with packed B-frames, HEVC, VP9), B-frame MKV/MP4, truncated files, a
thumbnail track before the film, 192 kHz 24-bit PCM, garbage, a FIFO, and file names with every awkward
character (Latin-1 bytes on disk included). Frame ``i`` is a uniform grey ``frame_value(i)`` so a test can tell
which frame it sees. Tiny pictures and 1-2 s clips keep the whole corpus under a few seconds to build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from tests.data.videos import frame_value


@dataclass(frozen=True)
class Case:
    name: str  # the file name (str; Latin-1 bytes on disk appear as surrogates)
    expect: str  # "ok": a result is written; "error": a clear refusal; "any": either, cleanly (damage-dependent)
    build: Callable[[Path], None]


def _picture(index: int, width: int, height: int) -> np.ndarray:
    image = np.full((height, width, 3), frame_value(index), np.uint8)
    image[:4, :4] = 255
    return image


def _write(container, stream, frames) -> None:
    """Encode ``frames`` (av frames) into ``stream``, flush it, and mux every packet."""
    for frame in [*frames, None]:
        for packet in stream.encode(frame):
            container.mux(packet)


def encode(path: Path, codec: str, *, fmt: str | None = None, size: tuple[int, int] = (64, 48), fps: int = 25,
           frames: int = 25, pix_fmt: str = "yuv420p", options: dict | None = None, b_frames: int | None = None,
           audio: str | None = None, audio_rate: int = 16000) -> Path:
    """A video of ``frames`` grey frames in ``codec`` (and a click track in ``audio``), in ``fmt``."""
    width, height = size
    with av.open(str(path), "w", format=fmt) as container:
        video = container.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        if options:
            video.options = options
        if b_frames is not None:
            video.codec_context.max_b_frames = b_frames
        sound = container.add_stream(audio, rate=audio_rate, layout="stereo") if audio else None
        if sound is not None and not audio.startswith("pcm"):
            sound.bit_rate = 64000  # WMA has no default
        _write(container, video, (av.VideoFrame.from_ndarray(_picture(index, width, height), format="rgb24")
                                  for index in range(frames)))
        if sound is not None:
            _clicks(container, sound, audio_rate, frames / fps)
    return path


def _clicks(container, sound, rate: int, seconds: float) -> None:
    signal = np.zeros(int(seconds * rate), np.float32)
    signal[rate // 2 : rate // 2 + 24] = 0.8  # a click at 0.5 s
    if not sound.codec_context.is_open:  # its frame size (1152 for MP2, 1024 for AAC) is known once open
        sound.codec_context.open()
    resampler = av.AudioResampler(format=sound.format.name, layout="stereo", rate=rate,
                                  frame_size=sound.codec_context.frame_size or 1024)
    frame = av.AudioFrame.from_ndarray(np.stack([signal, signal]), format="fltp", layout="stereo")
    frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
    _write(container, sound, resampler.resample(frame) + resampler.resample(None))


def pcm_192k(path: Path) -> None:
    """H.264 with a 192 kHz, 24-bit stereo PCM track (a studio transfer)."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        sound = container.add_stream("pcm_s24le", rate=192000, layout="stereo")
        _write(container, video, (av.VideoFrame.from_ndarray(_picture(index, 32, 32), format="rgb24") for index in range(25)))
        tone = (0.5 * np.sin(2 * np.pi * 1000 * np.arange(192000) / 192000)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([tone, -tone]), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = 192000, 0, Fraction(1, 192000)
        _write(container, sound, av.AudioResampler(format="s32", layout="stereo", rate=192000).resample(frame))


def thumbnail_first(path: Path) -> None:
    """A 1-frame 32x32 thumbnail track (no cover-art flag) before the 64x48 film."""
    with av.open(str(path), "w") as container:
        thumb = container.add_stream("libx264", rate=25)
        thumb.width, thumb.height, thumb.pix_fmt = 32, 32, "yuv420p"
        film = container.add_stream("libx264", rate=25)
        film.width, film.height, film.pix_fmt = 64, 48, "yuv420p"
        _write(container, thumb, [av.VideoFrame.from_ndarray(np.full((32, 32, 3), 250, np.uint8), format="rgb24")])
        _write(container, film, (av.VideoFrame.from_ndarray(_picture(index, 64, 48), format="rgb24") for index in range(40)))


def truncated(source: Callable[[Path], object], fraction: float) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        full = path.with_name(".full" + path.suffix)
        source(full)
        data = full.read_bytes()
        full.unlink()
        path.write_bytes(data[: int(len(data) * fraction)])
    return build


def theora(path: Path) -> None:
    """Theora needs libtheora, which PyAV's ffmpeg lacks: the system ffmpeg makes it when it can."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise FileNotFoundError("no ffmpeg with libtheora")
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=s=64x48:r=25:d=1", "-c:v",
                    "libtheora", str(path)], check=True, timeout=60)


def _good(path: Path) -> None:
    encode(path, "libx264", size=(48, 32), frames=20, audio="aac", options={"preset": "ultrafast"})


LATIN1_NAME = os.fsdecode(b"Bande annonce caf\xe9 cr\xe8me.mp4")  # Latin-1 bytes on disk: not UTF-8
ODD_NAMES = ("Reel (1967) [tape 2].mp4", "a,b=c;d.mp4", "it's \"quoted\".mp4", "new\nline.mp4", "vidéo_音 film.mp4",
             "${oc.env:HOME}.mp4", "-dash.mp4", "back\\slash\\.mp4", LATIN1_NAME)

CASES = [
    # archive codecs and containers: each must give a playable muxed file
    Case("cinepak.avi", "ok", lambda p: encode(p, "cinepak", pix_fmt="rgb24", audio="pcm_s16le", audio_rate=22050)),
    Case("msmpeg4v2.avi", "ok", lambda p: encode(p, "msmpeg4v2", audio="mp2")),
    Case("msmpeg4v3.avi", "ok", lambda p: encode(p, "msmpeg4")),
    Case("wmv2.wmv", "ok", lambda p: encode(p, "wmv2", fmt="asf", audio="wmav2")),
    Case("flv1.flv", "ok", lambda p: encode(p, "flv", fmt="flv")),
    Case("h263.3gp", "ok", lambda p: encode(p, "h263", size=(128, 96), audio="aac")),
    Case("pal.dv", "ok", lambda p: encode(p, "dvvideo", fmt="dv", size=(720, 576), frames=8)),
    Case("huffyuv.avi", "ok", lambda p: encode(p, "huffyuv", pix_fmt="yuv422p")),
    Case("prores.mov", "ok", lambda p: encode(p, "prores", pix_fmt="yuv422p10le", audio="pcm_s16le")),
    Case("animation.gif", "ok", lambda p: encode(p, "gif", pix_fmt="rgb8", fps=10, frames=10)),
    Case("av1.mkv", "ok", lambda p: encode(p, "libsvtav1", size=(64, 64))),
    Case("theora.ogv", "ok", theora),
    Case("mpeg1.mpg", "ok", lambda p: encode(p, "mpeg1video", fmt="mpeg", audio="mp2")),
    Case("mpeg2.vob", "ok", lambda p: encode(p, "mpeg2video", fmt="vob", b_frames=2)),
    Case("mpeg4_packed_bframes.avi", "ok", lambda p: encode(p, "mpeg4", b_frames=2, frames=30)),
    Case("hevc.mkv", "ok", lambda p: encode(p, "libx265", options={"x265-params": "log-level=none"})),
    Case("vp9.webm", "ok", lambda p: encode(p, "libvpx-vp9", audio="libopus", audio_rate=48000)),
    # B-frames whose first packets carry no dts (MKV), and the same in MP4
    Case("bframes.mkv", "ok", lambda p: encode(p, "libx264", frames=50, options={"preset": "medium", "bf": "3"},
                                               audio="aac")),
    Case("bframes.mp4", "ok", lambda p: encode(p, "libx264", frames=50, options={"preset": "medium", "bf": "3"})),
    # damaged: the data ends before the header says
    Case("truncated.mkv", "ok", truncated(lambda p: encode(p, "libx264", frames=50, audio="aac"), 0.6)),
    Case("truncated.ts", "ok", truncated(lambda p: encode(p, "libx264", fmt="mpegts", frames=50), 0.6)),
    Case("truncated.avi", "ok", truncated(lambda p: encode(p, "mpeg4", frames=50, audio="pcm_s16le"), 0.6)),
    Case("truncated_end.mp4", "any", truncated(lambda p: encode(p, "libx264", frames=50), 0.85)),
    Case("truncated_half.mp4", "error", truncated(lambda p: encode(p, "libx264", frames=50), 0.5)),
    # unusual but valid
    Case("thumbnail_first.mp4", "ok", thumbnail_first),
    Case("thumbnail_first.mkv", "ok", thumbnail_first),
    Case("pcm_192k_24bit.mov", "ok", pcm_192k),
    Case("one_frame.mp4", "ok", lambda p: encode(p, "libx264", frames=1)),
    # not videos at all
    Case("garbage.mp4", "error", lambda p: p.write_bytes(bytes(range(256)) * 40)),
    Case("empty.mkv", "error", lambda p: p.write_bytes(b"")),
    Case("notes.avi", "error", lambda p: p.write_bytes(b"just some text\n" * 50)),
    Case("audio_only.mp4", "error", lambda p: _audio_only(p)),
    Case("fifo.mp4", "error", lambda p: os.mkfifo(p)),
    Case("folder.mov", "error", lambda p: p.mkdir()),
    # names: every one must work from the command line
    *[Case(name, "ok", _good) for name in ODD_NAMES],
]


def _audio_only(path: Path) -> None:
    with av.open(str(path), "w", format="mp4") as container:
        sound = container.add_stream("aac", rate=16000, layout="stereo")
        _clicks(container, sound, 16000, 1.0)


def build_corpus(root: Path) -> dict[str, Path]:
    """Every case that this machine can make, under ``root``; name -> path."""
    root.mkdir(parents=True, exist_ok=True)
    made = {}
    for case in CASES:
        path = root / case.name
        try:
            case.build(path)
        except (FileNotFoundError, subprocess.CalledProcessError, av.FFmpegError):
            if case.name == "theora.ogv":  # no encoder here: the case is left out, not failed
                continue
            raise
        made[case.name] = path
    return made


EXPECT = {case.name: case.expect for case in CASES}
