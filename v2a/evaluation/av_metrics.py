"""The av-benchmark columns' arithmetic, as hkchengrex/av-benchmark (MMAudio's evaluation) computes them.

Papers of the field (MMAudio, ThinkSound, HunyuanVideo-Foley) report FD with PaSST / PANNs / VGGish embeddings,
KL and IS from classifier logits, the ImageBind audio-video score and DeSync. The embeddings come from
:mod:`v2a.evaluation.av_embedders`; here is what is done with them, each as av-benchmark defines it:

- **FD** (:func:`v2a.evaluation.frechet.frechet_between`): Fréchet distance of Gaussians fitted to generated and
  reference embeddings. PaSST and PANNs: one embedding per clip; VGGish: one per 0.96 s frame, the frames of
  all clips pooled (av-benchmark concatenates them).
- **KL** (:func:`kl_softmax`): paired, KL(p_reference || p_generated) of the classifier's softmax posteriors
  (``eps`` 1e-6 added to the generated probabilities), summed over classes and averaged over clips
  (audioldm_eval's ``kl_softmax``; av-benchmark's KL_PANNs / KL_PaSST).
- **IS** (:func:`inception_score`): exp(E_x KL(p(y|x) || p(y))) over the generated clips' softmax posteriors in 10
  splits after a shuffle with seed 2020; mean (and std) over splits (torch-fidelity's, as av-benchmark uses).
- **IB-score** (:func:`imagebind_score`): the mean cosine similarity of the ImageBind video and audio embeddings
  of each pair (often reported x100).
- **DeSync** (:func:`desync`): Synchformer's predicted offset, |class-grid value of the argmax| over 21 classes
  from -2 s to +2 s, for the first and the last 4.8 s of each clip, averaged (seconds).
"""

from __future__ import annotations

import numpy as np
import torch

from v2a.evaluation.frechet import frechet_between

EPS = 1e-6                 # added to generated probabilities before the log (audioldm_eval)
IS_SPLITS = 10
IS_SEED = 2020
SYNC_GRID = (-2.0, 2.0, 21)  # Synchformer's offset classes: -2.0, -1.8, ..., +2.0 s


def fd(generated: np.ndarray, reference: np.ndarray) -> float:
    """Fréchet distance between embeddings [N, D] and [M, D]."""
    return frechet_between(np.asarray(generated, dtype=np.float64), np.asarray(reference, dtype=np.float64))


def kl_softmax(generated_logits: np.ndarray, reference_logits: np.ndarray) -> float:
    """Mean over paired clips of KL(softmax(reference) || softmax(generated) + eps), in nats."""
    pred = torch.as_tensor(np.asarray(generated_logits), dtype=torch.float64)
    ref = torch.as_tensor(np.asarray(reference_logits), dtype=torch.float64)
    if pred.shape != ref.shape or pred.ndim != 2:
        raise ValueError(f"KL needs paired logits of one shape [N, C], got {tuple(pred.shape)} and {tuple(ref.shape)}")
    kl = torch.nn.functional.kl_div((pred.softmax(dim=1) + EPS).log(), ref.softmax(dim=1), reduction="sum")
    return float(kl / len(pred))


def inception_score(logits: np.ndarray, splits: int = IS_SPLITS, shuffle: bool = True,
                    seed: int = IS_SEED) -> tuple[float, float]:
    """(mean, std) over ``splits`` of exp(E_x KL(p(y|x) || p(y))) of the generated clips' logits [N, C]."""
    x = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    if x.ndim != 2 or len(x) < splits:
        raise ValueError(f"IS needs logits [N, C] with N >= splits ({splits}), got {tuple(x.shape)}")
    if shuffle:
        x = x[np.random.RandomState(seed).permutation(len(x))]
    p, log_p = x.softmax(dim=1), x.log_softmax(dim=1)
    scores = []
    n = len(x)
    for i in range(splits):
        chunk, log_chunk = p[i * n // splits:(i + 1) * n // splits], log_p[i * n // splits:(i + 1) * n // splits]
        marginal = chunk.mean(dim=0, keepdim=True)
        scores.append(float((chunk * (log_chunk - marginal.log())).sum(dim=1).mean().exp()))
    return float(np.mean(scores)), float(np.std(scores))


def imagebind_score(video_embeddings: np.ndarray, audio_embeddings: np.ndarray) -> float:
    """Mean cosine similarity of paired ImageBind video and audio embeddings [N, D]."""
    v = torch.as_tensor(np.asarray(video_embeddings), dtype=torch.float64)
    a = torch.as_tensor(np.asarray(audio_embeddings), dtype=torch.float64)
    return float(torch.nn.functional.cosine_similarity(v, a, dim=-1).mean())


def sync_grid() -> np.ndarray:
    return np.linspace(*SYNC_GRID)


def desync(offset_logits: list[np.ndarray]) -> float:
    """Mean |predicted offset| (s) over every clip and window: ``offset_logits`` holds one [N, 21] array per
    window (av-benchmark: the first and the last 4.8 s)."""
    grid = sync_grid()
    values = [np.abs(grid[np.asarray(logits).argmax(axis=-1)]) for logits in offset_logits]
    return float(np.mean(np.concatenate(values)))
