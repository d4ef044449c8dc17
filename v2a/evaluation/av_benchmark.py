"""Score generated audio with the av-benchmark columns (FD PaSST / PANNs / VGGish, KL, IS, IB-score, DeSync).

    python evaluate.py av_benchmark gt=GT_AUDIO pred=GENERATED [videos=VIDEOS] duration=8 out=DIR \
        weights.passt=W/passt-s-f128-p16-s10-ap.476-swa.pt weights.panns=W/Cnn14_16k_mAP=0.438.pth \
        weights.vggish=W/vggish-10086976.pth weights.imagebind=W/imagebind_huge.pth \
        weights.synchformer=W/synchformer_state_dict.pth

``gt`` and ``pred`` are folders of .wav/.flac files paired by file stem (a folder without any reads its .mp4 files'
sound, so ``gt`` may be the videos folder; ``pred`` may be an evaluate.py output folder: its ``generations/generated``); ``videos`` holds each clip's .mp4 under the same stem (IB-score and
DeSync are computed from the ground-truth video and the generated audio, as av-benchmark does). A column whose
weights are not given is listed under ``skipped`` with the reason. Output keys are av-benchmark's own
(``FD-PASST``, ``FD-PANN``, ``FD-VGG``, ``KL-PANNS-softmax``, ``KL-PASST-softmax``, ``ISC-PANNS-mean``, ...), written
to ``OUT/av_benchmark.json``. The arithmetic: :mod:`v2a.evaluation.av_metrics`; the models:
:mod:`v2a.evaluation.av_embedders`; docs/metrics.md shows a row of MMAudio's VGGSound table.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from v2a.evaluation import av_metrics
from v2a.evaluation.av_embedders import PANNsEmbedder, PaSSTEmbedder, VGGishEmbedder
from v2a.evaluation.av_video_scorers import ImageBindScorer, SynchformerDeSync

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac")


@dataclass
class Clip:
    """One scored pair: the generated and the ground-truth audio of a clip, and its video (for IB / DeSync)."""

    key: str
    generated: np.ndarray       # mono float [N]
    reference: np.ndarray       # mono float [M]
    sample_rate: int
    video: np.ndarray | None = None   # uint8 [T, H, W, 3]
    fps: float | None = None


@dataclass
class AVBenchmark:
    """The av-benchmark columns from the embedders given (None: that column is skipped)."""

    passt: PaSSTEmbedder | None = None
    panns: PANNsEmbedder | None = None
    vggish: VGGishEmbedder | None = None
    imagebind: ImageBindScorer | None = None
    synchformer: SynchformerDeSync | None = None
    batch_size: int = 16
    skipped: dict[str, str] = field(default_factory=dict)

    def identity(self) -> dict[str, str | None]:
        return {name: tool.identity() if tool is not None else None for name, tool in
                (("passt", self.passt), ("panns", self.panns), ("vggish", self.vggish),
                 ("imagebind", self.imagebind), ("synchformer", self.synchformer))}

    def _batches(self, clips: Iterable[Clip]) -> Iterator[list[Clip]]:
        batch: list[Clip] = []
        for clip in clips:
            batch.append(clip)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def score(self, clips: Iterable[Clip]) -> dict[str, float]:
        acc: dict[str, list] = {}

        def add(name: str, values) -> None:
            acc.setdefault(name, []).extend(list(values))

        for batch in self._batches(clips):
            rate = batch[0].sample_rate
            if any(c.sample_rate != rate for c in batch):
                raise ValueError("clips of one batch must share a sample rate")
            for side, attr in (("gen", "generated"), ("ref", "reference")):
                audio = _stack([getattr(c, attr) for c in batch])
                for name, tool in (("passt", self.passt), ("panns", self.panns)):
                    if tool is not None:
                        out = tool.analyse(audio, rate)
                        add(f"{name}/{side}/embedding", out["embedding"])
                        add(f"{name}/{side}/logits", out["logits"])
                if self.vggish is not None:
                    add(f"vggish/{side}", self.vggish.embed_frames(audio, rate))
            with_video = [c for c in batch if c.video is not None]
            if len(with_video) != len(batch) and (self.imagebind is not None or self.synchformer is not None):
                raise ValueError("IB-score and DeSync need every clip's video (videos=...)")
            generated = _stack([c.generated for c in batch])
            if self.imagebind is not None:
                add("ib/video", [self.imagebind.video_embedding(c.video, c.fps) for c in batch])
                add("ib/audio", self.imagebind.audio_embeddings(generated, rate))
            if self.synchformer is not None:
                import torch

                video = torch.stack([self.synchformer.video_features(c.video, c.fps) for c in batch])
                first, last = self.synchformer.offset_logits(video, self.synchformer.audio_features(generated, rate))
                add("sync/first", first)
                add("sync/last", last)
        return self._metrics(acc)

    def _metrics(self, acc: dict[str, list]) -> dict[str, float]:
        m: dict[str, float] = {}
        for name, label, tool in (("passt", "PASST", self.passt), ("panns", "PANN", self.panns)):
            if tool is None:
                self.skipped[f"FD-{label}"] = f"no {name} weights (weights.{name}=...)"
                continue
            gen_e, ref_e = np.asarray(acc[f"{name}/gen/embedding"]), np.asarray(acc[f"{name}/ref/embedding"])
            gen_l, ref_l = np.asarray(acc[f"{name}/gen/logits"]), np.asarray(acc[f"{name}/ref/logits"])
            m[f"FD-{label}"] = av_metrics.fd(gen_e, ref_e)
            m[f"KL-{label}S-softmax" if name == "panns" else "KL-PASST-softmax"] = av_metrics.kl_softmax(gen_l, ref_l)
            if len(gen_l) >= av_metrics.IS_SPLITS:
                mean, std = av_metrics.inception_score(gen_l)
                m[f"ISC-{label}S-mean" if name == "panns" else "ISC-PASST-mean"] = mean
                m[f"ISC-{label}S-std" if name == "panns" else "ISC-PASST-std"] = std
            else:
                self.skipped[f"ISC-{name}"] = f"IS needs at least {av_metrics.IS_SPLITS} clips"
        if self.vggish is None:
            self.skipped["FD-VGG"] = "no vggish weights (weights.vggish=...)"
        else:
            m["FD-VGG"] = av_metrics.fd(np.concatenate(acc["vggish/gen"]), np.concatenate(acc["vggish/ref"]))
        if self.imagebind is None:
            self.skipped["IB-Score"] = "no imagebind weights (weights.imagebind=...) or no videos"
        else:
            m["IB-Score"] = av_metrics.imagebind_score(np.asarray(acc["ib/video"]), np.asarray(acc["ib/audio"]))
        if self.synchformer is None:
            self.skipped["DeSync"] = "no synchformer weights (weights.synchformer=...) or no videos"
        else:
            m["DeSync"] = av_metrics.desync([np.asarray(acc["sync/first"]), np.asarray(acc["sync/last"])])
        return m


def _stack(arrays: list[np.ndarray]) -> np.ndarray:
    """Clips of one batch cut to the shortest (the models then cut to ``duration`` anyway)."""
    n = min(len(a) for a in arrays)
    return np.stack([np.asarray(a, dtype=np.float32)[:n] for a in arrays])


# --- folders ------------------------------------------------------------------------------------------------------

def audio_files(folder: Path) -> dict[str, Path]:
    folder = Path(folder)
    if (folder / "generations" / "generated").is_dir():   # an evaluate.py output folder
        folder = folder / "generations" / "generated"
    found = sorted(folder.iterdir()) if folder.is_dir() else []
    files = {p.stem: p for p in found if p.suffix.lower() in AUDIO_SUFFIXES}
    files = files or {p.stem: p for p in found if p.suffix.lower() == ".mp4"}   # the videos' own sound
    if not files:
        raise FileNotFoundError(f"no .wav/.flac (or .mp4) files in {folder}")
    return files


def folder_clips(gt: Path, pred: Path, videos: Path | None, rate: int = 48000) -> Iterator[Clip]:
    """Pairs of ground-truth and generated audio by file stem (only stems in both), with the stem's .mp4."""
    from v2a.media import decode_mono, decode_video

    gt_files, pred_files = audio_files(gt), audio_files(pred)
    keys = sorted(set(gt_files) & set(pred_files))
    unpaired = set(gt_files) ^ set(pred_files)
    if unpaired:
        log.warning("%d clips are not in both folders and are left out (e.g. %s)", len(unpaired), sorted(unpaired)[:3])
    if not keys:
        raise FileNotFoundError(f"no file stem is in both {gt} and {pred}")
    for key in keys:
        video = fps = None
        if videos is not None:
            video, fps = decode_video(Path(videos) / f"{key}.mp4")
        yield Clip(key, decode_mono(pred_files[key], rate), decode_mono(gt_files[key], rate), rate, video, fps)


