"""Command line: ``python -m v2a.watermark detect FILE...`` / ``embed IN OUT`` (also ``v2a-watermark``).

detect prints one line per file, ``FILE: watermarked (p=...)`` or ``FILE: not watermarked
(p=...)``; a file that cannot be read prints ``FILE: error: ...`` on stderr. Exit status: 0 when
every file was read (whatever the verdicts), 1 when any file failed, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import numpy as np

from v2a.media import AudioReadError, decode_audio, write_audio
from v2a.watermark.keying import ENV_VAR
from v2a.watermark.watermarker import Watermarker


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--key", default=None, help=f"watermark key (default: ${ENV_VAR}, else the public key)")
    parser = argparse.ArgumentParser(prog="v2a-watermark", description="Embed or detect the v2a audio watermark.")
    sub = parser.add_subparsers(dest="command", required=True)
    det = sub.add_parser("detect", parents=[common], help="detect the mark in audio/video files")
    det.add_argument("files", nargs="+", metavar="FILE", help="any file PyAV reads (wav, flac, mp3, m4a, mp4...)")
    det.add_argument("--fpr", type=float, default=1e-4, help="flag files with p-value below this (default 1e-4)")
    emb = sub.add_parser("embed", parents=[common], help="write a watermarked copy of IN's first audio stream")
    emb.add_argument("input", metavar="IN")
    emb.add_argument("output", metavar="OUT", help="wav/flac/ogg (soundfile) or mp3/m4a/aac/opus (PyAV)")
    emb.add_argument("--snr-db", type=float, default=30.1, help="target SNR of the mark (default 30.1 dB)")
    return parser


def _format_p(p: float) -> str:
    return f"{p:.3g}" if p >= 1e-300 else "<1e-300"


def _detect(args: argparse.Namespace) -> int:
    marker = Watermarker(args.key, fpr=args.fpr)
    status = 0
    for path in args.files:
        try:
            audio, sr = decode_audio(path)
            result = marker.detect(audio.mean(axis=0), sr)
        except AudioReadError as exc:
            print(f"{path}: error: {exc}", file=sys.stderr)
            status = 1
            continue
        except Exception as exc:  # one bad file must not stop the others, nor print a traceback
            print(f"{path}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
            status = 1
            continue
        verdict = "watermarked" if result.watermarked else "not watermarked"
        print(f"{path}: {verdict} (p={_format_p(result.p_value)})", flush=True)
    return status


def _embed(args: argparse.Namespace) -> int:
    try:
        audio, sr = decode_audio(args.input)
    except AudioReadError as exc:
        print(f"{args.input}: error: {exc}", file=sys.stderr)
        return 1
    marked = Watermarker(args.key, snr_db=args.snr_db).embed(audio, sr)
    try:
        write_audio(args.output, marked, sr)
    except Exception as exc:
        print(f"{args.output}: error: cannot write: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    snr = 10 * np.log10(np.sum(audio.astype(np.float64) ** 2) / max(np.sum((marked - audio) ** 2.0), 1e-30))
    print(f"{args.output}: watermarked ({sr} Hz, {audio.shape[0]} ch, {audio.shape[1] / sr:.2f} s, SNR {snr:.1f} dB)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    args = _parser().parse_args(argv)
    return _detect(args) if args.command == "detect" else _embed(args)


if __name__ == "__main__":
    sys.exit(main())
