"""Which mixes remove the watermark: detection rate by the added sound's kind and level.

    .venv/bin/python bench/watermark_mix.py --clips 50 --decompose       # writes the watermark_mix section
    .venv/bin/python bench/watermark_mix.py --clips 50 --snr-db 30.1 27 24 21 18 16.4   # mixes vs SNR
                                                                         # -> the watermark_mix_snr section

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
from bench.watermark import SR, make_clips, snr_db  # noqa: E402
from v2a.watermark import Watermarker, detection  # noqa: E402
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


def aligned_terms(marked: np.ndarray, unmarked: np.ndarray, marker: Watermarker) -> tuple[float, float]:
    """Signal and spread of the log view's aligned score: ``z = (S + c0) / N``.

    ``S`` is what the mark adds to the correlation (the marked audio's tile sums minus those of the
    same audio without the mark), ``N`` the no-mark spread ``sqrt(sum T_j^2)``: a miss with ``S``
    gone means the mark was drowned, one with ``N`` grown means the detector let noise in.
    """
    p, pattern = marker.params, marker._pattern
    rows = (p.tile_frames * np.arange(p.period_tiles)) % p.period_frames

    def tiles(audio: np.ndarray) -> np.ndarray:
        view = detection.detector_views(audio.astype(np.float32), p)[0]
        return detection.tile_sums(*detection.fold(view, 1.0, p), 1.0, p)[rows]

    t_marked, t_plain = tiles(marked), tiles(unmarked)
    return float(np.sum(pattern * (t_marked - t_plain))), float(np.sqrt(np.sum(t_plain**2)))


def decomposition(clips: list[tuple[str, np.ndarray]], marker: Watermarker, seed: int,
                  kinds: tuple[str, ...] = ("noise", "mixture")) -> dict[str, list[tuple[float, float, bool]]]:
    """``{partner kind: [(share of S kept, N mixed / N clean, detected)]}`` at 0 dB, same draws as the table."""
    out: dict[str, list[tuple[float, float, bool]]] = {k: [] for k in kinds}
    for i, (_, clip) in enumerate(clips):
        marked = marker.embed(clip, SR)
        s_clean, n_clean = aligned_terms(marked, clip, marker)
        for kind in kinds:
            ki = MIX_PARTNERS.index(kind)
            rng_args = [seed, i, 0, ki]   # level index 0 = 0 dB, as in detection_table
            mixed, _ = mix_with(marked, SR, np.random.default_rng(rng_args), level_db=0.0, kind=kind)
            # The same partner with the unmarked clip: mix_with draws the partner before using the audio,
            # and the gain from the RMS, which the mark moves by < 0.01 dB.
            plain, _ = mix_with(clip, SR, np.random.default_rng(rng_args), level_db=0.0, kind=kind)
            s_mix, n_mix = aligned_terms(mixed, plain, marker)
            out[kind].append((s_mix / s_clean, n_mix / n_clean, marker.detect(mixed, SR).watermarked))
        print(f"\r{i + 1}/{len(clips)} clips (decomposition)", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return out


def render_decomposition(dec: dict[str, list[tuple[float, float, bool]]]) -> str:
    rows = ["| added sound (0 dB) | clips | missed | mark signal kept, detected clips (median) | "
            "mark signal kept, missed clips (median) | no-mark spread mixed / clean (median) |",
            "|---|---|---|---|---|---|"]
    def fmt(share: np.ndarray) -> str:
        return f"{100 * np.median(share):.1f} %" if share.size else "–"

    for kind, vals in dec.items():
        kept = np.array([v[0] for v in vals])
        spread = np.array([v[1] for v in vals])
        hit = np.array([v[2] for v in vals])
        rows.append(f"| {kind} | {len(vals)} | {int((~hit).sum())} | {fmt(kept[hit])} | {fmt(kept[~hit])} | "
                    f"{np.median(spread):.2f} |")
    return "\n".join([
        "Why the misses happen — the log view's aligned score split as z = (S + c0) / N, where S is what the mark "
        "adds (marked minus unmarked audio, same partner) and N the no-mark spread; share of the clean clip's S "
        "left after mixing:",
        "",
        *rows,
    ])


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


def snr_curve(clips: list[tuple[str, np.ndarray]], snrs: list[float], seed: int,
              max_alpha: float) -> dict[float, dict]:
    """Equal-level (0 dB) mix detection per partner kind for marks embedded at each SNR target, with the
    SNR each target really gave (``max_alpha`` caps the modulation depth)."""
    out = {}
    for snr in snrs:
        marker = Watermarker(snr_db=snr, max_alpha=max_alpha)
        table = detection_table(clips, marker, [0.0], seed)
        out[snr] = {kind: float(np.mean(table[(kind, 0.0)])) for kind in MIX_PARTNERS}
        out[snr]["all kinds"] = float(np.mean([d for k in MIX_PARTNERS for d in table[(k, 0.0)]]))
        out[snr]["measured"] = float(np.mean([snr_db(clip, marker.embed(clip, SR)) for _, clip in clips]))
    return out


def render_snr_curve(curve: dict[float, dict], n_clips: int, command: str, wall_s: float) -> str:
    kinds = ["all kinds", *MIX_PARTNERS]
    rows = ["| mark SNR: target / measured mean | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
    for snr, rates in curve.items():
        rows.append(f"| {snr:g} / {rates['measured']:.1f} dB | "
                    + " | ".join(f"{100 * rates[k]:.1f} %" for k in kinds) + " |")
    return "\n".join([
        "### Watermark under equal-level mixing vs the mark's SNR (`bench/watermark_mix.py --snr-db`)",
        "",
        f"Command: `{command}` — {machine()}; wall time {wall_s / 60:.1f} min.",
        "",
        f"The same {n_clips} clips and partners as the section above, mixed at 0 dB, with the mark embedded at each "
        "SNR (the default is 30.1 dB, the issue's inaudibility floor is 30 dB; `max_alpha` lifted so that low targets "
        "are reached). Detection rate at FPR 0.0001:",
        "",
        *rows,
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=50, help="procedural clips (+ clips/10 espeak-ng clips)")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--levels", type=float, nargs="+", default=[0.0, -6.0, -10.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not edit --out")
    parser.add_argument("--decompose", action="store_true",
                        help="also split the aligned score of the noise/mixture mixes into mark signal and spread")
    parser.add_argument("--snr-db", type=float, nargs="+", default=None,
                        help="instead: equal-level mix detection for marks at these SNRs (section watermark_mix_snr)")
    parser.add_argument("--max-alpha", type=float, default=0.3, help="depth cap for --snr-db (the default 0.1 "
                        "stops the mark near 21-25 dB)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    clips = make_clips(args.clips, args.seconds, args.seed, shutil.which("espeak-ng"))
    command = "python bench/watermark_mix.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.snr_db:
        text = render_snr_curve(snr_curve(clips, args.snr_db, args.seed, args.max_alpha), len(clips), command.strip(),
                                time.perf_counter() - start)
        print(text)
        if not args.no_write:
            write_section("watermark_mix_snr", text, path=args.out)
        return 0
    marker = Watermarker()
    table = detection_table(clips, marker, args.levels, args.seed)
    dec = decomposition(clips, marker, args.seed) if args.decompose else None
    text = render(table, args.levels, len(clips), args.seconds, marker.fpr, command.strip(),
                  time.perf_counter() - start)
    if dec is not None:
        text += "\n\n" + render_decomposition(dec)
    print(text)
    if not args.no_write:
        write_section("watermark_mix", text, path=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
