"""Copy-synthesis quality and speed of the vocoders: ground-truth mel -> {Griffin-Lim, neural} -> waveform.

    python bench/vocoder.py --export outputs/vocoder_tiny/main/export --write

Quality on held-out clips: log-mel L1 (standardised units, as evaluate.py's quality/mel_l1) and
log-spectral distance (dB) on impacts (benchmark test split) and speech (espeak-ng test split); onset
precision/recall/F1 against the impacts' ground-truth events with the detector calibrated on
ground-truth validation audio (as evaluate.py); PESQ (wide band) and STOI on speech. Speed: real-time
factor of one 8 s clip on ``--threads`` CPU threads (median of ``--repeats`` interleaved runs).
``--refine K:M ...`` adds rows for the neural vocoder followed by K phase-consistency projections and M
mel-envelope corrections (``model.vocoder.refine_iters=K model.vocoder.mel_iters=M``), next to the
network alone; ``K:M:T`` also keeps the network's own output around onsets of flux > T
(``model.vocoder.onset_threshold=T``).
Writes the "vocoder" section of docs/benchmarks.md with ``--write``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from v2a.audio.mel import LogMel
from v2a.audio.spectral import log_spectral_distance
from v2a.conf import CONFIG_DIR
from v2a.data.decoders import AudioDecoder
from v2a.data.streams import split_batches
from v2a.evaluation.onsets import OnsetScores, calibrate
from v2a.evaluation.references import event_times
from v2a.models.vocoder.griffin_lim import GriffinLimVocoder
from v2a.models.vocoder.neural import NeuralVocoder
from v2a.shapes import ClipSpec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.report import machine, write_section  # noqa: E402

log = logging.getLogger("bench.vocoder")
AGREEMENT_TOLERANCE = 0.010  # s: onsets of the vocoded audio within 10 ms of those of the ground truth


def load_split(root: Path, split: str, spec: ClipSpec, max_clips: int | None) -> tuple[torch.Tensor, list[dict]]:
    """All clips of one split of one shard root: (audio [N, samples], metadata)."""
    audio, metas = [], []
    for batch in split_batches(root, split, spec, 50, max_clips, decoder=AudioDecoder()):
        audio.append(batch["audio"])
        metas += batch["meta"]
    return torch.cat(audio), metas


@torch.no_grad()
def vocode(vocoder: torch.nn.Module, mel: torch.Tensor, batch: int = 25) -> tuple[torch.Tensor, float]:
    """(waveforms, seconds spent) for mels [N, n_mels, F], in batches."""
    out, seconds = [], 0.0
    for start in range(0, len(mel), batch):
        begin = time.perf_counter()
        out.append(vocoder(mel[start:start + batch]))
        seconds += time.perf_counter() - begin
    return torch.cat(out), seconds


def spectral_scores(features: LogMel, audio: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    mel_l1 = (features(audio) - features(reference)).abs().mean(dim=(1, 2))
    lsd = log_spectral_distance(audio, reference)
    return {"mel_l1": float(mel_l1.mean()), "lsd_db": float(lsd.mean())}


def onset_scores(detector, features: LogMel, audio: torch.Tensor, metas: list[dict], tolerance: float,
                 reference_onsets: list[np.ndarray] | None = None) -> dict:
    """Onset P/R/F1/MAE against the annotated events; with ``reference_onsets`` (the onsets detected in
    the ground-truth audio) also ``onset_agreement``: F1 against those at ±AGREEMENT_TOLERANCE, i.e. how
    exactly the vocoder preserves the onsets the ground truth has (the annotation F1 of ground-truth
    audio is itself below 1, so beating it says nothing about preservation)."""
    scores, agreement = OnsetScores(), OnsetScores()
    detections = detector(features(audio))
    for i, (detected, meta) in enumerate(zip(detections, metas, strict=True)):
        scores.add(detected, event_times(meta), tolerance)
        if reference_onsets is not None:
            agreement.add(detected, reference_onsets[i], AGREEMENT_TOLERANCE)
    out = scores.as_dict()
    if reference_onsets is not None:
        out["onset_agreement"] = agreement.as_dict()["onset_f1"]
    return out


def speech_scores(audio: torch.Tensor, reference: torch.Tensor, sample_rate: int) -> dict[str, float]:
    """Mean PESQ (wb) and STOI over clips; clips PESQ cannot score (no utterance) are counted, not scored."""
    from pesq import pesq
    from pystoi import stoi

    pesq_values, stoi_values, skipped = [], [], 0
    for deg, ref in zip(audio.numpy(), reference.numpy(), strict=True):
        try:
            pesq_values.append(pesq(sample_rate, ref, deg, "wb"))
        except Exception as error:  # pesq raises on clips without speech activity
            log.warning("PESQ skipped a clip: %s", error)
            skipped += 1
        stoi_values.append(stoi(ref, deg, sample_rate, extended=False))
    return {"pesq_wb": float(np.mean(pesq_values)), "stoi": float(np.mean(stoi_values)), "pesq_skipped": skipped}


@torch.no_grad()
def real_time_factors(vocoders: dict[str, torch.nn.Module], features: LogMel, reference: torch.Tensor,
                      seconds: float, repeats: int) -> dict[str, float]:
    """Median wall time / audio duration of vocoding one ``seconds``-long clip, vocoders interleaved."""
    rate = features.spec.sample_rate
    clip = reference.flatten()[: int(seconds * rate)]
    clip = torch.nn.functional.pad(clip, (0, int(seconds * rate) - len(clip)))[None]
    mel = features(clip)
    times: dict[str, list[float]] = {name: [] for name in vocoders}
    for vocoder in vocoders.values():  # warm-up (allocations, FFT plans)
        vocoder(mel)
    for _ in range(repeats):
        for name, vocoder in vocoders.items():
            begin = time.perf_counter()
            vocoder(mel)
            times[name].append(time.perf_counter() - begin)
    return {name: statistics.median(t) / seconds for name, t in times.items()}


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    config = json.loads((Path(args.export) / "config.json").read_text())
    f = config["features"]
    spec = ClipSpec(sample_rate=f["sample_rate"], hop_length=f["hop_length"], n_fft=f["n_fft"], n_mels=f["n_mels"])
    features = LogMel(spec=spec, mean=f["mean"], std=f["std"], log_floor=f["log_floor"], log_ceil=f["log_ceil"])
    vocoders = {"griffin_lim": GriffinLimVocoder(features=features, n_iter=args.gl_iters).eval(),
                "neural": NeuralVocoder(features=features, checkpoint=args.export).eval()}
    for k, m, t in args.refine:
        name = f"neural+{k}:{m}" + (f":{t:g}" if t is not None else "")
        vocoders[name] = NeuralVocoder(features=features, checkpoint=args.export, refine_iters=k, mel_iters=m,
                                       onset_threshold=t).eval()
    results: dict = {"export": str(args.export), "trained_steps": config.get("trained_steps"),
                     "generator": config["generator"], "threads": args.threads,
                     "generator_parameters": sum(p.numel() for p in vocoders["neural"].generator.parameters()),
                     "vocoders": list(vocoders)}
    tolerance = 1.0 / args.fps

    cal_audio, cal_metas = load_split(Path(args.impacts), "val", spec, args.max_clips)
    detector = calibrate([features(cal_audio)], [event_times(m) for m in cal_metas], spec.mel_rate, tolerance)
    results["detector"] = {"threshold": detector.threshold, "latency_ms": 1000 * detector.latency}
    for kind, root in (("impacts", args.impacts), ("speech", args.speech)):
        reference, metas = load_split(Path(root), args.split, spec, args.max_clips)
        mel = features(reference)
        rows = {"ground_truth": {}}
        reference_onsets = detector(mel) if kind == "impacts" else None
        if kind == "impacts":
            rows["ground_truth"].update(onset_scores(detector, features, reference, metas, tolerance, reference_onsets))
        for name, vocoder in vocoders.items():
            audio, seconds = vocode(vocoder, mel)
            row = {**spectral_scores(features, audio, reference), "seconds_per_clip": seconds / len(audio)}
            if kind == "impacts":
                row.update(onset_scores(detector, features, audio, metas, tolerance, reference_onsets))
            else:
                row.update(speech_scores(audio, reference, spec.sample_rate))
            rows[name] = row
            log.info("%s %s: %s", kind, name, row)
        if kind == "speech":
            # the ceiling of the speech metrics: the reference against itself (PESQ 4.64, STOI 1)
            rows["ground_truth"].update(speech_scores(reference[:5], reference[:5], spec.sample_rate))
        results[kind] = {"clips": len(metas), **rows}
        if kind == "speech":
            results["rtf"] = {}
            for threads in args.rtf_threads:
                torch.set_num_threads(threads)
                results["rtf"][threads] = real_time_factors(vocoders, features, reference, args.rtf_seconds,
                                                            args.repeats)
            torch.set_num_threads(args.threads)
    return results


def _f(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def _label(name: str, gl_iters: int) -> str:
    if name == "griffin_lim":
        return f"Griffin-Lim ({gl_iters} it.)"
    if name.startswith("neural+"):
        k, m, *t = name.removeprefix("neural+").split(":")
        kept = f", onsets kept unprojected (flux > {t[0]})" if t else ""
        return f"neural + {k} phase projections + {m} mel corrections{kept}"
    return "neural (network only)" if name == "neural" else name


def _default_label(default: dict) -> str:
    k, m, t = default["refine_iters"], default["mel_iters"], default.get("onset_threshold")
    suffix = f":{t:g}" if t is not None else ""
    return _label(f"neural+{k}:{m}{suffix}" if k or m else "neural", 0)


def shipped_default() -> dict:
    """refine_iters / mel_iters of ``model/vocoder=neural`` (read from its config, so the docs cannot drift)."""
    from omegaconf import OmegaConf

    config = OmegaConf.load(CONFIG_DIR / "model/vocoder/neural.yaml")
    threshold = config.get("onset_threshold")
    return {"refine_iters": int(config.get("refine_iters", 0)), "mel_iters": int(config.get("mel_iters", 0)),
            "onset_threshold": None if threshold is None else float(threshold)}


def markdown(results: dict, command: str, train_note: str,
             title: str = "Vocoder: copy-synthesis (ground-truth mel -> waveform), neural vs Griffin-Lim") -> str:
    imp, sp, rtf = results["impacts"], results["speech"], results["rtf"]
    g = results["generator"]
    prior = ("log-magnitude predicted as a residual on the mel pseudo-inverse, " if g.get("magnitude_prior")
             else "")
    lines = [
        f"## {title}",
        "",
        f"Command: `{command}` — {machine()}; load average at start {results['load']}.",
        "",
        f"Neural vocoder: `{results['export']}` — Vocos-style (ConvNeXt, width {g['dim']}, {g['depth']} blocks, "
        f"iSTFT head n_fft {g['n_fft']}{', ' + prior.rstrip(', ') if prior else ''}), "
        f"{results['generator_parameters'] / 1e6:.2f} M parameters, "
        f"{results['trained_steps']} steps. {train_note}".rstrip(),
        f"Shipped default (`v2a/conf/model/vocoder/neural.yaml`): refine_iters={results['default']['refine_iters']}, "
        f"mel_iters={results['default']['mel_iters']}, i.e. the row "
        f"'{_default_label(results['default'])}' below.",
        f"Griffin-Lim: {results['gl_iters']} iterations (the skeleton's default). Onset detector calibrated on "
        f"the impacts' validation ground truth (threshold {results['detector']['threshold']:.3f}, latency "
        f"{results['detector']['latency_ms']:.1f} ms), tolerance ±40 ms.",
        "",
        f"Impacts (benchmark {results['split']} split, {imp['clips']} clips of 2 s):",
        "",
        "| audio | mel L1 ↓ | LSD dB ↓ | onset P | onset R | onset F1 ↑ | onset MAE | onsets kept (F1 vs GT audio, ±10 ms) ↑ |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    names = results["vocoders"]
    for name in ["ground_truth", *names]:
        r, label = imp[name], "ground truth (ceiling)" if name == "ground_truth" else _label(name, results["gl_iters"])
        lines.append(f"| {label} | {_f(r.get('mel_l1'))} | {_f(r.get('lsd_db'), 2)} | {_f(r['onset_precision'])} | "
                     f"{_f(r['onset_recall'])} | {_f(r['onset_f1'])} | {_f(r['onset_mae_ms'], 1)} ms | {_f(r.get('onset_agreement'))} |")
    lines += ["", f"Speech (espeak-ng {results['split']} split: unseen sentences, {sp['clips']} clips of 2 s):", "",
              "| audio | mel L1 ↓ | LSD dB ↓ | PESQ wb ↑ | STOI ↑ |", "| --- | --- | --- | --- | --- |"]
    for name in names:
        r, label = sp[name], _label(name, results["gl_iters"])
        skipped = f" ({r['pesq_skipped']} clips unscorable)" if r["pesq_skipped"] else ""
        lines.append(f"| {label} | {_f(r['mel_l1'])} | {_f(r['lsd_db'], 2)} | {_f(r['pesq_wb'], 2)}{skipped} | "
                     f"{_f(r['stoi'])} |")
    lines += ["", f"Speed, one {results['rtf_seconds']:g} s clip, median of {results['repeats']} interleaved runs "
              "(real-time factor = compute time / audio time, lower is faster):",
              "", "| vocoder | threads | RTF | ms per clip | speed-up vs Griffin-Lim |", "| --- | --- | --- | --- | --- |"]
    for threads, row in rtf.items():
        for name in names:
            label = _label(name, results["gl_iters"])
            lines.append(f"| {label} | {threads} | {row[name]:.4f} | {1000 * row[name] * results['rtf_seconds']:.0f} | "
                         f"{row['griffin_lim'] / row[name]:.1f}× |")
    return "\n".join(lines)


def _refine_spec(text: str) -> tuple[int, int, float | None]:
    """``K:M`` (phase projections : mel corrections) or ``K:M:T`` (and onsets above flux T kept unprojected)."""
    try:
        k, m, *rest = text.split(":")
        k, m = int(k), int(m)
        t = float(rest[0]) if rest else None
        if len(rest) > 1:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K:M or K:M:T, got {text!r}") from None
    if k < 0 or m < 0 or k + m == 0:
        raise argparse.ArgumentTypeError(f"K and M must be >= 0 and not both 0, got {text!r}")
    return k, m, t


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", required=True, help="vocoder export folder (RUN/export of experiment=vocoder_*)")
    parser.add_argument("--impacts", default="data/synthetic")
    parser.add_argument("--speech", default="data/speech")
    parser.add_argument("--max-clips", type=int, default=None)
    parser.add_argument("--split", default="test", choices=["test", "val"],
                        help="split scored (val: for choosing settings, e.g. --refine, without the test split)")
    parser.add_argument("--gl-iters", type=int, default=32)
    parser.add_argument("--refine", type=_refine_spec, nargs="*", default=[], metavar="K:M[:T]",
                        help="also score/time the neural vocoder + K phase projections + M mel corrections")
    parser.add_argument("--fps", type=float, default=25.0, help="video fps of the impacts (tolerance = 1 frame)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the quality pass")
    parser.add_argument("--rtf-threads", type=int, nargs="+", default=[2], help="thread counts to time")
    parser.add_argument("--rtf-seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--train-note", default="", help="how the export was trained (command, wall time)")
    parser.add_argument("--json", default=None, help="also write the raw results here")
    parser.add_argument("--write", action="store_true", help="write the --section section of docs/benchmarks.md")
    parser.add_argument("--section", default="vocoder", help="section name in docs/benchmarks.md (default: vocoder)")
    parser.add_argument("--title", default=None, help="the section's heading")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    load = os.getloadavg()[0]
    results = run(args)
    results.update(load=f"{load:.1f}", gl_iters=args.gl_iters, default=shipped_default(), split=args.split,
                   rtf_seconds=args.rtf_seconds, repeats=args.repeats)
    command = "python bench/vocoder.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    text = markdown(results, command, args.train_note, **({"title": args.title} if args.title else {}))
    print(text, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if args.write:
        write_section(args.section, text)
    return results


if __name__ == "__main__":
    main()