def score_folders(gt: str | Path, pred: str | Path, videos: str | Path | None, benchmark: AVBenchmark,
                  out: str | Path | None = None) -> dict:
    metrics = benchmark.score(folder_clips(Path(gt), Path(pred), Path(videos) if videos else None))
    result = {"metrics": metrics, "skipped": benchmark.skipped,
              "run": {"gt": str(gt), "pred": str(pred), "videos": str(videos) if videos else None,
                      "tools": benchmark.identity()}}
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "av_benchmark.json").write_text(json.dumps(result, indent=2))
    return result


def build(weights: dict, *, duration: float, device: str, batch_size: int, factories: dict | None = None,
          videos: bool = True) -> AVBenchmark:
    """The benchmark from a ``weights`` mapping (``passt``, ``panns``, ``vggish``, ``imagebind``, ``synchformer``;
    None skips that column); errors name the key (``weights.NAME``)."""
    factories = factories or {}
    common = {"duration": duration, "device": device}
    bench = AVBenchmark(batch_size=batch_size)
    if weights.get("passt"):
        bench.passt = PaSSTEmbedder(weights["passt"], batch_size=batch_size, key="weights.passt", **common)
    if weights.get("panns"):
        bench.panns = PANNsEmbedder(weights["panns"], batch_size=batch_size, key="weights.panns", **common)
    if weights.get("vggish"):
        bench.vggish = VGGishEmbedder(weights["vggish"], key="weights.vggish", **common)
    if videos and weights.get("imagebind"):
        extra = {"factory": factories["imagebind"]} if factories.get("imagebind") else {}
        bench.imagebind = ImageBindScorer(weights["imagebind"], key="weights.imagebind", **common, **extra)
    if videos and weights.get("synchformer"):
        extra = {"factory": factories["synchformer"]} if factories.get("synchformer") else {}
        bench.synchformer = SynchformerDeSync(weights["synchformer"], key="weights.synchformer", **common, **extra)
    return bench


def main(argv: list[str]) -> int:
    """``python evaluate.py av_benchmark KEY=VALUE ...`` (v2a/conf/av_benchmark.yaml)."""
    import sys

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from v2a.conf import CONFIG_DIR

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("av_benchmark", overrides=list(argv))
    missing = [k for k in ("gt", "pred") if OmegaConf.is_missing(cfg, k)]
    if missing:
        print(f"error: give {' and '.join(f'{k}=FOLDER' for k in missing)}", file=sys.stderr)
        return 2
    try:
        bench = build(OmegaConf.to_container(cfg.weights), duration=cfg.duration, device=cfg.device,
                      batch_size=cfg.batch_size, factories=OmegaConf.to_container(cfg.factories),
                      videos=cfg.videos is not None)
        result = score_folders(cfg.gt, cfg.pred, cfg.videos, bench, cfg.out)
    except (FileNotFoundError, ImportError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for key, value in result["metrics"].items():
        print(f"{key}: {value:.4f}")
    for key, reason in result["skipped"].items():
        print(f"skipped {key}: {reason}")
    return 0
