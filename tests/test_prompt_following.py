"""The prompt-following trials: which clips, which prompts, and rates that follow what was generated."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from v2a.data.synthetic.impacts import material_caption
from v2a.evaluation.prompt_following import evaluate_prompt_following, plan_trials, run_trials, summarize

MATERIALS = ["metal", "wood", "glass", "rubber"]


def meta(materials: list[str], hidden: bool | None) -> dict:
    out = {"materials": materials, "events": [{"time": 0.5, "kind": "impact", "material": m} for m in materials]}
    if hidden is not None:
        out["material_hidden"] = hidden
    return out


def batch_of(metas: list[dict]) -> dict:
    return {"key": [f"clip{i}" for i in range(len(metas))], "meta": metas, "frames": torch.zeros(len(metas), 2, 3, 4, 4)}


def test_trials_use_single_object_clips_and_never_prompt_the_true_material():
    metas = [meta(["wood"], True), meta(["metal"], False), meta(["wood", "glass"], True), meta(["glass"], None)]
    trials = plan_trials([f"clip{i}" for i in range(4)], metas, MATERIALS, seed=0)
    assert [(t.row, t.kind) for t in trials] == [(0, "prompt"), (1, "negative")]  # two materials / no flag: skipped
    prompt, negative = trials
    assert prompt.target != "wood" and prompt.prompt == material_caption(prompt.target) and prompt.negative_prompt is None
    assert negative.target == "metal" and negative.negative_prompt == material_caption("metal") and negative.prompt is None
    again = plan_trials([f"clip{i}" for i in range(4)], metas, MATERIALS, seed=0)
    assert again == trials  # the same prompt for a clip in every run
    targets = {plan_trials(["k"], [meta(["wood"], True)], MATERIALS, seed=s)[0].target for s in range(30)}
    assert targets == {"metal", "glass", "rubber"}


def fake_model(follow_prompt: bool, obey_negative: bool, video_material: str = "wood"):
    """Audio whose first sample encodes a material index: the prompt's, or the video's."""
    def generate(frames: torch.Tensor, *, generator: torch.Generator, prompt: str | None = None,
                 negative_prompt: str | None = None) -> torch.Tensor:
        heard = video_material
        if prompt and follow_prompt:
            heard = prompt.split()[1]
        if negative_prompt and obey_negative and negative_prompt.split()[1] == heard:
            heard = "rubber" if heard != "rubber" else "metal"
        audio = torch.zeros(frames.shape[0], 8)
        audio[:, 0] = MATERIALS.index(heard)
        return audio

    def classify(audio: np.ndarray) -> np.ndarray:
        return np.eye(len(MATERIALS))[audio[:, 0].astype(int)]

    return generate, classify


def test_rates_follow_what_was_generated():
    metas = [meta(["wood"], True) for _ in range(6)] + [meta(["wood"], False) for _ in range(4)]
    batches = [batch_of(metas)]
    records = run_trials(batches, *fake_model(True, True), MATERIALS)
    rates = summarize(records)
    assert rates["prompt/n_prompt_trials"] == 6 and rates["prompt/n_negative_trials"] == 4
    assert rates["prompt/follow_rate"] == 1.0 and rates["prompt/follow_chance"] == 0.0  # video says wood, never prompted
    assert rates["prompt/negative_suppression"] == 1.0 and rates["prompt/negative_baseline"] == 0.0
    deaf = summarize(run_trials(batches, *fake_model(False, False), MATERIALS))
    assert deaf["prompt/follow_rate"] == 0.0 and deaf["prompt/negative_suppression"] == 0.0
    assert math.isnan(summarize([])["prompt/follow_rate"])


def test_a_video_only_model_is_refused(tmp_path):
    class VideoOnly:
        text_inputs = ()

    with pytest.raises(ValueError, match="prompt encoder"):
        evaluate_prompt_following(VideoOnly(), data="unused", split="test", classifier="x", out_dir=tmp_path)
