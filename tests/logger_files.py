"""Read back what the loggers wrote: TensorBoard event files and wandb offline run folders."""

from __future__ import annotations

import struct
from pathlib import Path


def tensorboard_tags(log_dir: Path) -> dict[str, set[str]]:
    """{"scalars" | "images" | "audio": tags} of every event file in ``log_dir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "audio": 0})
    events.Reload()
    tags = events.Tags()
    return {kind: set(tags.get(kind, [])) for kind in ("scalars", "images", "audio")}


def tensorboard_scalars(log_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def _records(path: Path) -> list[bytes]:
    """The records of a ``.wandb`` file (LevelDB log format: 32 KiB blocks of checksummed chunks)."""
    raw, block, chunks, records = path.read_bytes(), 32768, [], []
    position = 7  # ':W&B' + magic + version
    while position + 7 <= len(raw):
        left = block - position % block
        if left < 7:
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", raw[position:position + 7])
        position += 7
        if kind == 0 and length == 0:  # block padding
            position += left - 7
            continue
        chunks.append(raw[position:position + length])
        position += length
        if kind in (1, 4):  # FULL or LAST
            records.append(b"".join(chunks))
            chunks = []
    return records


def wandb_history(run_dir: Path) -> list[dict[str, str]]:
    """Every ``run.log`` row of a wandb offline run folder (keys -> JSON values)."""
    from wandb.proto import wandb_internal_pb2

    rows = []
    for data in _records(next(run_dir.glob("run-*.wandb"))):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): item.value_json for item in record.history.item})
    return rows
