"""Render a run's TensorBoard view into one image (the README's screenshot of the logger view).

    python bench/logger_view.py RUN/tensorboard/version_0 --out docs/training_logger_view.png

No browser is available to render TensorBoard's page headless here, so this draws what TensorBoard shows
from the same event file with matplotlib: the scalar charts (train/, val/, sys/), the latest demo
spectrograms (reference above generated, true events dashed) and the generated audio's waveform.
"""

from __future__ import annotations

import argparse
import io
import wave
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# (title, tags) of the scalar charts, in TensorBoard's alphabetical groups
CHARTS = [
    ("train/loss, val/loss", ["train/loss", "val/loss"]),
    ("loss per flow time (val, EMA)", ["val/loss_t_small", "val/loss_t_middle", "val/loss_t_large"]),
    ("train/grad_norm (before clipping)", None),   # every train/grad_norm* tag
    ("train/ema_distance", ["train/ema_distance"]),
    ("train/param_norm", ["train/param_norm"]),
    ("train/lr", ["train/lr"]),
    ("sys/clips_per_s", ["sys/clips_per_s"]),
    ("sys/data_wait_frac", ["sys/data_wait_frac"]),
]


def _audio(encoded: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(encoded)) as file:
        return np.frombuffer(file.readframes(file.getnframes()), dtype=np.int16) / 32768.0


def render(log_dir: Path, out: Path, clips: int = 2, label: str | None = None) -> Path:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "audio": 0})
    events.Reload()
    tags = events.Tags()
    scalars = set(tags["scalars"])
    images = sorted(t for t in tags["images"] if t.startswith("samples/"))[:clips]
    audio = sorted(t for t in tags["audio"] if t.startswith("samples/") and t.endswith("/generated"))[:clips]
    fig = plt.figure(figsize=(16, 11))
    grid = fig.add_gridspec(4, 4, height_ratios=[1, 1, 2.2, 0.6], hspace=0.55, wspace=0.3)
    for i, (title, wanted) in enumerate(CHARTS):
        ax = fig.add_subplot(grid[i // 4, i % 4])
        wanted = wanted or sorted(t for t in scalars if t.startswith("train/grad_norm"))
        for tag in wanted:
            if tag in scalars:
                points = events.Scalars(tag)
                ax.plot([p.step for p in points], [p.value for p in points], label=tag,
                        marker="o" if len(points) < 12 else None, markersize=3, linewidth=1.2)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if len(wanted) > 1:
            ax.legend(fontsize=6)
        ax.set_xlabel("step", fontsize=7)
    for j, tag in enumerate(images):
        latest = events.Images(tag)[-1]
        ax = fig.add_subplot(grid[2, 2 * j:2 * j + 2])
        ax.imshow(plt.imread(io.BytesIO(latest.encoded_image_string), format="png"))
        ax.set_title(f"IMAGES  {tag}  (step {latest.step})", fontsize=9)
        ax.axis("off")
    for j, tag in enumerate(audio):
        latest = events.Audio(tag)[-1]
        ax = fig.add_subplot(grid[3, 2 * j:2 * j + 2])
        samples = _audio(latest.encoded_audio_string)
        ax.plot(np.arange(len(samples)) / latest.sample_rate, samples, linewidth=0.4)
        ax.set_title(f"AUDIO  {tag}  (step {latest.step}, {latest.sample_rate} Hz)", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("time (s)", fontsize=7)
    fig.suptitle(f"TensorBoard view of {label or log_dir} (drawn from the event file with matplotlib)", fontsize=10)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log_dir", type=Path, help="RUN/tensorboard/version_N")
    parser.add_argument("--out", type=Path, default=Path("docs/training_logger_view.png"))
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--label", help="what the title calls the run (default: the folder)")
    args = parser.parse_args()
    print(render(args.log_dir, args.out, args.clips, args.label))


if __name__ == "__main__":
    main()
