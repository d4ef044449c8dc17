"""Spectrogram figures with event markers: where a person would rather look than read."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_mels(path: str | Path, panels: list[tuple[str, np.ndarray]], frame_rate: float,
              true_times: list[float] | None = None, detected: dict[str, list[float]] | None = None) -> Path:
    """One row per (title, mel [n_mels, F]); ground-truth events as white dashes, detections as red ticks."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.2 * len(panels)), squeeze=False)
    for ax, (title, mel) in zip(axes[:, 0], panels, strict=True):
        extent = (0, mel.shape[-1] / frame_rate, 0, mel.shape[0])
        ax.imshow(mel, origin="lower", aspect="auto", extent=extent, cmap="magma", vmin=-3, vmax=3)
        for t in true_times or []:
            ax.axvline(t, color="white", linestyle="--", linewidth=0.8)
        for t in (detected or {}).get(title, []):
            ax.plot([t, t], [mel.shape[0] * 0.85, mel.shape[0]], color="red", linewidth=2)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("mel bin")
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
