"""Which voice type does the phoneme prior alone render? The prior's mel (recorded phoneme times, Griffin-Lim), no flow.

    python bench/prior_voice.py --export MODEL_EXPORT --data data/synthetic_dialogue_solo [--max-clips 50] [--write]

Rows: the ground truth and its mel through the model's vocoder (the ceilings); the prior in the voice the clip's
prompt names; the prior with the prompt asking for the other type ("a woman speaking" for a man's clip, scored
against the type asked); and, for models with a voice code (``model.phoneme_encoder.code_dim``), the prior given the
code read from the clip's own mel (what training feeds it). Speaker types by Resemblyzer, centroids from the ground
truth of ``--references``' val split (the `eval` extra).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.report import load_average, machine, write_section  # noqa: E402
from v2a.evaluation.references import iterate_batches  # noqa: E402
from v2a.evaluation.speaker import SpeakerTypes, ask_for_other_type, speaker_of  # noqa: E402
from v2a.models.v2a_net import PRIOR_KEY  # noqa: E402
from v2a.pipeline import V2APipeline  # noqa: E402
from v2a.text.phoneme_timing import recorded_track  # noqa: E402

ROWS = {"gt": "ground-truth audio", "gt_vocoded": "ground-truth mel through the vocoder",
        "prompt": "prior, the clip's prompt", "other": "prior, the prompt asking for the other type",
        "read": "prior, the voice code read from the clip's own mel"}


def prior_audio(pipeline: V2APipeline, track: tuple[torch.Tensor, torch.Tensor], prompts: list[str], n_mel_frames: int,
                reference: torch.Tensor | None = None) -> np.ndarray:
    """The prior's mel for ``track`` in the voice of ``prompts`` (or of ``reference``'s code), vocoded [B, samples]."""
    texts = pipeline.text_conditioning.tokenize(len(prompts), pipeline.device, prompt=prompts)
    cond = pipeline.net(phonemes=track, text={"prompt": texts["prompt"]}, reference=reference)
    return pipeline.vocoder(pipeline.prior_as_mel(cond[PRIOR_KEY], n_mel_frames)).numpy()


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--references", default="data/synthetic_dialogue", help="its val split's voices: the centroids")
    parser.add_argument("--max-clips", type=int, default=50)
    parser.add_argument("--section", default="prior_voice")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipeline = V2APipeline.from_pretrained(args.export)
    if not pipeline.net.has_prior or "prompt" not in pipeline.text_inputs:
        sys.exit(f"error: {args.export} has no phoneme prior or reads no prompt")
    spec, net = pipeline.spec, pipeline.net
    types = SpeakerTypes.from_split(args.references, "val", spec)
    hits: dict[str, list[bool]] = {}
    for batch in iterate_batches(args.data, "test", spec, 25, args.max_clips):
        metas = batch["meta"]
        track = recorded_track(metas, pipeline.phoneme_vocabulary, spec.n_audio_tokens, spec.token_rate)
        mel = pipeline.features(batch["audio"])
        captions = [m.get("caption") or "" for m in metas]
        asked = [ask_for_other_type(c) for c in captions]

        others = [a[0] if a else c for a, c in zip(asked, captions, strict=True)]
        audio = {"gt": batch["audio"].numpy(), "gt_vocoded": pipeline.vocoder(mel).numpy(),
                 "prompt": prior_audio(pipeline, track, captions, mel.shape[-1]),
                 "other": prior_audio(pipeline, track, others, mel.shape[-1])}
        if net.phoneme_encoder.has_voice_code:
            audio["read"] = prior_audio(pipeline, track, captions, mel.shape[-1], reference=mel)
        for i, meta in enumerate(metas):
            if (speaker := speaker_of(meta)) is None:
                continue
            for name, clips in audio.items():
                want = asked[i][1] if name == "other" and asked[i] else speaker
                if name == "other" and not asked[i]:
                    continue
                hits.setdefault(name, []).append(types(clips[i], spec.sample_rate) == want)
    lines = ["| audio | speaker type (the type asked for) | clips |", "| --- | --- | --- |"]
    lines += [f"| {ROWS[name]} | {np.mean(h):.3f} | {len(h)} |" for name, h in hits.items()]
    command = (f"python bench/prior_voice.py --export {args.export} --data {args.data} --max-clips {args.max_clips}"
               + (f" --references {args.references}" if args.references != "data/synthetic_dialogue" else ""))
    markdown = "\n".join(["## The phoneme prior alone: which voice type it renders (issue 15)", "",
                          f"`{command}` — {machine()}; {load_average()}", "", *lines])
    print(markdown)
    if args.write:
        write_section(args.section, markdown)


if __name__ == "__main__":
    main()
