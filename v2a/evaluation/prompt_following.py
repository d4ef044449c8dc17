"""Does the prompt steer the sound where the video is ambiguous, and does the negative prompt suppress?

The test needs clips whose video hides what the sound is made of: impacts drawn in neutral grey
(``meta["material_hidden"]``, data built with ``v2a/conf/data_prep/synthetic_prompt.yaml``). With one
object on screen, the video gives the timing and the prompt alone names the material:

* **prompt trials** (hidden material): prompt ``a {m} object bouncing on the floor`` for a material
  ``m`` other than the clip's own; success when the audio classifier hears ``m``.
* **negative trials** (material shown by its colour): negative prompt naming the shown material, no
  prompt; success when the classifier does *not* hear it.

Each trial is also generated without any text (same noise), which gives the chance level of the
prompt trials and the suppression rate that needs no negative prompt: the rates only mean something
next to those baselines.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from v2a.data.synthetic.impacts import material_caption
from v2a.evaluation.labels import clip_labels

log = logging.getLogger(__name__)

Generate = Callable[..., torch.Tensor]   # (frames, *, prompt, negative_prompt, generator) -> audio [B, N]
Classify = Callable[[np.ndarray], np.ndarray]  # audio [B, N] -> material posteriors [B, C]


@dataclass(frozen=True)
class Trial:
    """One generation to judge: ``target`` is the material to hear (prompt) or not to hear (negative)."""

    key: str
    row: int            # row of the clip in its batch
    kind: str           # "prompt" | "negative"
    target: str
    prompt: str | None
    negative_prompt: str | None


def plan_trials(keys: list[str], metas: list[dict], materials: list[str], seed: int) -> list[Trial]:
    """The trials of one batch: single-material clips only (one answer to judge against).

    The prompted material of a hidden clip is drawn from the others with a generator seeded by the
    clip's key, so a clip gets the same prompt in every run.
    """
    trials = []
    for row, (key, meta) in enumerate(zip(keys, metas, strict=True)):
        present = clip_labels(meta, "material")
        if len(present) != 1 or "material_hidden" not in meta:
            continue
        (truth,) = present
        if meta["material_hidden"]:
            others = [m for m in materials if m != truth]
            rng = np.random.default_rng([seed, *key.encode()])
            target = others[int(rng.integers(len(others)))]
            trials.append(Trial(key, row, "prompt", target, material_caption(target), None))
        else:
            trials.append(Trial(key, row, "negative", truth, None, material_caption(truth)))
    return trials


def _grouped(trials: list[Trial]) -> dict[tuple[str | None, str | None], list[Trial]]:
    groups: dict[tuple[str | None, str | None], list[Trial]] = {}
    for trial in trials:
        groups.setdefault((trial.prompt, trial.negative_prompt), []).append(trial)
    return groups


def run_trials(batches: Iterable[dict], generate: Generate, classify: Classify, materials: list[str], *,
               seed: int = 0) -> list[dict]:
    """Generate every trial with its text and without any text; one record per trial.

    The two generations of a trial start from the same noise, so they differ only by the text.
    """
    records = []
    for batch in batches:
        trials = plan_trials(list(batch["key"]), list(batch["meta"]), materials, seed)
        for (prompt, negative), group in _grouped(trials).items():
            frames = batch["frames"][[t.row for t in group]]
            heard = {}
            for name, texts in (("with_text", {"prompt": prompt, "negative_prompt": negative}), ("no_text", {})):
                generator = torch.Generator().manual_seed(seed)
                audio = generate(frames, generator=generator, **texts)
                heard[name] = classify(audio.cpu().numpy()).argmax(axis=1)
            for i, trial in enumerate(group):
                records.append({"key": trial.key, "kind": trial.kind, "target": trial.target,
                                "heard": materials[int(heard["with_text"][i])],
                                "heard_without_text": materials[int(heard["no_text"][i])]})
    return records


def summarize(records: list[dict]) -> dict[str, float]:
    """Rates of the prompt and negative trials, each beside its no-text baseline (NaN without trials)."""
    def rate(kind: str, field: str, hit: bool) -> float:
        rows = [r for r in records if r["kind"] == kind]
        return float(np.mean([(r[field] == r["target"]) == hit for r in rows])) if rows else float("nan")

    return {
        "prompt/follow_rate": rate("prompt", "heard", True),
        "prompt/follow_chance": rate("prompt", "heard_without_text", True),
        "prompt/negative_suppression": rate("negative", "heard", False),
        "prompt/negative_baseline": rate("negative", "heard_without_text", False),
        "prompt/n_prompt_trials": float(sum(r["kind"] == "prompt" for r in records)),
        "prompt/n_negative_trials": float(sum(r["kind"] == "negative" for r in records)),
    }


def evaluate_prompt_following(module, *, data: str, split: str, classifier: str | None, out_dir: str | Path,
                              batch_size: int = 50, max_clips: int | None = None, steps: int | None = None,
                              cfg_scale: float | None = None, seed: int = 0) -> dict[str, float]:
    """Run the trials for ``module`` on ``data``'s ``split``; write ``prompt_following.json`` and merge the
    rates into ``metrics.json`` (both under ``out_dir``). Returns the rates."""
    from v2a.evaluation.classifier import ClassifierEmbedder
    from v2a.evaluation.references import iterate_batches

    if "prompt" not in module.text_inputs:
        raise ValueError("prompt_following=true needs a model trained with a prompt encoder "
                         "(e.g. experiment=v2a_prompt_tiny); this checkpoint is video-only")
    if not classifier:
        raise ValueError("prompt_following=true needs classifier= (an audio-classifier export with a material head)")
    judge = ClassifierEmbedder(classifier, device=str(module.device))
    materials = list(judge.vocabularies["material"])
    sample_rate = module.features.spec.sample_rate

    def classify(audio: np.ndarray) -> np.ndarray:
        return judge.posteriors(audio, sample_rate)["material"]

    def generate(frames: torch.Tensor, **kwargs) -> torch.Tensor:
        return module.generate_audio(frames, steps=steps, cfg_scale=cfg_scale, **kwargs)

    batches = tqdm(iterate_batches(data, split, module.features.spec, batch_size, max_clips), desc="prompt trials",
                   unit="batch")
    records = run_trials(batches, generate, classify, materials, seed=seed)
    if not records:
        raise ValueError(f"{data} ({split}) has no single-object clips with a 'material_hidden' flag: build the "
                         "data with v2a/conf/data_prep/synthetic_prompt.yaml")
    rates = summarize(records)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "prompt_following.json", {"rates": rates, "trials": records})
    metrics_path = out / "metrics.json"
    report = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {"metrics": {}}
    report["metrics"] = {**report.get("metrics", {}), **rates}   # beside the other metrics, for `compare`
    _write_json(metrics_path, report)
    return rates


def _write_json(path: Path, value: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")   # never a half-written file, even if interrupted
    tmp.write_text(json.dumps(value, indent=2))
    os.replace(tmp, path)
