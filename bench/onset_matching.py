"""Onset scores of one checkpoint with the earlier greedy matcher and with the optimal one-to-one matching.

    python bench/onset_matching.py --ckpt RUN/checkpoints/last.ckpt --out DIR [--data ROOT] [--write]

The first pass generates (and keeps) the audio and scores it with ``v2a.evaluation.onsets.match_onsets``
(maximum-cardinality, then least total error); the second rescores the *same* audio (``reuse=true``) with the
greedy closest-first matcher the project used before, kept here only for this comparison. The detector
calibration and AV-Align use the matcher too, so all three move together.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from unittest import mock

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.report import machine, write_section  # noqa: E402
from v2a.evaluation import av_align, onsets  # noqa: E402
from v2a.evaluation.job import evaluate  # noqa: E402

KEYS = ("sync/onset_precision", "sync/onset_recall", "sync/onset_f1", "sync/onset_mae_ms", "ref/gt_onset_f1",
        "ref/mismatched_onset_f1", "sync/av_align")


def greedy_match(detected: np.ndarray, reference: np.ndarray, tolerance: float) -> list[tuple[float, float]]:
    """The earlier matcher: closest pairs first, one to one (finds 1 pair in [0, .05] vs [.03, .08] at .04)."""
    pairs = sorted((abs(d - r), i, j) for i, d in enumerate(detected) for j, r in enumerate(reference)
                   if abs(d - r) <= tolerance)
    used_d, used_r, matched = set(), set(), []
    for _, i, j in pairs:
        if i not in used_d and j not in used_r:
            used_d.add(i)
            used_r.add(j)
            matched.append((float(detected[i]), float(reference[j])))
    return matched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--data")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    optimal = evaluate(ckpt=args.ckpt, out=args.out, data=args.data, whisper="false", plots=0)
    with mock.patch.object(onsets, "match_onsets", greedy_match), mock.patch.object(av_align, "match_onsets", greedy_match):
        greedy = evaluate(ckpt=args.ckpt, out=args.out, data=args.data, whisper="false", plots=0, reuse=True)
    rows = [f"| `{k}` | {greedy.get(k, float('nan')):.3f} | {optimal.get(k, float('nan')):.3f} |" for k in KEYS]
    command = f"python bench/onset_matching.py --ckpt {args.ckpt} --out {args.out}" + \
        (f" --data {args.data}" if args.data else "")
    markdown = "\n".join([
        "## Onset matching: greedy closest-first (before) vs optimal one-to-one (issue 16)", "",
        f"`{command}` — {machine()}; the same generated audio scored twice (the second pass `reuse=true`).", "",
        "| metric | greedy (before) | optimal (now) |", "| --- | --- | --- |", *rows])
    print(markdown)
    if args.write:
        write_section("onset_matching", markdown)


if __name__ == "__main__":
    main()
