"""Every read, probe, decode, resample and mux of audio and video (PyAV / ffmpeg underneath).

One function per job, used by data preparation, the loaders, generation and evaluation alike:

- video: :func:`probe` a file, :func:`open_video` a user's video, :func:`read_frames` at times (upright,
  centre-cropped, scaled inside the decoder), :func:`read_windows` on the model's grid, :func:`decode_video`
  a shard clip;
- audio: :func:`decode_audio` any file or bytes, :func:`decode_mono` at a target rate, :func:`read_audio`
  on a video's clock, the one :func:`resample`, :func:`write_audio` atomically, :func:`codec_roundtrip`;
- shards: :func:`encode_mp4` / :func:`encode_flac`; output: :func:`mux` (or :func:`mux_audio`, the path
  alone): the video copied when the container holds its codec, else re-encoded (:mod:`v2a.media.tracks`).

Any file PyAV's ffmpeg demuxes is input (:data:`VIDEO_SUFFIXES` names them in folders); a path that is not a
regular file (a FIFO) is refused with :class:`NotAFile` instead of blocking.

Layer rule: imports only ``v2a.audio``, ``v2a.utils``, ``v2a.shapes`` and third-party libraries.
"""

from v2a.media.audio_io import (
    AudioReadError,
    as_2d,
    audio_blocks,
    codec_roundtrip,
    decode_audio,
    decode_mono,
    read_audio,
    resample,
    to_mono,
    write_audio,
)
from v2a.media.container import VIDEO_SUFFIXES, NotAFile
from v2a.media.encode import encode_flac, encode_mp4
from v2a.media.mux import AUDIO_MODES, Muxed, MuxError, mux, mux_audio
from v2a.media.probe import BadVideo, VideoInfo, VideoScan, probe, scan_video
from v2a.media.tracks import VIDEO_CODECS
from v2a.media.video import (
    MAX_DURATION_S,
    MAX_RESOLUTION,
    VideoInput,
    VideoInputError,
    decode_video,
    open_video,
    read_frames,
    read_windows,
    square_resize,
)

__all__ = [
    "AUDIO_MODES", "MAX_DURATION_S", "MAX_RESOLUTION", "VIDEO_CODECS", "VIDEO_SUFFIXES", "AudioReadError", "BadVideo",
    "MuxError", "Muxed", "NotAFile", "VideoInfo", "VideoInput", "VideoInputError", "VideoScan", "as_2d",
    "audio_blocks", "codec_roundtrip", "decode_audio", "decode_mono", "decode_video", "encode_flac", "encode_mp4",
    "mux", "mux_audio", "open_video", "probe", "read_audio", "read_frames", "read_windows", "resample",
    "scan_video", "square_resize", "to_mono", "write_audio",
]
