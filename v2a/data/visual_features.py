"""Visual features cached in the shards: extracted once by a frozen backbone, read by training many times.

The field trains on pretrained visual features that it extracts once, offline (MMAudio, ThinkSound,
HunyuanVideo-Foley). ``data_prep/extract_features.py`` runs a :class:`~v2a.models.backbones.FrameBackbone` over
every clip of a shard set and writes its per-frame features beside the clip, as the member
``features.NAME.npy`` (float16 [T, D], one row per stored video frame, like ``frames.npy``), through the same
atomic, resumable shard rewrite as ``frames.npy`` (:func:`v2a.data.frames_npy.rewrite_folder`). The split's
``index.json`` records, under ``visual_features.NAME``, the backbone's identity (class, arguments, weights
checksum), the clip grid's ``image_size`` the frames were read at, the width and dtype; each finished shard's
entry lists the member.

The loader (:class:`~v2a.data.decoders.VideoAudioDecoder`) is told which features the model reads (the
``${visual_features:}`` resolver: ``data.visual_features``). It reads them instead of decoding video when every
shard of every folder it streams has them; a folder whose record names another backbone (or another image size)
is refused; a folder without them is decoded, and the model runs its backbone every step (slower, same result).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from v2a.data.shard_writer import read_index
from v2a.shapes import ClipSpec

log = logging.getLogger(__name__)

INDEX_KEY = "visual_features"   # the index.json record, per backbone name
BATCH_KEY = "visual_features"   # the batch entry the decoder fills instead of "frames"
DTYPE = "float16"               # stored precision: half the disk of float32, far below the features' noise


def member(name: str) -> str:
    """The tar member of a backbone's cached features (``features.NAME.npy``)."""
    if not name or "/" in name or "." in name:
        raise ValueError(f"a feature cache name must be a plain word (it names the member features.NAME.npy), got {name!r}")
    return f"features.{name}.npy"


def cache_record(backbone_config: Mapping[str, Any]) -> dict:
    """``{"name", "identity"}`` of a backbone config (``_target_`` + arguments), computed without building it.

    When the identity cannot be computed (the optional extra is missing, the weights file is absent) ``identity``
    is None and ``error`` says why: the loader then decodes frames, and building the model reports the problem.
    """
    from v2a.models.backbones import backbone_identity, backbone_name

    name = backbone_name(backbone_config)
    try:
        return {"name": name, "identity": backbone_identity(backbone_config)}
    except (ImportError, FileNotFoundError, TypeError, ValueError) as error:
        return {"name": name, "identity": None, "error": str(error)}


def visual_input(batch: dict) -> torch.Tensor:
    """What a batch gives the visual encoder: its cached features [B, T, D] when it has them, else its frames."""
    return batch[BATCH_KEY] if BATCH_KEY in batch else batch["frames"]


def folder_has_features(folder: Path, record: Mapping[str, Any], spec: ClipSpec) -> bool:
    """Whether every shard of ``folder`` holds the features ``record`` names (then the loader reads them).

    Raises ``ValueError`` when the folder's features of that name were made by another backbone or at another
    image size: they would silently condition the model on features it never saw.
    """
    index = read_index(folder)
    stored = index.get(INDEX_KEY, {}).get(record["name"])
    if stored is None:
        return False
    if record.get("identity") is None:
        log.warning("%s: cannot check the cached %s features (%s): decoding frames instead", folder, record["name"],
                    record.get("error"))
        return False
    mismatch = []
    if stored.get("identity") != record["identity"]:
        mismatch.append(f"backbone {stored.get('identity')} != the model's {record['identity']}")
    if stored.get("image_size") != spec.image_size:
        mismatch.append(f"frames read at {stored.get('image_size')} px != spec.image_size {spec.image_size}")
    if mismatch:
        raise ValueError(f"{folder}: the cached features '{record['name']}' were extracted by another backbone ("
                         + "; ".join(mismatch) + "): re-extract them (python data_prep/extract_features.py ... "
                         "overwrite=true) or name this backbone's cache differently (model.visual_encoder.backbone.name)")
    name = member(record["name"])
    missing = [s["name"] for s in index["shards"] if name not in s.get("members", [])]
    if missing:
        log.warning("%s: %d of %d shards lack the cached %s features (extraction unfinished?): decoding frames",
                    folder, len(missing), len(index["shards"]), record["name"])
        return False
    return True


def all_folders_have_features(folders: Sequence[Path], record: Mapping[str, Any] | None, spec: ClipSpec) -> bool:
    """Whether the loader can read ``record``'s features for every folder (all or none: batches must agree)."""
    if not record:
        return False
    found = [folder_has_features(Path(f), record, spec) for f in folders]   # every folder checked: a mismatch raises
    if all(found):
        log.info("reading cached %s features (no video decoding, no backbone) from %s", record["name"],
                 ", ".join(str(f) for f in folders))
        return True
    log.info("no cached %s features in %s: frames are decoded and the backbone runs every step "
             "(extract them once: python data_prep/extract_features.py root=ROOT ...)", record["name"],
             ", ".join(str(f) for f, ok in zip(folders, found, strict=True) if not ok))
    return False


