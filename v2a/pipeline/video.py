"""A whole video in, its soundtrack out: the windowed generation behind ``V2APipeline(video=...)`` and
``V2APipeline.generate_to``.

A video of any length is cut into training-length windows (``windowed``), generated a few windows per
batch, crossfaded in mel space, vocoded and watermarked in overlapping chunks (``chunked``): pieces of
audio come out in order, and memory does not grow with the video's length. The input is a file (read
window by window, scaled inside the decoder) or frames already in memory.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf
import torch

from v2a.media import (
    MAX_DURATION_S,
    MAX_RESOLUTION,
    VideoInput,
    mux,
    open_video,
    read_windows,
    square_resize,
)
from v2a.pipeline.aligner import LipAligner
from v2a.pipeline.chunked import overlapped_map
from v2a.pipeline.transcript_timing import transcript_timeline
from v2a.pipeline.windowed import stream_mel, window_starts
from v2a.shapes import ClipSpec
from v2a.text.phoneme_timing import shift
from v2a.text.subtitles import is_subtitles, parse_subtitles, window_transcripts
from v2a.utils.timing import StageClock, maybe

if TYPE_CHECKING:
    from v2a.pipeline.pipeline import V2APipeline

MUX_SUFFIXES = (".mp4", ".mkv", ".mov")


@dataclass(frozen=True)
class Streaming:
    """How much is held at once: windows per denoiser batch, vocoder and watermark chunk lengths."""

    batch_windows: int = 8
    vocoder_chunk_s: float = 10.0
    vocoder_pad_s: float = 0.25  # context each side; neighbouring chunks crossfade over 2 x pad
    watermark_chunk_s: float = 30.0
    watermark_pad_s: float = 1.0
    max_resolution: int = MAX_RESOLUTION
    max_duration_s: float = MAX_DURATION_S


@dataclass(frozen=True)
class Frames:
    """Frames already in memory, on the model's grid: uint8 [T, 3, S, S] at the model's fps, showing ``duration``
    seconds of video (the last frame may be on screen for less than a model frame)."""

    frames: torch.Tensor
    duration: float

    def read(self, starts: list[int], count: int) -> torch.Tensor:
        """``count`` frames from each start -> [len(starts), count, 3, S, S]; past the end the last frame holds."""
        index = torch.as_tensor(starts)[:, None] + torch.arange(count)[None, :]
        return self.frames[index.clamp(max=self.frames.shape[0] - 1)]


Source = VideoInput | Frames
VideoLike = str | Path | VideoInput | np.ndarray | torch.Tensor


def as_frames(frames: np.ndarray | torch.Tensor, spec: ClipSpec, fps: float | None = None) -> Frames:
    """uint8 frames [T, H, W, 3] or [T, 3, H, W] of any size at ``fps`` (default: the model's) -> the model's
    grid: centre square, area-scaled to the model's size, the frame on screen at each model frame time."""
    array = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if array.ndim != 4 or 3 not in (array.shape[1], array.shape[3]) or array.shape[0] == 0:
        raise ValueError(f"frames must be uint8 [T, H, W, 3] or [T, 3, H, W] with T >= 1, got shape {array.shape}")
    if array.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (0..255), got {array.dtype}")
    if array.shape[3] != 3:  # [T, 3, H, W] -> [T, H, W, 3]
        array = array.transpose(0, 2, 3, 1)
    fps = float(fps or spec.fps)
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    duration = array.shape[0] / fps
    if fps != spec.fps:  # the frame on screen at each model frame time
        count = max(1, math.ceil(array.shape[0] / fps * spec.fps - 1e-6))
        index = np.minimum(np.floor(np.arange(count) * fps / spec.fps + 1e-6).astype(np.int64), array.shape[0] - 1)
        array = array[index]
    # a few frames at a time: the resize works in float, 4x the bytes of the frames it is given
    square = np.concatenate([square_resize(array[i : i + 64], spec.image_size) for i in range(0, len(array), 64)])
    return Frames(torch.from_numpy(square).permute(0, 3, 1, 2).contiguous(), duration)


def open_source(video: VideoLike | Frames, spec: ClipSpec, *, fps: float | None = None,
                streaming: Streaming = Streaming()) -> Source:
    """A file path (probed: :class:`v2a.media.VideoInputError` says why it is unusable), an opened video,
    or frames in memory."""
    if isinstance(video, (VideoInput, Frames)):
        return video
    if isinstance(video, (str, Path)):
        return open_video(video, max_resolution=streaming.max_resolution, max_duration_s=streaming.max_duration_s)
    return as_frames(video, spec, fps)


def check_texts(pipe: V2APipeline, texts: dict[str, Any]) -> None:
    """Refuse text that the model cannot use, instead of silently ignoring it."""
    given = [name for name, value in texts.items() if value]
    unsupported = [name for name in given if name not in pipe.text_inputs]
    if unsupported:
        raise ValueError(f"this model has no conditioning for {', '.join(unsupported)} "
                         f"(it supports: {', '.join(pipe.text_inputs) or 'video only'})")
    # text the tokenizer reads (a transcript heard as a phoneme track is phonemized instead)
    tokenized = [n for n in given if isinstance(texts[n], str) and (n != "transcript" or "transcript" in pipe.net.text_streams)]
    if tokenized and pipe.text_conditioning.tokenizer is None:
        raise ValueError("this model carries no tokenizer, so its text inputs cannot be tokenised "
                         "(a text model's checkpoint or export holds tokenizer.model)")


@dataclass
class AudioStream:
    """The soundtrack as it is made: ``pieces`` in order, ``samples`` long in all, at ``sample_rate``."""

    pieces: Iterator[np.ndarray]
    sample_rate: int
    samples: int
    windows: int


def _watermark_grid(watermarker: Any, sample_rate: int) -> int:
    """Samples per period of the watermark pattern (chunks aligned to it keep one coherent mark), or 1."""
    params = getattr(watermarker, "params", None)
    try:
        period = params.period_frames * params.hop * sample_rate / params.analysis_sr
    except AttributeError:
        return 1
    return int(period) if float(period).is_integer() else 1


def _on_grid(seconds: float, rate: int, grid: int) -> int:
    return max(grid, int(round(seconds * rate / grid)) * grid)


def _first(pieces: Iterable[np.ndarray], count: int) -> Iterator[np.ndarray]:
    """The first ``count`` samples of a stream of pieces."""
    for piece in pieces:
        if count <= 0:
            return
        yield piece[:count]
        count -= len(piece)


@torch.no_grad()
def stream_audio(pipe: V2APipeline, video: Source, *, steps: int | None = None, cfg_scale: float | None = None,
                 seed: int = 0, overlap_s: float = 0.5, duration: float | None = None,
                 texts: dict[str, str | None] | None = None, aligner: LipAligner | None = None,
                 watermarker: Any = None, streaming: Streaming = Streaming(), clock: StageClock | None = None,
                 progress: Callable[[int], object] | None = None) -> AudioStream:
    """The soundtrack of ``video`` (from its first frame, ``duration`` seconds or all of it), made lazily.

    ``texts``: ``prompt`` / ``negative_prompt`` / ``transcript``. Each window gets the whole prompt; a transcript
    in subtitle form (SRT/WebVTT) gives each window only the lines spoken during it. A model that hears the
    transcript as a phoneme track gets the phonemes each window holds, timed by the subtitles or the lip-driven
    ``aligner``. ``watermarker`` (``.embed(audio, rate)``) marks the audio before anyone sees it. ``clock``
    times the stages (decode+resize, visual encoder, sampling, vocoder, watermark).
    """
    spec = pipe.spec
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if overlap_s < 0:
        raise ValueError(f"overlap_s must be >= 0, got {overlap_s}")
    if duration is not None and duration <= 0:
        raise ValueError(f"duration must be positive, got {duration}")
    given = {name: value for name, value in (texts or {}).items() if value}
    check_texts(pipe, given)
    seconds = min(duration, video.duration) if duration else video.duration
    # every model frame that starts on screen before the end; the audio is then cut to the exact length
    n_frames = max(1, math.ceil(seconds * spec.fps - 1e-6))
    n_samples = max(1, int(round(seconds * spec.sample_rate)))
    generator = torch.Generator().manual_seed(seed)
    window = spec.n_video_frames
    n_windows = len(window_starts(n_frames, window, round(overlap_s * spec.fps))) if n_frames >= window else 1
    read = video.read if isinstance(video, Frames) else (lambda starts, count: read_windows(video, starts, count, spec))

    transcript = given.get("transcript")
    cues = parse_subtitles(transcript) if transcript and is_subtitles(transcript) else None
    timeline = transcript_timeline(pipe, read, transcript, n_frames, aligner=aligner)

    def mel_for(frames: torch.Tensor, starts: list[int]) -> torch.Tensor:
        texts = given if cues is None else {**given, "transcript": window_transcripts(cues, starts, window, spec.fps)}
        if timeline is not None:
            texts = {**texts, "phonemes": [shift(timeline, start / spec.fps) for start in starts]}
        return pipe.generate_mel(frames, steps=steps, cfg_scale=cfg_scale, generator=generator, **texts)

    def vocode(mel: np.ndarray) -> np.ndarray:
        return pipe.vocoder(torch.from_numpy(mel)[None].to(pipe.device))[0].float().cpu().numpy()

    def pieces() -> Iterator[np.ndarray]:
        unwatch = clock.watch("visual encoder", pipe.net.visual_encoder) \
            if clock is not None and pipe.net.visual_encoder is not None else None
        try:
            mel = stream_mel(maybe(clock, "decode+resize", read), n_frames, spec, maybe(clock, "sampling", mel_for),
                             overlap_s=overlap_s, batch_windows=streaming.batch_windows, progress=progress)
            mel_rate = spec.sample_rate / spec.hop_length
            audio = overlapped_map((m.numpy() for m in mel), maybe(clock, "vocoder", vocode),
                                   chunk=round(streaming.vocoder_chunk_s * mel_rate),
                                   pad=round(streaming.vocoder_pad_s * mel_rate), scale=spec.hop_length)
            if watermarker is not None:
                grid = _watermark_grid(watermarker, spec.sample_rate)
                embed = maybe(clock, "watermark", lambda a: watermarker.embed(a, spec.sample_rate))
                audio = overlapped_map(audio, embed, chunk=_on_grid(streaming.watermark_chunk_s, spec.sample_rate, grid),
                                       pad=_on_grid(streaming.watermark_pad_s, spec.sample_rate, grid))
            for piece in _first(audio, n_samples):
                yield np.asarray(piece, dtype=np.float32)
        finally:
            if unwatch is not None:
                unwatch()

    return AudioStream(pieces(), spec.sample_rate, n_samples, n_windows)


def write_stream(path: Path, pieces: Iterable[np.ndarray], sample_rate: int) -> int:
    """Write audio pieces to ``path`` (wav or flac by suffix) through a temp file; returns the samples written."""
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    try:
        with sf.SoundFile(os.fsencode(tmp), "w", samplerate=sample_rate, channels=1,  # bytes: any file name
                          format=path.suffix.lstrip(".").upper()) as handle:
            for piece in pieces:
                handle.write(np.clip(piece, -1, 1))
                count += len(piece)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return count


def write_result(stream: AudioStream, video: VideoInput, out: Path, *, original_audio: str = "drop",
                 audio_format: str = "wav", video_codec: str = "auto", clock: StageClock | None = None,
                 settings: dict | None = None, started: float | None = None) -> dict:
    """Write ``out`` (the video stream copied, the generated audio muxed), the audio file and the json sidecar
    beside it; all of a result or none of it. Returns the sidecar (``elapsed_s``: since ``started``, default now;
    the stream is lazy, so writing it is generating it)."""
    if audio_format not in ("wav", "flac"):
        raise ValueError(f"audio_format must be wav or flac, got {audio_format!r}")
    started = time.perf_counter() if started is None else started
    out.parent.mkdir(parents=True, exist_ok=True)
    audio_path = out.with_suffix(f".{audio_format}")
    samples = write_stream(audio_path, stream.pieces, stream.sample_rate)
    try:
        with clock("mux") if clock is not None else nullcontext():
            muxed = mux(video.path, audio_path, stream.sample_rate, out, original_audio=original_audio,
                        origin=video.info.origin, video_codec=video_codec)
    except BaseException:
        audio_path.unlink(missing_ok=True)
        raise
    seconds = samples / stream.sample_rate
    elapsed = time.perf_counter() - started
    sidecar = {"input": str(video.path), "video": str(out), "audio": str(audio_path), "duration_s": seconds,
               "sample_rate": stream.sample_rate, "input_duration_s": round(video.duration, 6),
               "input_rotation": video.info.rotation, "muxed_video": muxed.video, "kept_audio": muxed.original_audio,
               "windows": stream.windows, **(settings or {}),
               "elapsed_s": round(elapsed, 3), "rtf": round(elapsed / max(seconds, 1e-9), 4)}
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(sidecar, indent=2, ensure_ascii=False))
    os.replace(tmp, out.with_suffix(".json"))
    return sidecar


