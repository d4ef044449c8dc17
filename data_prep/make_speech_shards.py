"""Audio-only speech shards synthesised with espeak-ng (for vocoder training and speech copy-synthesis tests).

    python data_prep/make_speech_shards.py --out data/speech --train 2000 --val 100 --test 100 --seed 0

Each sample is a fixed-length clip (FLAC at 16 kHz) of one sentence spoken by one voice/variant at one
speed, with a JSON sidecar (transcript, voice, speed). Everything is drawn from ``--seed``, so a rerun
gives the same clips; finished shards are kept (atomic writes, ``index.json``). The splits use disjoint
sentences (different seeds per split) from the same voices, so test speech is unseen text.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np

from v2a.data.shard_writer import chunked, finished_shards, read_index, record_shard, shard_name, write_shard
from v2a.media import decode_mono, encode_flac

log = logging.getLogger("make_speech_shards")

VOICES = ("en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-gb-x-gbclan")
VARIANTS = ("", "+f2", "+f3", "+f4", "+m3", "+m5")  # espeak-ng voice variants: pitch/formant changes
SPEEDS = (120, 140, 160, 180)
WORDS = (
    "the a one two three red green blue small large quick slow bright dark cold warm old new river stone glass "
    "metal wooden paper window table chair garden market station bridge winter summer morning evening people "
    "children music water light sound voice picture letter number question answer country city mountain ocean "
    "forest animal bird horse engine machine doctor teacher kitchen bottle hammer ball drum bell door floor "
    "falls rolls rings breaks opens closes walks runs speaks sings reads writes carries finds holds moves "
    "turns stops starts waits listens watches under over behind beside through across near far and but so "
    "because while after before then again quietly loudly slowly quickly softly suddenly carefully today"
).split()


def sentence(rng: random.Random) -> str:
    """A random word sequence of 6-14 words (phonetically varied, not meant to make sense)."""
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14)))


def speak(text: str, voice: str, speed: int, sample_rate: int) -> np.ndarray:
    """espeak-ng -> mono float32 at ``sample_rate`` (argument list, never a shell string)."""
    result = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text],
                            capture_output=True, check=True, timeout=60)
    return decode_mono(result.stdout, sample_rate)


def make_clip(rng: random.Random, *, duration: float, sample_rate: int) -> tuple[np.ndarray, dict]:
    """One clip: a sentence, cropped at a random offset (or zero-padded) to ``duration`` seconds."""
    text, voice = sentence(rng), rng.choice(VOICES) + rng.choice(VARIANTS)
    speed, gain = rng.choice(SPEEDS), rng.uniform(0.3, 0.9)
    audio = speak(text, voice, speed, sample_rate)
    length = int(round(duration * sample_rate))
    start = rng.randint(0, max(0, len(audio) - length))
    clip = np.zeros(length, dtype=np.float32)
    piece = audio[start:start + length]
    clip[:len(piece)] = piece
    peak = float(np.abs(clip).max())
    if peak > 0:
        clip *= gain / peak
    meta = {"sample_rate": sample_rate, "duration": duration, "transcript": text, "voice": voice, "speed": speed,
            "offset_s": start / sample_rate, "source": "espeak-ng", "license": "synthetic (espeak-ng, GPL-3.0 tool)"}
    return clip, meta


def build_split(out_dir: Path, split: str, count: int, *, seed: int, duration: float, sample_rate: int,
                per_shard: int) -> int:
    """Write ``count`` clips of ``split`` into ``out_dir/split``; returns the number of clips in the index."""
    split_dir = out_dir / split
    split_dir.mkdir(parents=True, exist_ok=True)
    index = read_index(split_dir)
    done = finished_shards(split_dir, index)
    split_seed = {"train": 0, "val": 1, "test": 2}.get(split, 3)
    for number, ids in chunked(list(range(count)), per_shard):
        path = split_dir / shard_name(split, number)
        if path.name in done:
            continue

        def samples(ids: list[int] = ids):
            for i in ids:
                rng = random.Random(f"{seed}/{split_seed}/{i}")  # per-clip seed: shards rebuild identically
                clip, meta = make_clip(rng, duration=duration, sample_rate=sample_rate)
                yield {"__key__": f"speech_{split}_{i:06d}", "flac": encode_flac(clip, sample_rate),
                       "json": json.dumps(meta).encode()}

        record_shard(split_dir, index, path, write_shard(path, samples()))
        log.info("wrote %s", path)
    return read_index(split_dir)["samples"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/speech"))
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--val", type=int, default=100)
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--per-shard", type=int, default=100)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if shutil.which("espeak-ng") is None:
        raise SystemExit("error: espeak-ng is not installed (apt-get install espeak-ng)")
    for split in ("train", "val", "test"):
        total = build_split(args.out, split, getattr(args, split), seed=args.seed, duration=args.duration,
                            sample_rate=args.sample_rate, per_shard=args.per_shard)
        print(f"{split}: {total} clips in {args.out / split}", flush=True)


if __name__ == "__main__":
    main()
