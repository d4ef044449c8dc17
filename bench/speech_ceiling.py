"""What limits the intelligibility of generated dialogue? Two ceilings through Whisper tiny.en (issue 15).

    .venv/bin/python bench/speech_ceiling.py --export DIALOGUE_EXPORT [--train-clips 1200] [--steps 1000] [--clips 30] \
        [--dim 128] [--layers 4]

On speech-alone test clips (data/synthetic_dialogue_solo), WER/CER of:

- the ground-truth audio, and its log-mel through the model's vocoder (Griffin-Lim): is the vocoder the limit?
- a mean-mel lookup per (phoneme, quarter of the phoneme) over the training clips, placed on the recorded phoneme
  times (no context, no model);
- a phoneme-track regressor (``PhonemeTrackEncoder``, ``--layers`` conv layers of ``--dim``, + a linear head to the mel tokens) trained
  ``--steps`` steps by MSE on the training clips at batch 16: what a regression with clean gradients learns in the
  steps a flow model gets.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import webdataset as wds

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from v2a.data.decode import decode_sample  # noqa: E402
from v2a.data.shard_writer import read_index  # noqa: E402
from v2a.evaluation.speech import WhisperRecognizer, error_rates  # noqa: E402
from v2a.models.phoneme_track import PhonemeTrackEncoder  # noqa: E402
from v2a.pipeline import V2APipeline  # noqa: E402
from v2a.text.phoneme_timing import recorded_track  # noqa: E402

BUCKETS = 4  # quarters of a phoneme in the lookup


def load(root: str, split: str, n: int, pipe: V2APipeline):
    """(mels [N, n_mels, F], phoneme ids [N, T], positions [N, T], transcripts, audio) of the first n clips."""
    spec, mels, ids, where, texts, audio = pipe.spec, [], [], [], [], []
    for shard in read_index(f"{root}/{split}")["shards"]:
        for raw in wds.WebDataset(f"{root}/{split}/{shard['name']}", shardshuffle=False, empty_check=False):
            sample = decode_sample(raw, spec)
            with torch.no_grad():
                mels.append(pipe.features(sample["audio"][None])[0])
            i, w = recorded_track([sample["meta"]], pipe.phoneme_vocabulary, spec.n_audio_tokens, spec.token_rate)
            ids.append(i[0])
            where.append(w[0])
            texts.append(sample["meta"]["transcript"])
            audio.append(sample["audio"].numpy())
            if len(mels) >= n:
                break
        if len(mels) >= n:
            break
    return torch.stack(mels), torch.stack(ids), torch.stack(where), texts, audio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", required=True, help="a phoneme-track dialogue export (its features, vocoder, vocabulary)")
    parser.add_argument("--data", default="data/synthetic_dialogue")
    parser.add_argument("--data-solo", default="data/synthetic_dialogue_solo")
    parser.add_argument("--train-clips", type=int, default=1200)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--clips", type=int, default=30)
    parser.add_argument("--dim", type=int, default=128, help="the regressor's width")
    parser.add_argument("--layers", type=int, default=4, help="the regressor's residual conv layers")
    parser.add_argument("--lr", type=float, default=2e-3)
    args = parser.parse_args()
    torch.manual_seed(0)
    pipe = V2APipeline.from_pretrained(args.export)
    k = pipe.spec.mel_frames_per_token
    mel, ids, where, _, _ = load(args.data, "train", args.train_clips, pipe)
    test_mel, test_ids, test_where, refs, test_audio = load(args.data_solo, "test", args.clips, pipe)
    frames = mel.shape[-1]
    denoiser = pipe.net.denoiser  # its token layout: k mel frames a token

    def untokenize(t: torch.Tensor) -> torch.Tensor:
        mel = denoiser.untokenize(t)
        return torch.nn.functional.pad(mel, (0, frames - mel.shape[-1]), value=float(mel.mean()))

    target = denoiser.tokenize(mel[..., : frames // k * k])[:, : ids.shape[1]]
    # the lookup: mean mel token per (phoneme id, quarter)
    bucket = (where * BUCKETS).clamp(max=BUCKETS - 1).long()
    sums = torch.zeros(len(pipe.phoneme_vocabulary), BUCKETS, target.shape[-1])
    counts = torch.zeros(len(pipe.phoneme_vocabulary), BUCKETS, 1)
    sums.index_put_((ids, bucket), target, accumulate=True)
    counts.index_put_((ids, bucket), torch.ones(*ids.shape, 1), accumulate=True)
    means = sums / counts.clamp(min=1)
    lookup = untokenize(means[test_ids, (test_where * BUCKETS).clamp(max=BUCKETS - 1).long()])
    # the regressor
    encoder = PhonemeTrackEncoder(vocab_size=len(pipe.phoneme_vocabulary), dim=args.dim, layers=args.layers, kernel=5)
    head = torch.nn.Linear(args.dim, target.shape[-1])
    optimizer = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=args.lr)
    generator = torch.Generator().manual_seed(0)
    for _ in range(args.steps):
        rows = torch.randint(0, len(mel), (16,), generator=generator)
        loss = (head(encoder(ids[rows], where[rows])) - target[rows]).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        regressed = untokenize(head(encoder(test_ids, test_where)))
    recognize = WhisperRecognizer(threads=1).transcribe
    rate = pipe.spec.sample_rate
    rows = {"ground truth mel through the vocoder": test_mel, "per-phoneme mean-mel lookup": lookup,
            f"phoneme-track regressor (dim {args.dim}, {args.layers} layers), {args.steps} steps": regressed}
    print("| speech | WER | CER |\n| --- | --- | --- |")
    rates = error_rates([recognize(a, rate) for a in test_audio], refs)
    print(f"| ground-truth audio | {rates['wer']:.3f} | {rates['cer']:.3f} |", flush=True)
    for name, mels in rows.items():
        heard = [recognize(pipe.vocoder(m[None])[0].numpy(), rate) for m in mels]
        rates = error_rates(heard, refs)
        print(f"| {name} | {rates['wer']:.3f} | {rates['cer']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
