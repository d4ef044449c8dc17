"""Which mixes remove the watermark: detection rate by the added sound's kind and level.

    .venv/bin/python bench/watermark_mix.py --clips 50        # writes the watermark_mix section

The main benchmark (bench/watermark.py) mixes every marked clip with one random procedural sound at
equal level. This one marks the same clips (same seed, same generator) and mixes each with every kind
of sound (v2a.watermark.attacks.MIX_PARTNERS) at several levels relative to the clip, so a miss can be
told apart by what was added: another source (tones, chirps, impacts, speech-like), or a broadband noise
bed, which at 0 dB is the 20 dB-noise attack made 20 dB harsher.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: bench/ is not part of the package

from bench.report import machine, write_section  # noqa: E402
from bench.watermark import SR, make_clips  # noqa: E402
from v2a.watermark import Watermarker  # noqa: E402
from v2a.watermark.attacks import MIX_PARTNERS, mix_with  # noqa: E402


def detection_table(clips: list[tuple[str, np.ndarray]], marker: Watermarker, levels: list[float],
                    seed: int) -> dict[tuple[str, float], list[bool]]:
    """``{(partner kind, level dB): [detected per clip]}`` for every clip mixed with every partner."""
    out: dict[tuple[str, float], list[bool]] = {}
    for i, (_, clip) in enumerate(clips):
        marked = marker.embed(clip, SR)
        for li, level in enumerate(levels):
            for ki, kind in enumerate(MIX_PARTNERS):
                mixed, sr = mix_with(marked, SR, np.random.default_rng([seed, i, li, ki]), level_db=level, kind=kind)
                out.setdefault((kind, level), []).append(marker.detect(mixed, sr).watermarked)
        print(f"\r{i + 1}/{len(clips)} clips", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return out


def render(table: dict[tuple[str, float], list[bool]], levels: list[float], n_clips: int, seconds: float,
           fpr: float, command: str, wall_s: float) -> str:
    head = "| added sound | " + " | ".join(f"{lv:g} dB" for lv in levels) + " |"
    rows = [head, "|---" * (len(levels) + 1) + "|"]
    for kind in MIX_PARTNERS:
        cells = [f"{100 * np.mean(table[(kind, lv)]):.1f} %" for lv in levels]
        rows.append(f"| {kind} | " + " | ".join(cells) + " |")
    overall = [f"**{100 * np.mean([d for k in MIX_PARTNERS for d in table[(k, lv)]]):.1f} %**" for lv in levels]
    rows.append("| all kinds | " + " | ".join(overall) + " |")
    return "\n".join([
        "### Watermark under mixing, by what is mixed in (`bench/watermark_mix.py`)",
        "",
        f"Command: `{command}` — {machine()}; wall time {wall_s / 60:.1f} min.",
        "",
        f"{n_clips} marked clips × {seconds:.0f} s (the first clips of the main benchmark: same seed and generator), "
        f"each mixed with one sound of every kind at each level (relative RMS; 0 dB = the main table's `mix_equal`). "
        f"Detection rate at FPR {fpr:g}:",
        "",
        *rows,
        "",
        "`noise` is a band-limited noise bed (80 Hz to 20× that, slow level changes), `mixture` a mix of 2–3 kinds "
        "(often with a noise bed).",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=50, help="procedural clips (+ clips/10 espeak-ng clips)")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--levels", type=float, nargs="+", default=[0.0, -6.0, -10.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not edit --out")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    clips = make_clips(args.clips, args.seconds, args.seed, shutil.which("espeak-ng"))
    marker = Watermarker()
    table = detection_table(clips, marker, args.levels, args.seed)
    command = "python bench/watermark_mix.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = render(table, args.levels, len(clips), args.seconds, marker.fpr, command.strip(),
                  time.perf_counter() - start)
    print(text)
    if not args.no_write:
        write_section("watermark_mix", text, path=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