def read_features(data: bytes) -> np.ndarray:
    """A ``features.NAME.npy`` member -> float16 [T, D]."""
    import io

    features = np.load(io.BytesIO(data), allow_pickle=False)
    if features.ndim != 2 or len(features) == 0 or not np.issubdtype(features.dtype, np.floating):
        raise ValueError(f"cached features must be float [T, D], got {features.dtype} {features.shape}")
    return features


# --- extraction ------------------------------------------------------------------------------------------------

@dataclass
class FeatureRewrite:
    """Adds ``features.NAME.npy`` to every sample: its frames, read as the loader reads them (every stored frame,
    at ``spec.image_size``), through the backbone, ``clips`` clips per batch. Runs in this process (it holds the
    backbone, possibly on a GPU). A sample without readable video is copied unchanged (counted as failed)."""

    backbone: Any            # a FrameBackbone
    spec: ClipSpec
    device: torch.device
    clips: int = 8

    @property
    def member(self) -> str:
        return member(self.backbone.name)

    def _frames(self, sample: dict) -> torch.Tensor:
        from v2a.data.decode import frames_to_tensor, sample_meta, stored_video

        meta = sample_meta(sample)
        video = stored_video(sample, meta, self.spec)
        recorded = float(meta.get("fps", self.spec.fps))
        if abs(video.fps - recorded) > 1e-3:   # the loader indexes cached rows on the json's clock
            raise ValueError(f"video at {video.fps} fps but its json says {recorded}")
        return frames_to_tensor(video.read(np.arange(video.n_frames)), self.spec)

    def _flush(self, pending: list[tuple[dict, torch.Tensor]]) -> Iterator[dict]:
        if not pending:
            return
        frames = torch.cat([f for _, f in pending]).to(self.device)
        features = self.backbone(frames).to("cpu", torch.float16).numpy()
        start = 0
        from v2a.data.frames_npy import npy_bytes

        for sample, clip in pending:
            sample[self.member] = npy_bytes(features[start:start + len(clip)])
            start += len(clip)
            yield sample

    def __call__(self, samples: Iterator[dict], failed: list[str]) -> Iterator[dict]:
        pending: list[tuple[dict, torch.Tensor]] = []
        for sample in samples:
            try:
                frames = self._frames(sample)
            except Exception as error:  # bad input stays as it is; the loader skips it with its reason
                log.warning("no features for %s: %s", sample.get("__key__"), error)
                failed.append(str(sample.get("__key__")))
                yield from self._flush(pending)   # keep the shard's order
                pending = []
                yield sample
                continue
            pending.append((sample, frames))
            if len(pending) >= self.clips:
                yield from self._flush(pending)
                pending = []
        yield from self._flush(pending)


def extract_folder(src_dir: Path, dst_dir: Path, *, backbone: Any, spec: ClipSpec, device: torch.device,
                   clips: int = 8, overwrite: bool = False) -> dict:
    """Add ``backbone``'s features to one shard folder (atomic, resumable); returns its index.

    Refuses a folder whose index already records features of this name from another backbone or image size,
    unless ``overwrite`` (then every shard is rewritten).
    """
    from v2a.data.frames_npy import rewrite_folder
    from v2a.data.shard_writer import write_index

    name = backbone.name
    entry = {"member": member(name), "identity": backbone.identity, "image_size": spec.image_size,
             "dim": int(backbone.dim), "dtype": DTYPE, "rows": "one per stored video frame"}
    for folder in {Path(src_dir), Path(dst_dir)}:
        stored = read_index(folder).get(INDEX_KEY, {}).get(name)
        if stored is None or stored == entry:
            continue
        if not overwrite:
            raise ValueError(f"{folder} already holds features '{name}' of another backbone or image size "
                             f"({stored.get('identity')}, {stored.get('image_size')} px): overwrite=true replaces "
                             "them; or set another name (model.visual_encoder.backbone.name=...)")
        index = read_index(folder)   # forget them: every shard is rewritten
        index[INDEX_KEY].pop(name)
        for shard in index["shards"]:
            shard["members"] = [m for m in shard.get("members", []) if m != member(name)]
        write_index(folder, index)

    def record(index: dict) -> None:
        index.setdefault(INDEX_KEY, {})[name] = entry

    rewrite = FeatureRewrite(backbone=backbone, spec=spec, device=device, clips=clips)
    return rewrite_folder(src_dir, dst_dir, rewrite, workers=0, record=record)
