"""Generate audio for one video (or a folder of videos) and write audio, muxed video and sidecar json.

Everything streams: frames are read window by window, the joined mel is vocoded and watermarked in
overlapping chunks and written to the audio file as it comes, and the muxer reads that file back in
blocks. Peak memory is set by the window batch and the chunk sizes, not by the video's length.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from v2a.checkpoints.loading import CheckpointError
from v2a.generation.options import check_conditioning, check_numbers, model_sha256, read_text_option
from v2a.generation.outputs import (
    Results,
    Staged,
    candidate_path,
    check_not_inputs,
    list_videos,
    one_line,
    output_path,
    result_files,
    shared_stems,
)
from v2a.media import (
    MAX_DURATION_S,
    MAX_RESOLUTION,
    VIDEO_CODECS,
    VideoInput,
    mux,
    open_video,
    read_windows,
)
from v2a.pipeline.aligner import LipAligner
from v2a.pipeline.chunked import overlapped_map
from v2a.pipeline.pipeline import V2APipeline
from v2a.pipeline.transcript_timing import transcript_timeline
from v2a.pipeline.windowed import stream_mel, window_starts
from v2a.text.phoneme_timing import shift
from v2a.text.subtitles import is_subtitles, parse_subtitles, window_transcripts
from v2a.utils.jsonfiles import json_bytes

log = logging.getLogger(__name__)

AUDIO_FORMATS = ("wav", "flac")


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


def _watermark_grid(watermarker, sample_rate: int) -> int:
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


def _write_stream(path: Path, pieces, sample_rate: int) -> tuple[Path, int]:
    """Write audio pieces to ``path`` (wav or flac by suffix) through a temp file; returns (path, samples)."""
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    try:
        with sf.SoundFile(os.fsencode(tmp), "w", samplerate=sample_rate, channels=1,  # bytes: any file name
                          format=path.suffix.lstrip(".").upper()) as handle:
            for piece in pieces:
                handle.write(np.clip(np.asarray(piece, dtype=np.float32), -1, 1))
                count += len(piece)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path, count


@torch.no_grad()
def generate_for_video(module, video: VideoInput, out_video: Path, *, steps: int | None, cfg_scale: float | None,
                       seed: int, overlap_s: float, original_audio: str, duration: float | None,
                       audio_format: str = "wav", streaming: Streaming = Streaming(), watermarker=None,
                       settings: dict | None = None, texts: dict[str, str | None] | None = None,
                       aligner: LipAligner | None = None, video_codec: str = "auto") -> dict:
    """Generate, watermark, write audio + muxed video + sidecar json (all three or none); returns the sidecar.

    The audio lasts exactly as long as the muxed video: the whole video as its packets hold it (a truncated
    file ends where its data ends), or the first ``duration`` seconds, the video then cut there too (and
    re-encoded: a copied stream can only end at a keyframe). ``video_codec`` is :func:`v2a.media.mux`'s.

    ``texts``: ``prompt`` / ``negative_prompt`` / ``transcript`` for text models. Each window gets the whole
    prompt; a transcript in subtitle form (SRT/WebVTT) gives each window only the lines spoken during it,
    plain text gives every window all of it. A model that hears the transcript as a phoneme track gets the
    phonemes each window holds, timed by the subtitles or by the lip-driven ``aligner``.
    """
    started = time.perf_counter()
    spec = module.features.spec
    cut = duration is not None and duration < video.duration - 0.5 / video.fps
    seconds = duration if cut else video.duration
    if cut and video_codec == "copy":  # refused before any work
        raise ValueError(f"duration={duration:g} cuts the video, and a copied video can only end at a keyframe: "
                         "use video_codec=auto or h264 (re-encodes), or leave duration unset")
    # every model frame that starts on screen before the end; the audio is then cut to the exact length
    n_frames = max(1, math.ceil(seconds * spec.fps - 1e-6))
    n_samples = max(1, int(round(seconds * spec.sample_rate)))
    generator = torch.Generator().manual_seed(seed)
    given = {name: value for name, value in (texts or {}).items() if value}  # video-only calls stay unchanged
    window = spec.n_video_frames
    n_windows = len(window_starts(n_frames, window, round(overlap_s * spec.fps))) if n_frames >= window else 1
    bar = tqdm(total=n_windows, desc=video.path.name, unit="window", leave=False)

    transcript = given.get("transcript")
    cues = parse_subtitles(transcript) if transcript and is_subtitles(transcript) else None
    timeline = transcript_timeline(module, video, transcript, n_frames, aligner=aligner)

    def mel_for(frames: torch.Tensor, starts: list[int]) -> torch.Tensor:
        texts = given if cues is None else {**given, "transcript": window_transcripts(cues, starts, window, spec.fps)}
        if timeline is not None:
            texts = {**texts, "phonemes": [shift(timeline, start / spec.fps) for start in starts]}
        return module.generate_mel(frames, steps=steps, cfg_scale=cfg_scale, generator=generator, **texts)

    def vocode(mel: np.ndarray) -> np.ndarray:
        return module.vocoder(torch.from_numpy(mel)[None].to(module.device))[0].float().cpu().numpy()

    mel = stream_mel(lambda starts, count: read_windows(video, starts, count, spec), n_frames, spec, mel_for,
                     overlap_s=overlap_s, batch_windows=streaming.batch_windows, progress=bar.update)
    mel_rate = spec.sample_rate / spec.hop_length
    audio = overlapped_map((m.numpy() for m in mel), vocode, chunk=round(streaming.vocoder_chunk_s * mel_rate),
                           pad=round(streaming.vocoder_pad_s * mel_rate), scale=spec.hop_length)
    if watermarker is not None:  # before anything is written: no unmarked copy ever reaches disk
        grid = _watermark_grid(watermarker, spec.sample_rate)
        audio = overlapped_map(audio, lambda a: watermarker.embed(a, spec.sample_rate),
                               chunk=_on_grid(streaming.watermark_chunk_s, spec.sample_rate, grid),
                               pad=_on_grid(streaming.watermark_pad_s, spec.sample_rate, grid))
    out_video.parent.mkdir(parents=True, exist_ok=True)
    video_file, audio_file, json_file = result_files(out_video, audio_format)
    with Staged(video_file, audio_file, json_file) as staged:  # all of a result or none of it
        try:
            _, samples = _write_stream(staged.temp(audio_file), _first(audio, n_samples), spec.sample_rate)
        finally:
            bar.close()
        muxed = mux(video.path, staged.temp(audio_file), spec.sample_rate, staged.temp(video_file),
                    original_audio=original_audio, origin=video.info.origin, video_codec=video_codec)
        elapsed = time.perf_counter() - started
        sidecar = {"input": str(video.path), "video": str(video_file), "audio": str(audio_file),
                   "duration_s": samples / spec.sample_rate, "sample_rate": spec.sample_rate,
                   "input_duration_s": round(video.duration, 6), "input_rotation": video.info.rotation,
                   "cut_to_s": seconds if cut else None, "muxed_video": muxed.video,
                   "kept_audio": muxed.original_audio, "windows": n_windows, "watermarked": watermarker is not None,
                   "elapsed_s": round(elapsed, 3), "rtf": round(elapsed / max(samples / spec.sample_rate, 1e-9), 4),
                   **(settings or {}), "seed": seed}
        staged.temp(json_file).write_bytes(json_bytes(sidecar, indent=2))
        staged.commit()
    return sidecar


def generate(*, video: str, ckpt: str, out: str, steps: int | None = None, cfg_scale: float | None = None,
             seed: int = 0, overlap_s: float = 0.5, original_audio: str = "drop", duration: float | None = None,
             device: str = "cpu", watermarker=None, prompt: str | None = None, negative_prompt: str | None = None,
             transcript: str | None = None, num_candidates: int = 1, audio_format: str = "wav",
             vocoder: dict | None = None, streaming: dict | Streaming | None = None,
             watermark_settings: dict | None = None, num_threads: int | None = None,
             sampler: dict | None = None, aligner: str | None = None, video_codec: str = "auto") -> Results:
    """Generate for a file or a folder. A file that fails in a folder is logged and skipped, the others go on:
    the returned :class:`Results` lists the sidecars written, and ``failed`` the inputs that were not, with why.

    ``transcript`` (and ``prompt``, ``negative_prompt``) is text or the path of a UTF-8 text file.
    ``vocoder`` is a ``model.vocoder`` config (``_target_`` ...) that replaces the checkpoint's;
    ``sampler`` (``method``, ``schedule``, ``shift``; None keeps the model's) replaces its sampler settings.
    ``num_candidates`` > 1 writes ``OUT_cand{i}`` files generated with seeds ``seed + i``.
    ``aligner``: a lip-aligner export that times a plain-text transcript from the video (phoneme-track models).
    ``video_codec``: ``auto`` copies the video when the output container holds its codec, else re-encodes it as
    H.264; ``copy`` refuses what cannot be copied; ``h264`` always re-encodes. No output ever replaces an input.
    """
    check_numbers(num_candidates=num_candidates, steps=steps, duration=duration, overlap_s=overlap_s,
                  cfg_scale=cfg_scale)
    if original_audio not in ("drop", "keep", "mix"):
        raise ValueError(f"original_audio must be one of ('drop', 'keep', 'mix'), got {original_audio!r}")
    if audio_format not in AUDIO_FORMATS:
        raise ValueError(f"audio_format must be one of {AUDIO_FORMATS}, got {audio_format!r}")
    if video_codec not in VIDEO_CODECS:
        raise ValueError(f"video_codec must be one of {VIDEO_CODECS}, got {video_codec!r}")
    if num_threads is not None:
        if num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        torch.set_num_threads(num_threads)
    if not isinstance(streaming, Streaming):
        streaming = Streaming(**(streaming or {}))
    texts = {name: read_text_option(name, value) for name, value in
             (("prompt", prompt), ("negative_prompt", negative_prompt), ("transcript", transcript))}
    many = Path(video).is_dir()
    videos = list_videos(video)
    if not Path(ckpt).exists():  # the cheap checks first, the model loads last
        raise CheckpointError(f"checkpoint {ckpt} does not exist")
    stems = shared_stems(videos)

    def outputs(path: Path) -> list[Path]:
        return [file for index in range(num_candidates) for file in
                result_files(candidate_path(output_path(path, out, many, shared_stems=stems), index, num_candidates),
                             audio_format)]

    opened: dict[Path, VideoInput] = {}
    if not many:  # a bad video or out= fails before the model loads
        check_not_inputs(outputs(videos[0]), videos)
        opened[videos[0]] = open_video(videos[0], max_resolution=streaming.max_resolution,
                                       max_duration_s=streaming.max_duration_s)
    module = V2APipeline.from_pretrained(ckpt, device=device, vocoder=vocoder, sampler=sampler)
    check_conditioning(module, **texts)
    lip_aligner = LipAligner.from_pretrained(aligner, device=device) if aligner else None
    settings = {"ckpt": str(ckpt), "model_sha256": model_sha256(ckpt),
                "steps": module.sampler.steps if steps is None else steps,
                "sampler": {k: getattr(module.sampler, k, None) for k in ("method", "schedule", "shift")},
                "cfg_scale": module.cfg_scale if cfg_scale is None else cfg_scale,
                "overlap_s": overlap_s, "original_audio": original_audio, "duration": duration,
                "video_codec": video_codec,
                "num_candidates": num_candidates, "audio_format": audio_format, "device": str(module.device),
                "num_threads": torch.get_num_threads(), **texts,
                "vocoder": {"class": type(module.vocoder).__name__, "override": vocoder},
                "streaming": asdict(streaming), "watermark": watermark_settings if watermarker is not None else None,
                "torch": torch.__version__}
    results = Results()
    for path in tqdm(videos, desc="videos", unit="video", disable=len(videos) == 1):
        out_video = output_path(path, out, many, shared_stems=stems)
        try:
            check_not_inputs(outputs(path), videos)
            source = opened.get(path) or open_video(path, max_resolution=streaming.max_resolution,
                                                    max_duration_s=streaming.max_duration_s)
            for index in range(num_candidates):
                results.append(generate_for_video(
                    module, source, candidate_path(out_video, index, num_candidates), steps=steps,
                    cfg_scale=cfg_scale, seed=seed + index, overlap_s=overlap_s, original_audio=original_audio,
                    duration=duration, audio_format=audio_format, streaming=streaming, watermarker=watermarker,
                    settings=settings, texts=texts, aligner=lip_aligner, video_codec=video_codec))
        except Exception as error:  # in a folder, one bad file must not stop the others
            if not many:
                raise
            reason = one_line(error).removeprefix(f"{path}: ")
            log.warning("skipping %s: %s", path, reason)
            results.failed.append({"input": str(path), "error": reason})
    return results
