"""Real-video ingestion: a folder or manifest of videos -> the same webdataset shards as the benchmark.

``discover`` (sources.py) -> ``v2a.media.probe`` -> ``make_plan`` (plan.py) -> ``write_planned_shard``
(writer.py, decoding with ``v2a.media``), orchestrated by ``ingest`` (build.py).
"""

from v2a.data.ingest.build import ingest
from v2a.data.ingest.clips import clip_key, clip_windows
from v2a.data.ingest.issues import IngestError, Issues
from v2a.data.ingest.plan import ClipOptions
from v2a.data.ingest.sources import Source, discover
from v2a.data.ingest.text import TextPolicy

__all__ = [
    "ClipOptions", "IngestError", "Issues", "Source", "TextPolicy", "clip_key", "clip_windows", "discover", "ingest",
]
