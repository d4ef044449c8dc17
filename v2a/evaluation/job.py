"""The evaluation job: generate for a held-out split and score it, beside its floor and ceiling.

Every metric of generated audio comes with the same metric of the ground-truth audio (the ceiling)
and of generation from a mismatched video (the floor), computed in the same run with the same tools.
Ground-truth references are cached per data set (:mod:`v2a.evaluation.cache`); generations are kept
in ``OUT/generations`` so ``reuse=true`` rescored them without generating (:mod:`v2a.evaluation.store`);
under ``accelerate launch`` every process generates its share and rank 0 scores.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from v2a.audio.spectral import log_spectral_distance, mel_l1
from v2a.checkpoints.sync_model import load_sync_model
from v2a.data.visual_features import visual_input
from v2a.evaluation.analysis import analyse, as_arrays, empty_analysis
from v2a.evaluation.av_align import motion_peaks
from v2a.evaluation.cache import ReferenceCache, cache_key, split_checksum
from v2a.evaluation.onsets import calibrate
from v2a.evaluation.references import (
    cached_feature_options,
    count_clips,
    event_times,
    iterate_batches,
    progress,
    resolve_split,
)
from v2a.evaluation.report import write_outputs
from v2a.evaluation.scoring import Scorer
from v2a.evaluation.store import GenerationStore, weights_file
from v2a.evaluation.tools import build_tools, distributed_state, whole_split
from v2a.pipeline.pipeline import V2APipeline
from v2a.utils.hashing import sha256_file

log = logging.getLogger(__name__)


def _mismatched(frames: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
    """Each clip gets another clip's video: roll within the batch, borrow from the last batch if alone."""
    if frames.shape[0] > 1:
        return frames.roll(1, dims=0)
    if previous is None:
        raise ValueError("mismatched-video reference needs at least two clips")
    return previous[-1:]


def _calibrate(module, data: str, split: str, batch_size: int, clips: int, tolerance: float):
    cal_mels, cal_refs = [], []   # at most `clips` mels: the calibration set, whatever the test split's size
    batches = iterate_batches(data, split, module.features.spec, batch_size, clips)
    for batch in progress(batches, count_clips(data, split, clips), batch_size, "calibrate"):
        cal_mels.append(module.features(batch["audio"].to(module.device)))
        cal_refs += [event_times(m) for m in batch["meta"]]
    return calibrate(cal_mels, cal_refs, module.features.spec.mel_rate, tolerance), cal_mels


def _generate_all(module, data, split, batch_size, max_clips, steps, cfg_scale, seed, watermarker,
                  store: GenerationStore, rank: int | None = None, world: int = 1) -> dict:
    """Generate matched and mismatched audio for this process's clips into the store.

    The shard reader gives rank r the clips r, r + world, ...; of the first ``max_clips`` clips, that is
    ``len(range(r, max_clips, world))``.
    """
    spec = module.features.spec
    clips = count_clips(data, split, max_clips)
    if world > 1:
        max_clips = len(range(rank or 0, max_clips, world)) if max_clips is not None else None
        clips = len(range(rank or 0, clips, world)) if clips is not None else None
    generator = torch.Generator().manual_seed(seed + 1000 * (rank or 0))
    gen_seconds, keys, previous = 0.0, [], None
    # streamed: one batch in memory at a time, generations go straight to the store
    # with the model's backbone features where the split caches them (the backbone is skipped), else frames
    batches = iterate_batches(data, split, spec, batch_size, max_clips, **cached_feature_options(module.net))
    for batch in progress(batches, clips, batch_size, "generate"):
        frames = visual_input(batch)
        start = time.perf_counter()
        # text models get each clip's caption and transcript (the floor too: only its video is mismatched)
        texts = module.clip_texts(batch)
        generated = module.generate_audio(frames, steps=steps, cfg_scale=cfg_scale, generator=generator, **texts)
        gen_seconds += time.perf_counter() - start
        mismatched = module.generate_audio(_mismatched(frames, previous), steps=steps, cfg_scale=cfg_scale,
                                           generator=generator, **texts)
        previous = frames
        for condition, audio in (("generated", generated), ("mismatched", mismatched)):
            for key, clip in zip(batch["key"], audio.cpu().numpy(), strict=True):
                if watermarker is not None:  # as generate.py ships it: marked before it is written
                    clip = watermarker.embed(clip, spec.sample_rate)
                store.write(condition, key, clip, spec.sample_rate)
        keys += batch["key"]
    return {"gen_seconds": gen_seconds, "n_clips": len(keys), "keys": keys}


