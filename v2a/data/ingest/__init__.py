"""Real-video ingestion: a folder or manifest of videos -> the same webdataset shards as the benchmark.

``discover`` (sources.py) -> ``probe`` (probe.py) -> ``make_plan`` (plan.py) -> ``write_planned_shard``
(writer.py, decoding with reader.py), orchestrated by ``ingest`` (build.py).
"""

from v2a.data.ingest.build import ingest
from v2a.data.ingest.clips import clip_key, clip_windows
from v2a.data.ingest.issues import IngestError, Issues
from v2a.data.ingest.plan import ClipOptions
from v2a.data.ingest.probe import BadVideo, VideoInfo, probe
from v2a.data.ingest.reader import read_audio, read_frames, square_resize
from v2a.data.ingest.sources import Source, discover
from v2a.data.ingest.text import TextPolicy

__all__ = [
    "BadVideo", "ClipOptions", "IngestError", "Issues", "Source", "TextPolicy", "VideoInfo", "clip_key",
    "clip_windows", "discover", "ingest", "probe", "read_audio", "read_frames", "square_resize",
]
