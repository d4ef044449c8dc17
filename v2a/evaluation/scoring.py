"""Turn per-clip analyses of the three conditions into the namespaced metrics of ``metrics.json``.

Conditions and their prefixes: generated (``sync/``, ``quality/``, ``speech/``, ``watermark/``),
ground truth (``ref/gt_``, the ceiling) and mismatched-video generation (``ref/mismatched_``, the
floor). A metric that no clip can support is left out and its reason recorded in ``skipped``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from v2a.evaluation.av_align import av_align
from v2a.evaluation.frechet import frechet_between
from v2a.evaluation.labels import clip_labels
from v2a.evaluation.onsets import OnsetScores, average_precision
from v2a.evaluation.speech import error_rates

CONDITIONS = {"generated": "", "gt": "ref/gt_", "mismatched": "ref/mismatched_"}


def prefix(condition: str, namespace: str) -> str:
    return CONDITIONS[condition] or f"{namespace}/"


def onset_references(meta: dict, gt_onsets: list[float], onset_kinds: tuple[str, ...]) -> np.ndarray | None:
    """The true onset times of a clip: its recorded events of ``onset_kinds`` (benchmark), or the onsets
    detected on its ground-truth audio when it records no events (real data); None when it records only
    events without a sharp onset (speech, hums), which the onset metrics skip."""
    if "events" not in meta:
        return np.asarray(gt_onsets, dtype=np.float64)
    events = meta.get("events") or []
    times = [e["time"] for e in events if isinstance(e, dict) and "time" in e and e.get("kind", "impact") in onset_kinds]
    if events and not times:
        return None
    return np.array(sorted(times), dtype=np.float64)


@dataclass
class Scorer:
    tolerance: float
    fps: float
    onset_kinds: tuple[str, ...] = ("impact",)
    vocabularies: dict[str, list[str]] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def sync(self, metas: list[dict], analyses: dict[str, dict], video_peaks: list[list[float]]) -> None:
        refs = [onset_references(m, g, self.onset_kinds) for m, g in zip(metas, analyses["gt"]["onsets"], strict=True)]
        used = [i for i, r in enumerate(refs) if r is not None]
        if not used:
            self.skipped["sync/onset_*"] = "no clip has transient events or reference audio onsets"
        n_audio_refs = sum("events" not in metas[i] for i in used)
        self.metrics["eval/onset_clips"] = len(used)
        self.metrics["eval/onset_clips_audio_reference"] = n_audio_refs
        for condition, analysis in analyses.items():
            p = prefix(condition, "sync")
            if used:
                scores = OnsetScores()
                for i in used:
                    scores.add(np.asarray(analysis["onsets"][i]), refs[i], self.tolerance)
                self.metrics.update({p + k: v for k, v in scores.as_dict().items()})
                candidates = [(np.asarray(analysis["candidates"][i][0]), np.asarray(analysis["candidates"][i][1]))
                              for i in used]
                self.metrics[p + "onset_ap"] = average_precision(candidates, [refs[i] for i in used], self.tolerance)
            values = [av_align(np.asarray(a), np.asarray(v), self.fps)
                      for a, v in zip(analysis["onsets"], video_peaks, strict=True)]
            values = [v for v in values if np.isfinite(v)]
            if values:
                self.metrics[p + "av_align"] = float(np.mean(values))
            else:
                self.skipped[p + "av_align"] = "no clip has audio onsets or motion peaks"

    def quality(self, analyses: dict[str, dict], val_embeddings: dict[str, np.ndarray],
                pairwise: dict[str, dict[str, list[float]]], metas: list[dict]) -> None:
        gt = analyses["gt"]
        for key in (k for k in gt if k.startswith("emb/")):
            name = key.split("/", 1)[1]
            for condition, analysis in analyses.items():
                p = prefix(condition, "quality")
                reference = val_embeddings.get(name) if condition == "gt" else gt[key]
                if reference is None or len(reference) < 2 or len(analysis[key]) < 2:
                    self.skipped[p + f"fad_{name}"] = "fewer than two clips"
                    continue
                # ground truth is compared with the *validation* split's ground truth: real vs real
                self.metrics[p + f"fad_{name}"] = frechet_between(np.asarray(analysis[key]), np.asarray(reference))
        for head, vocabulary in self.vocabularies.items():
            labels = [clip_labels(m, head) & set(vocabulary) for m in metas]
            rows = [i for i, label in enumerate(labels) if label]
            classes = set().union(*(labels[i] for i in rows)) if rows else set()
            if len(classes) < 2:
                self.skipped[f"quality/{head}_*"] = f"the test clips hold {len(classes)} known {head} class(es): {sorted(classes)}"
                continue
            p_gt = np.asarray(gt[f"post/{head}"])[rows]
            for condition, analysis in analyses.items():
                p = prefix(condition, "quality")
                probs = np.asarray(analysis[f"post/{head}"])[rows]
                kl = (p_gt * (np.log(p_gt + 1e-10) - np.log(probs + 1e-10))).sum(axis=1)
                hits = [vocabulary[int(np.argmax(q))] in labels[i] for q, i in zip(probs, rows, strict=True)]
                self.metrics[p + f"kl_{head}"] = float(kl.mean())
                self.metrics[p + f"{head}_acc"] = float(np.mean(hits))
            self.metrics[f"eval/{head}_classes"] = len(classes)
        for condition, values in pairwise.items():
            p = prefix(condition, "quality")
            for name, per_clip in values.items():
                self.metrics[p + name] = float(np.mean(per_clip))

    def speech(self, metas: list[dict], analyses: dict[str, dict]) -> None:
        rows = [i for i, m in enumerate(metas) if (m.get("transcript") or "").strip()]
        if not rows:
            self.skipped["speech/wer, speech/cer"] = "no test clip has a transcript"
        elif all(analyses["gt"]["text"][i] is None for i in rows):
            self.skipped["speech/wer, speech/cer"] = "no recognizer (Whisper tiny.en: pip install -e '.[eval]')"
        else:
            for condition, analysis in analyses.items():
                p = prefix(condition, "speech")
                rates = error_rates([analysis["text"][i] or "" for i in rows], [metas[i]["transcript"] for i in rows])
                self.metrics.update({p + k: v for k, v in rates.items()})
            self.metrics["eval/speech_clips"] = len(rows)
        lips = {c: [v for v in a["lip"] if v is not None and np.isfinite(v)] for c, a in analyses.items()}
        if not lips["gt"]:
            self.skipped["speech/lip_corr"] = "no test clip records a mouth track (mouth_opening)"
        else:
            for condition, values in lips.items():
                if values:
                    self.metrics[prefix(condition, "speech") + "lip_corr"] = float(np.mean(values))

    def watermark(self, analyses: dict[str, dict], marked: bool, fpr: float | None) -> None:
        if not marked:
            self.skipped["watermark/*"] = "generated audio was not watermarked (watermark=off)"
            return
        for condition, name in (("generated", "detection_rate"), ("gt", "false_positive_rate")):
            p_values = [p for p in analyses[condition]["watermark_p"] if p is not None]
            self.metrics[f"watermark/{name}"] = float(np.mean([p < fpr for p in p_values]))