def evaluate(*, ckpt: str, out: str, data: str | None = None, split: str = "test", calibration_split: str = "val",
             steps: int | None = None, cfg_scale: float | None = None, batch_size: int = 50,
             max_clips: int | None = None, calibration_clips: int = 200, seed: int = 0, plots: int = 4,
             device: str = "auto", reuse: bool = False, cache_dir: str | None = None,
             classifier: str | None = None, whisper: str = "auto", embedders: list | None = None,
             watermark: object | None = None, onset_kinds: tuple[str, ...] = ("impact",),
             sync_model: str | None = None, wandb: bool = False, save_audio: bool | None = None,
             sampler: dict | None = None, vocoder: dict | None = None) -> dict:
    """Score ``ckpt`` on ``split``; writes ``out/metrics.json``, ``metrics.csv`` and ``report.md``.

    Returns the metrics (on rank 0; other ranks of ``accelerate launch`` return an empty dict).
    ``whisper``: ``auto`` (used when installed), ``true`` (required) or ``false``.
    ``vocoder``: a ``model.vocoder`` config that replaces the checkpoint's (None keeps it), as in generation.
    """
    del save_audio  # generations are always kept (OUT/generations); the old switch is accepted and ignored
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    # sampler settings other than the model's (method, schedule, shift) and a chosen vocoder replace
    # the checkpoint's before the model is built
    module = V2APipeline.from_pretrained(ckpt, device=device, vocoder=vocoder, sampler=sampler)
    data = str(data or module.run_config["data"]["root"])
    store = GenerationStore(out_dir)
    settings = {"ckpt": str(ckpt), "ckpt_sha256": sha256_file(weights_file(ckpt)), "data": data, "split": split,
                "steps": module.sampler.steps if steps is None else steps,
                "cfg_scale": module.cfg_scale if cfg_scale is None else cfg_scale, "seed": seed,
                "sampler": {k: getattr(module.sampler, k, None) for k in ("method", "schedule", "shift", "prior_start")},
                "max_clips": max_clips, "watermark": watermark is not None,
                "vocoder": vocoder}   # None: the checkpoint's own

    # 1. Generation (split over processes under accelerate launch), unless reusing stored generations.
    state = distributed_state()
    if reuse:
        manifest = store.manifest(settings)
        log.info("reuse=true: scoring the %d stored generations in %s", manifest["n_clips"], store.root)
    elif state is None:
        manifest = {**settings, **_generate_all(module, data, split, batch_size, max_clips, steps, cfg_scale, seed,
                                                watermark, store, None), "world_size": 1}
        store.write_manifest(manifest)
    else:
        part = _generate_all(module, data, split, batch_size, max_clips, steps, cfg_scale, seed, watermark, store,
                             state.process_index, state.num_processes)
        store.write_manifest({**settings, **part}, rank=state.process_index)
        state.wait_for_everyone()
        if not state.is_main_process:
            return {}
        manifest = store.merge_rank_manifests(state.num_processes)
    if manifest["n_clips"] == 0:
        raise ValueError(f"split '{split}' of {data} holds no clips")

    options = ScoreOptions(out_dir=out_dir, data=data, split=split, calibration_split=calibration_split,
                           batch_size=batch_size, max_clips=max_clips, calibration_clips=calibration_clips, plots=plots,
                           cache_dir=cache_dir, classifier=classifier, whisper=whisper, embedders=embedders,
                           watermark=watermark, onset_kinds=tuple(onset_kinds), sync_model=sync_model, wandb=wandb,
                           reuse=reuse)
    with whole_split():
        return _score(module, options, settings, manifest, store)


