"""Run resemble-perth (PerthImplicitWatermarker) on clips stored in an .npz; used by bench/watermark.py.

Runs in its OWN virtual environment (perth needs librosa and its own torch), e.g.::

    /work/perth-venv/bin/python bench/perth_adapter.py embed IN.npz OUT.npz
    /work/perth-venv/bin/python bench/perth_adapter.py detect IN.npz OUT.json

The .npz holds arrays ``a0, a1, ...`` (mono float32) and ``sr`` (int array, one rate per clip).
``embed`` writes the marked clips in the same layout plus ``seconds`` (wall time);
``detect`` writes JSON ``{"scores": [...], "seconds": t}`` where a score is the mean of the
decoded (soft, 0..1) watermark bits; perth's model weights ship inside the wheel (offline).
"""

from __future__ import annotations

import importlib.resources
import json
import sys
import time
import types

import numpy as np

# perth imports pkg_resources.resource_filename, which recent setuptools no longer ship.
if "pkg_resources" not in sys.modules:
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = lambda pkg, name: str(importlib.resources.files(pkg) / name)
        sys.modules["pkg_resources"] = shim


def _load(path: str) -> tuple[list[np.ndarray], list[int]]:
    data = np.load(path)
    rates = [int(r) for r in data["sr"]]
    return [data[f"a{i}"].astype(np.float32) for i in range(len(rates))], rates


def main(argv: list[str]) -> int:
    mode, src, dst = argv
    import perth
    import torch

    torch.set_num_threads(2)
    marker = perth.PerthImplicitWatermarker(device="cpu")
    clips, rates = _load(src)
    start = time.perf_counter()
    if mode == "embed":
        out = [np.asarray(marker.apply_watermark(x, sample_rate=sr), dtype=np.float32)[: len(x)]
               for x, sr in zip(clips, rates, strict=True)]
        elapsed = time.perf_counter() - start
        np.savez(dst, sr=np.array(rates), seconds=np.array(elapsed), **{f"a{i}": a for i, a in enumerate(out)})
    elif mode == "detect":
        scores = [float(np.mean(marker.get_watermark(x, sample_rate=sr, round=False)))
                  for x, sr in zip(clips, rates, strict=True)]
        with open(dst, "w") as fh:
            json.dump({"scores": scores, "seconds": time.perf_counter() - start}, fh)
    else:
        raise SystemExit(f"unknown mode {mode}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
