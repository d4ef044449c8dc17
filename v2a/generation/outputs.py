"""Where generation writes, and how it never leaves half a result or touches an input.

Each result is three files (``OUT.mp4``, ``OUT.wav``, ``OUT.json``) that appear together or not at all:
they are written under hidden temporary names (:class:`Staged`) and renamed at the end; any failure, an
interrupt included, removes the temporaries and leaves earlier files as they were. No output may be an input
of the run (``out=`` equal to the video, or a folder run whose ``NAME_v2a.mp4`` is itself one of the inputs).
A folder run reports every failure and goes on (:class:`Results` holds both lists).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from v2a.media import VIDEO_SUFFIXES, VideoInputError

MUX_SUFFIXES = (".mp4", ".mkv", ".mov")


class Results(list):
    """The sidecars of the results written, in order; ``failed`` lists ``{"input", "error"}`` of the others."""

    def __init__(self, written: Iterable[dict] = ()) -> None:
        super().__init__(written)
        self.failed: list[dict] = []


def one_line(error: BaseException) -> str:
    """An error as one line: its message, after its type when the type is not one of ours that speaks for itself."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if isinstance(error, ValueError | OSError | RuntimeError) else f"{type(error).__name__}: {text}"


def list_videos(video: str | Path) -> list[Path]:
    """One file, or the video files of a folder (sorted; hidden files ignored; any suffix ffmpeg demuxes)."""
    video = Path(video)
    if video.is_dir():
        files = sorted(p for p in video.iterdir()
                       if p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith("."))
        if not files:
            raise VideoInputError(f"{video}: folder holds no video files (.mp4, .mov, .mkv, .avi, .mpg, .dv ...)")
        return files
    return [video]


def output_path(video: Path, out: str | Path, many: bool, *, shared_stems: frozenset[str] = frozenset()) -> Path:
    """The muxed video path for one input (audio and json sit beside it); ``out`` is a folder for many inputs.

    In a folder, ``NAME.avi`` becomes ``NAME_v2a.mp4`` (.mkv and .mov keep their container); two inputs with
    one stem (``a.avi``, ``a.mov``) keep their suffix in the name (``a_avi_v2a.mp4``) so neither overwrites
    the other.
    """
    if not many:
        out = Path(out)
        if out.suffix.lower() not in MUX_SUFFIXES:
            raise ValueError(f"out={out}: the output video must end in one of {', '.join(MUX_SUFFIXES)}")
        return out
    suffix = video.suffix if video.suffix.lower() in MUX_SUFFIXES else ".mp4"
    stem = f"{video.stem}_{video.suffix.lstrip('.').lower()}" if video.stem in shared_stems else video.stem
    return Path(out) / f"{stem}_v2a{suffix}"


def shared_stems(videos: list[Path]) -> frozenset[str]:
    """Stems that several inputs of a folder share."""
    return frozenset(stem for stem, count in Counter(v.stem for v in videos).items() if count > 1)


def candidate_path(out_video: Path, index: int, count: int) -> Path:
    return out_video if count == 1 else out_video.with_name(f"{out_video.stem}_cand{index}{out_video.suffix}")


def result_files(out_video: Path, audio_format: str) -> tuple[Path, Path, Path]:
    """The muxed video, the audio and the sidecar json of one result."""
    return out_video, out_video.with_suffix(f".{audio_format}"), out_video.with_suffix(".json")


def _same(a: Path, b: Path) -> bool:
    if os.path.abspath(a) == os.path.abspath(b):
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_not_inputs(outputs: Iterable[Path], inputs: Iterable[Path]) -> None:
    """ValueError when an output file would replace an input of the run."""
    inputs = list(inputs)
    for output in outputs:
        for source in inputs:
            if _same(output, source):
                raise ValueError(f"{output} would overwrite the input {source}: choose another out=")


class Staged:
    """The temporary names of one result's files, renamed into place by :meth:`commit`, else removed.

    Used as a context manager: leaving it without :meth:`commit` (an error, an interrupt) deletes the
    temporaries; earlier files at the final names are untouched until the commit replaces them.
    """

    def __init__(self, *finals: Path) -> None:
        self.finals = finals
        self.temps = [final.with_name(f".{final.stem}.v2a-partial{final.suffix}") for final in finals]

    def __enter__(self) -> Staged:
        return self

    def temp(self, final: Path) -> Path:
        return self.temps[self.finals.index(final)]

    def commit(self) -> None:
        for temp, final in zip(self.temps, self.finals, strict=True):
            os.replace(temp, final)

    def __exit__(self, *exc) -> None:
        for temp in self.temps:
            temp.unlink(missing_ok=True)