@dataclass(frozen=True)
class ScoreOptions:
    """The options of :func:`evaluate` that scoring needs (see its docstring and v2a/conf/evaluate.yaml)."""

    out_dir: Path
    data: str
    split: str
    calibration_split: str
    batch_size: int
    max_clips: int | None
    calibration_clips: int
    plots: int
    cache_dir: str | None
    classifier: str | None
    whisper: str
    embedders: list | None
    watermark: object | None
    onset_kinds: tuple[str, ...]
    sync_model: str | None
    wandb: bool
    reuse: bool


def _score(module, o: ScoreOptions, settings: dict, manifest: dict, store: GenerationStore) -> dict:
    """Rank 0 (or the only process): references, analysis of every condition, metrics and outputs."""
    out_dir, data, split, batch_size, max_clips, plots = o.out_dir, o.data, o.split, o.batch_size, o.max_clips, o.plots
    calibration_split, calibration_clips, watermark, onset_kinds = o.calibration_split, o.calibration_clips, o.watermark, o.onset_kinds
    spec = module.features.spec
    tolerance = 1.0 / spec.fps  # ±1 video frame
    # 2. References (cached per data set and tools) and the tools that measure every condition.
    root, split_name = resolve_split(data, split)
    cal_root, cal_name = resolve_split(data, calibration_split)
    tools = build_tools(module, classifier=o.classifier, whisper=o.whisper, embedders=o.embedders, watermark=watermark)
    key = cache_key({"test": split_checksum(root / split_name), "val": split_checksum(cal_root / cal_name),
                     "spec": spec.__dict__, "features": [module.features.mean, module.features.std],
                     "clips": [max_clips, calibration_clips], "tools": tools.identity(exclude_detector=True),
                     "onset_kinds": list(onset_kinds)})
    cache = ReferenceCache(o.cache_dir, key)
    reference = cache.load()
    ref_start = time.perf_counter()
    if reference is None:
        tools.detector, cal_mels = _calibrate(module, data, calibration_split, batch_size, calibration_clips, tolerance)
        val_embeddings = {}
        if tools.embedders:
            for batch in iterate_batches(data, calibration_split, spec, batch_size, calibration_clips):
                for embedder in tools.embedders:
                    val_embeddings.setdefault(embedder.name, []).extend(
                        embedder.embed(batch["audio"].numpy(), spec.sample_rate))
        val_embeddings = {k: np.asarray(v) for k, v in val_embeddings.items()}
    ref_seconds = time.perf_counter() - ref_start  # + the ground-truth analysis in the loop below, on a miss
    if reference is not None:
        tools.detector = tools.make_detector(reference["detector"])
        val_embeddings = {k[4:]: v for k, v in reference["embeddings"].items() if k.startswith("val/")}
    log.info("onset detector: threshold %.4f, latency %.1f ms", tools.detector.threshold, 1000 * tools.detector.latency)

    # 3. Score: one pass over the test clips.
    conditions = ("generated", "gt", "mismatched")
    analyses = {c: empty_analysis(tools) for c in conditions}
    if reference is not None:
        analyses["gt"] = {k: v for k, v in reference["gt"].items()}
        analyses["gt"].update({f"emb/{k[3:]}": list(v) for k, v in reference["embeddings"].items() if k.startswith("gt/")})
    pairwise = {c: {"mel_l1": [], "lsd_db": []} for c in ("generated", "mismatched")}
    sync_model = load_sync_model(o.sync_model, spec) if o.sync_model else None
    desync: dict[str, list[float]] = {c: [] for c in conditions}  # |predicted audio delay| per clip, seconds
    metas, keys, video_peaks, plot_data = [], [], [], []
    batches = iterate_batches(data, split, spec, batch_size, max_clips)
    for batch in progress(batches, count_clips(data, split, max_clips), batch_size, "score"):
        gt_audio = batch["audio"].to(module.device)
        gt_mel = module.features(gt_audio)
        if reference is None:
            start = time.perf_counter()
            analyse(gt_audio, batch["meta"], tools, spec.sample_rate, spec.fps, analyses["gt"])
            ref_seconds += time.perf_counter() - start
        if sync_model is not None:
            desync["gt"] += sync_model.predict_offset(batch["frames"], gt_audio).abs().cpu().tolist()
        for condition in ("generated", "mismatched"):
            audio = torch.from_numpy(np.stack([store.read(condition, k) for k in batch["key"]])).to(module.device)
            if sync_model is not None:
                desync[condition] += sync_model.predict_offset(batch["frames"], audio).abs().cpu().tolist()
            mel = analyse(audio, batch["meta"], tools, spec.sample_rate, spec.fps, analyses[condition])
            pairwise[condition]["mel_l1"] += mel_l1(mel, gt_mel).cpu().tolist()
            pairwise[condition]["lsd_db"] += log_spectral_distance(audio, gt_audio, n_fft=spec.n_fft,
                                                                   hop_length=spec.hop_length).cpu().tolist()
            if condition == "generated" and len(plot_data) < plots:
                plot_data += [(k, gt_mel[i].cpu().numpy(), mel[i].cpu().numpy(), m, batch["frames"][i])
                              for i, (k, m) in enumerate(zip(batch["key"], batch["meta"], strict=True))][: plots - len(plot_data)]
        metas += batch["meta"]
        keys += batch["key"]
        video_peaks += [motion_peaks(f, spec.fps).tolist() for f in batch["frames"]]
    if reference is not None and reference["keys"] != keys:
        raise ValueError(f"reference cache {cache.folder} holds other clips than {data}/{split}: delete it")
    if reference is None:
        gt = as_arrays(analyses["gt"])
        embeddings = {f"gt/{k[4:]}": v for k, v in gt.items() if k.startswith("emb/")}
        embeddings.update({f"val/{k}": v for k, v in val_embeddings.items()})
        cache.save({"keys": keys, "detector": {"threshold": tools.detector.threshold, "latency": tools.detector.latency},
                    "gt": {k: v for k, v in analyses["gt"].items() if not k.startswith("emb/")},
                    "embeddings": embeddings})
    if keys != manifest["keys"] and sorted(keys) != sorted(manifest["keys"]):
        raise ValueError(f"stored generations in {store.root} are for other clips than {data}/{split}")

    scorer = Scorer(tolerance=tolerance, fps=spec.fps, onset_kinds=tuple(onset_kinds),
                    vocabularies=tools.classifier.vocabularies if tools.classifier is not None else {})
    scorer.skipped.update({f"tool/{k}": v for k, v in tools.notes.items()})
    arrays = {c: as_arrays(analyses[c]) for c in conditions}
    scorer.sync(metas, arrays, video_peaks)
    scorer.quality(arrays, val_embeddings, pairwise, metas)
    scorer.speech(metas, arrays)
    scorer.watermark(arrays, watermark is not None, getattr(watermark, "fpr", None))
    metrics = scorer.metrics
    if sync_model is None:
        scorer.skipped["sync/desync_s"] = "no sync model configured (sync_model=null)"
    else:  # DeSync: mean |audio-visual offset| the sync stage predicts, with its ceiling and floor
        for condition, name in (("generated", "sync/desync_s"), ("gt", "ref/gt_desync_s"),
                                ("mismatched", "ref/mismatched_desync_s")):
            metrics[name] = float(np.mean(desync[condition]))
    metrics["speed/rtf"] = manifest["gen_seconds"] / (manifest["n_clips"] * spec.duration)
    metrics["eval/clips"] = len(keys)
    metrics["detector/threshold"] = tools.detector.threshold
    metrics["detector/latency_ms"] = 1000 * tools.detector.latency
    info = {**{k: v for k, v in settings.items()}, "global_step": module.trained_steps,
            "reference_cache": "hit" if reference is not None else "miss", "reference_cache_key": key,
            "reference_seconds": round(ref_seconds, 3), "reused_generations": bool(o.reuse),
            "generation_world_size": manifest.get("world_size", 1),
            "tools": tools.identity(exclude_detector=True)}
    write_outputs(out_dir, metrics, scorer.skipped, info, plot_data, spec, tools.detector, wandb=o.wandb)
    return metrics


def format_metrics(metrics: dict[str, float]) -> str:
    """One ``key: value`` line per metric."""
    return "\n".join(f"{k}: {v:.4f}" if isinstance(v, float) and np.isfinite(v) else f"{k}: {v}"
                     for k, v in metrics.items())