def each_video(video: Any, **texts: Any) -> tuple[bool, list[tuple[Any, dict[str, Any]]]]:
    """(whether ``video`` is a list, [(one video, its texts)]): a text is one value for every video, or a list of
    one per video."""
    many = isinstance(video, list)
    videos = video if many else [video]
    if video is None or not videos:
        raise ValueError("give a video: a file path, frames [T, H, W, 3], or a list of them")
    for name, value in texts.items():
        if isinstance(value, list) and len(value) != len(videos):
            raise ValueError(f"{name}: {len(value)} values for {len(videos)} videos (one per video, or one for all)")
    return many, [(item, {name: value[index] if isinstance(value, list) else value for name, value in texts.items()})
                  for index, item in enumerate(videos)]


def output_path(video: Any, out: str | Path, many: bool) -> Path:
    """The muxed video path for one input: ``out`` itself, or ``out/NAME_v2a.mp4`` (.mkv/.mov kept) for many."""
    if many:
        name = getattr(video, "path", video)
        if not isinstance(name, (str, Path)):
            raise ValueError("a list of outputs needs video files (frames have no name to write them under)")
        name = Path(name)
        out = Path(out) / f"{name.stem}_v2a{name.suffix if name.suffix.lower() in MUX_SUFFIXES else '.mp4'}"
    out = Path(out)
    if out.suffix.lower() not in MUX_SUFFIXES:
        raise ValueError(f"out={out}: the output video must end in one of {', '.join(MUX_SUFFIXES)}")
    return out
