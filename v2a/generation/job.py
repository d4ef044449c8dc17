"""Generate audio for one video (or a folder of videos) and write wav, muxed video and sidecar json."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
from tqdm import tqdm

from v2a.data.shard_writer import sha256_of
from v2a.generation.mux import mux_audio
from v2a.generation.video_input import VideoInputError, open_video, read_window
from v2a.generation.windowed import generate_long
from v2a.inference.loading import load_module
from v2a.utils.audio_files import write_audio

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")


def list_videos(video: str | Path) -> list[Path]:
    """One file, or the video files of a folder (sorted)."""
    video = Path(video)
    if video.is_dir():
        files = sorted(p for p in video.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        if not files:
            raise VideoInputError(f"{video}: folder holds no video files ({', '.join(VIDEO_SUFFIXES)})")
        return files
    return [video]


def output_path(video: Path, out: str | Path, many: bool) -> Path:
    """The muxed video path for one input (wav and json sit beside it); ``out`` is a folder for many inputs."""
    if not many:
        return Path(out)
    suffix = video.suffix if video.suffix.lower() in (".mp4", ".mkv", ".mov") else ".mp4"
    return Path(out) / f"{video.stem}_v2a{suffix}"


@torch.no_grad()
def generate_for_video(module, video_path: Path, out_video: Path, *, steps: int | None, cfg_scale: float | None,
                       seed: int, overlap_s: float, original_audio: str, duration: float | None,
                       watermarker=None, settings: dict | None = None) -> dict:
    """Generate, watermark, write wav + muxed video + sidecar json; returns the sidecar."""
    spec = module.features.spec
    video = open_video(video_path, spec)
    seconds = min(duration, video.duration) if duration else video.duration
    n_frames = max(1, int(round(seconds * spec.fps)))
    generator = torch.Generator().manual_seed(seed)
    bar = tqdm(total=None, desc=video_path.name, unit="window", leave=False)

    def mel_for(frames: torch.Tensor) -> torch.Tensor:
        return module.generate_mel(frames, steps=steps, cfg_scale=cfg_scale, generator=generator)

    mel = generate_long(lambda start, count: read_window(video, start / spec.fps, spec, count), n_frames, spec,
                        mel_for, overlap_s=overlap_s, progress=bar.update)
    bar.close()
    audio = module.vocoder(mel[None].to(module.device))[0].cpu().numpy()
    if watermarker is not None:  # before anything is written: no unmarked copy ever reaches disk
        audio = watermarker.embed(audio, spec.sample_rate)
    out_video.parent.mkdir(parents=True, exist_ok=True)
    wav_path = write_audio(out_video.with_suffix(".wav"), audio, spec.sample_rate)
    mux_audio(video_path, audio, spec.sample_rate, out_video, original_audio=original_audio)
    sidecar = {"input": str(video_path), "video": str(out_video), "audio": str(wav_path),
               "duration_s": len(audio) / spec.sample_rate, "sample_rate": spec.sample_rate,
               "watermarked": watermarker is not None, **(settings or {})}
    tmp = out_video.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(sidecar, indent=2))
    os.replace(tmp, out_video.with_suffix(".json"))
    return sidecar


def check_conditioning(module, **texts: str | None) -> None:
    """Refuse text inputs that the checkpoint cannot use, instead of silently ignoring them."""
    given = [name for name, value in texts.items() if value]
    supported = set(getattr(module, "text_inputs", ()))
    unsupported = [name for name in given if name not in supported]
    if unsupported:
        raise ValueError(f"this checkpoint has no conditioning for {', '.join(unsupported)} "
                         f"(it supports: {', '.join(sorted(supported)) or 'video only'})")


def candidate_path(out_video: Path, index: int, count: int) -> Path:
    return out_video if count == 1 else out_video.with_name(f"{out_video.stem}_cand{index}{out_video.suffix}")


def generate(*, video: str, ckpt: str, out: str, steps: int | None = None, cfg_scale: float | None = None,
             seed: int = 0, overlap_s: float = 0.5, original_audio: str = "drop", duration: float | None = None,
             device: str = "cpu", watermarker=None, prompt: str | None = None, negative_prompt: str | None = None,
             transcript: str | None = None, num_candidates: int = 1) -> list[dict]:
    """Generate for a file or a folder; a bad file in a folder is logged and skipped.

    ``num_candidates`` > 1 writes ``OUT_cand{i}`` files generated with seeds ``seed + i``.
    """
    if num_candidates < 1:
        raise ValueError(f"num_candidates must be >= 1, got {num_candidates}")
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if duration is not None and duration <= 0:
        raise ValueError(f"duration must be positive, got {duration}")
    videos = list_videos(video)
    module = load_module(ckpt, device=device)
    check_conditioning(module, prompt=prompt, negative_prompt=negative_prompt, transcript=transcript)
    settings = {"ckpt": str(ckpt), "model_sha256": sha256_of(Path(ckpt)) if Path(ckpt).is_file() else None, "steps": module.sampler.steps if steps is None else steps,
                "cfg_scale": module.cfg_scale if cfg_scale is None else cfg_scale, "seed": seed,
                "overlap_s": overlap_s, "original_audio": original_audio}
    results, many = [], Path(video).is_dir()
    for path in tqdm(videos, desc="videos", unit="video", disable=len(videos) == 1):
        out_video = output_path(path, out, many)
        try:
            for index in range(num_candidates):
                results.append(generate_for_video(
                    module, path, candidate_path(out_video, index, num_candidates), steps=steps, cfg_scale=cfg_scale,
                    seed=seed + index, overlap_s=overlap_s, original_audio=original_audio, duration=duration,
                    watermarker=watermarker, settings={**settings, "seed": seed + index}))
        except VideoInputError as error:
            if not many:
                raise
            log.warning("skipping %s: %s", path, error)
    return results
