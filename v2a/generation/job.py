"""Generate audio for one video (or a folder of videos) and write audio, muxed video and sidecar json.

Everything streams: frames are read window by window, the joined mel is vocoded and watermarked in
overlapping chunks and written to the audio file as it comes, and the muxer reads that file back in
blocks. Peak memory is set by the window batch and the chunk sizes, not by the video's length.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm

from v2a.checkpoints.loading import CheckpointError
from v2a.generation.options import check_numbers, model_sha256, read_text_option
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
    VIDEO_CODECS,
    VideoInput,
    mux,
    open_video,
)
from v2a.pipeline.aligner import LipAligner
from v2a.pipeline.pipeline import V2APipeline
from v2a.pipeline.video import Streaming, check_texts, stream_audio, write_stream
from v2a.utils.jsonfiles import json_bytes

log = logging.getLogger(__name__)

AUDIO_FORMATS = ("wav", "flac")


@torch.no_grad()
def generate_for_video(module, video: VideoInput, out_video: Path, *, steps: int | None, cfg_scale: float | None,
                       seed: int, overlap_s: float, original_audio: str, duration: float | None,
                       audio_format: str = "wav", streaming: Streaming | None = None, watermarker=None,
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
    spec = module.spec
    streaming = streaming or Streaming()
    cut = duration is not None and duration < video.duration - 0.5 / video.fps
    seconds = duration if cut else video.duration
    if cut and video_codec == "copy":  # refused before any work
        raise ValueError(f"duration={duration:g} cuts the video, and a copied video can only end at a keyframe: "
                         "use video_codec=auto or h264 (re-encodes), or leave duration unset")
    bar = tqdm(desc=video.path.name, unit="window", leave=False)
    stream = stream_audio(module, video, steps=steps, cfg_scale=cfg_scale, seed=seed, overlap_s=overlap_s,
                          duration=seconds, texts=texts, aligner=aligner, watermarker=watermarker, streaming=streaming,
                          progress=bar.update)
    bar.total = stream.windows
    out_video.parent.mkdir(parents=True, exist_ok=True)
    video_file, audio_file, json_file = result_files(out_video, audio_format)
    with Staged(video_file, audio_file, json_file) as staged:  # all of a result or none of it
        try:
            samples = write_stream(staged.temp(audio_file), stream.pieces, spec.sample_rate)
        finally:
            bar.close()
        muxed = mux(video.path, staged.temp(audio_file), spec.sample_rate, staged.temp(video_file),
                    original_audio=original_audio, origin=video.info.origin, video_codec=video_codec)
        elapsed = time.perf_counter() - started
        sidecar = {"input": str(video.path), "video": str(video_file), "audio": str(audio_file),
                   "duration_s": samples / spec.sample_rate, "sample_rate": spec.sample_rate,
                   "input_duration_s": round(video.duration, 6), "input_rotation": video.info.rotation,
                   "cut_to_s": seconds if cut else None, "muxed_video": muxed.video,
                   "kept_audio": muxed.original_audio, "windows": stream.windows, "watermarked": watermarker is not None,
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
             sampler: dict | None = None, aligner: str | None = None, video_codec: str = "auto",
             load_pipeline: Callable[..., V2APipeline] | None = None) -> Results:
    """Generate for a file or a folder. A file that fails in a folder is logged and skipped, the others go on:
    the returned :class:`Results` lists the sidecars written, and ``failed`` the inputs that were not, with why.

    ``transcript`` (and ``prompt``, ``negative_prompt``) is text or the path of a UTF-8 text file.
    ``vocoder`` is a ``model.vocoder`` config (``_target_`` ...) that replaces the checkpoint's;
    ``sampler`` (``method``, ``schedule``, ``shift``; None keeps the model's) replaces its sampler settings.
    ``num_candidates`` > 1 writes ``OUT_cand{i}`` files generated with seeds ``seed + i``.
    ``aligner``: a lip-aligner export that times a plain-text transcript from the video (phoneme-track models).
    ``video_codec``: ``auto`` copies the video when the output container holds its codec, else re-encodes it as
    H.264; ``copy`` refuses what cannot be copied; ``h264`` always re-encodes. No output ever replaces an input.
    ``load_pipeline``: how the model is loaded (default :meth:`V2APipeline.from_pretrained`; ``v2a serve`` passes
    its cache of loaded pipelines).
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
    module = (load_pipeline or V2APipeline.from_pretrained)(ckpt, device=device, vocoder=vocoder, sampler=sampler)
    check_texts(module, texts)
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
