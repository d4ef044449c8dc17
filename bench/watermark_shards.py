"""Watermark on the framework's own benchmark audio (webdataset shards), as generate.py would see it.

    .venv/bin/python bench/watermark_shards.py data/synthetic/test data/speech/test

Reads the ``flac`` of every sample in the shards (no video decoding). Null: every clip unmarked,
clean and after one seeded random attack, must not be flagged (empirical FPR). Marked: the first
``--clips`` clips of each folder are marked and detected clean and after every attack. Writes the
``watermark_shards`` section of docs/benchmarks.md (bench/report.py).
"""

from __future__ import annotations

import argparse
import sys
import tarfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: bench/ is not part of the package

from bench.report import machine, write_section  # noqa: E402
from bench.watermark import SR, attacked_versions, snr_db  # noqa: E402
from v2a.media import decode_mono  # noqa: E402
from v2a.watermark import Watermarker  # noqa: E402
from v2a.watermark.attacks import ATTACKS  # noqa: E402


def shard_audio(folder: Path) -> list[np.ndarray]:
    """Mono 16 kHz audio of every ``.flac`` member of the folder's ``*.tar`` shards, in order."""
    out = []
    for tar_path in sorted(folder.glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".flac"):
                    out.append(decode_mono(tar.extractfile(member).read(), SR))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="shard folders (with *.tar)")
    parser.add_argument("--clips", type=int, default=30, help="marked clips per folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fpr", type=float, default=1e-4)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    command = " ".join([".venv/bin/python bench/watermark_shards.py", *(argv if argv is not None else sys.argv[1:])])
    start = time.perf_counter()
    marker = Watermarker("v2a-bench-key", fpr=args.fpr)
    names = list(ATTACKS)
    rng = np.random.default_rng(args.seed)
    null_p: dict[str, list[float]] = defaultdict(list)
    detected: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    snrs, lengths = defaultdict(list), defaultdict(list)
    for folder in args.folders:
        name = folder.parent.name if folder.name in ("test", "val", "train") else folder.name
        clips = [x for x in shard_audio(folder) if np.any(x)]
        lengths[name] = [len(x) / SR for x in clips]
        for x in clips:
            null_p[name].append(marker.detect(x, SR).p_value)
            a, sr = ATTACKS[names[int(rng.integers(len(names)))]](x, SR, rng)
            null_p[name].append(marker.detect(a, sr).p_value)
        for i, x in enumerate(clips[: args.clips]):
            y = marker.embed(x, SR)
            snrs[name].append(snr_db(x, y))
            for cond, a, sr in attacked_versions(y, args.seed, i):
                detected[name][cond].append(marker.detect(a, sr).watermarked)
        print(f"{name}: {len(clips)} clips done at {time.perf_counter() - start:.0f}s", file=sys.stderr)

    sets = list(detected)
    all_null = np.concatenate([null_p[s] for s in sets])
    lines = [
        "### Audio watermark on the benchmark's own audio",
        "",
        f"Command: `{command}` — {machine()}; wall time {(time.perf_counter() - start) / 60:.1f} min. "
        "Same key, settings and attacks as the watermark section above.",
        "",
        "Clips: " + ", ".join(f"{s}: {len(lengths[s])} clips of {min(lengths[s]):.1f}-{max(lengths[s]):.1f} s "
                              f"({len(snrs[s])} marked, SNR min {min(snrs[s]):.2f} dB)" for s in sets) + ".",
        "",
        f"Null (every clip unmarked, clean and after one random attack each, {len(all_null)} detections): "
        f"{int(np.sum(all_null < args.fpr))} with p < {args.fpr:g}; p < 0.01: {np.mean(all_null < 0.01):.3f}, "
        f"p < 0.1: {np.mean(all_null < 0.1):.3f} (calibrated: at most 0.01 and 0.1); min p {all_null.min():.2g}.",
        "",
        "| condition | " + " | ".join(f"{s} ({len(snrs[s])})" for s in sets) + " |",
        "|---|" + "---|" * len(sets),
    ]
    for cond in detected[sets[0]]:
        lines.append(f"| {cond} | " + " | ".join(f"{100 * np.mean(detected[s][cond]):.1f} %" for s in sets) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section("watermark_shards", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
