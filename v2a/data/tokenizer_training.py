"""Train the sentencepiece model of a shard set from its captions, transcripts and negative captions.

Only the ``json`` members of the shards are read (no media is decoded). The model is written
atomically beside the shards (``ROOT/tokenizer.model``, with ``tokenizer.json`` describing it), where
:class:`~v2a.text.tokens.TextTokenizer` (built by the data module) reads it.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import sentencepiece as spm

from v2a.data.shard_writer import shard_urls
from v2a.text.tokens import BOS_ID, EOS_ID, PAD_ID, TEXT_FIELDS, TOKENIZER_NAME, UNK_ID, text_of

log = logging.getLogger(__name__)


def shard_texts(urls: Iterable[str], fields: Iterable[str] = TEXT_FIELDS, counts: dict | None = None) -> Iterator[str]:
    """Every non-empty text field of every sample's json in ``urls``; unreadable json is counted and skipped."""
    counts = counts if counts is not None else {}
    fields = tuple(fields)
    for url in urls:
        with tarfile.open(url) as tar:
            for member in tar:
                if not member.isfile() or not member.name.endswith(".json"):
                    continue
                try:
                    meta = json.loads(tar.extractfile(member).read())
                except (UnicodeDecodeError, json.JSONDecodeError):
                    counts["bad_json"] = counts.get("bad_json", 0) + 1
                    continue
                counts["samples"] = counts.get("samples", 0) + 1
                for field in fields:
                    text = text_of(meta, field) if isinstance(meta, dict) else ""
                    if text:
                        counts[field] = counts.get(field, 0) + 1
                        yield text


def text_shards(root: Path, splits: Iterable[str]) -> list[str]:
    """The shards of ``root/<split>`` for each split, or of ``root`` itself when it holds shards."""
    root = Path(root)
    if list(root.glob("*.tar")):
        return shard_urls(root)
    urls = [url for split in splits if (root / split).is_dir() for url in shard_urls(root / split)]
    if not urls:
        raise FileNotFoundError(f"no shards in {root} nor in its splits {list(splits)}")
    return urls


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def train_tokenizer(texts: Iterable[str], out: Path, *, vocab_size: int = 4000, model_type: str = "unigram",
                    character_coverage: float = 1.0, max_sentences: int = 2_000_000, seed: int = 0) -> dict:
    """Train on ``texts`` and write ``out`` (the model) and ``out.with_suffix('.json')`` (its description).

    ``vocab_size`` is an upper bound: a small corpus gets the vocabulary it supports. Ids 0-3 are
    pad / unk / bos / eos (0 = padding in batches). Returns the description.
    """
    sentences = [t for t in texts if t]
    if not sentences:
        raise ValueError("no text to train a tokenizer on (no caption, transcript or negative caption in the shards)")
    spm.set_random_generator_seed(seed)  # sampling of sentences when the corpus exceeds max_sentences
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=model, vocab_size=vocab_size, model_type=model_type,
        character_coverage=character_coverage, hard_vocab_limit=False, input_sentence_size=max_sentences,
        shuffle_input_sentence=True, pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
        num_threads=1, minloglevel=2,
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(out, model.getvalue())
    info = {"model": out.name, "vocab_size": spm.SentencePieceProcessor(model_proto=model.getvalue()).get_piece_size(),
            "requested_vocab_size": vocab_size, "model_type": model_type, "sentences": len(sentences),
            "ids": {"pad": PAD_ID, "unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID}}
    _write_atomically(out.with_suffix(".json"), json.dumps(info, indent=2).encode())
    return info


def train_shard_tokenizer(root: Path, *, splits: Iterable[str] = ("train",), fields: Iterable[str] = TEXT_FIELDS,
                          out: Path | None = None, **options) -> dict:
    """Train on the text of ``root``'s shards (its ``splits``) and store ``root/tokenizer.model``."""
    counts: dict = {}
    texts = list(shard_texts(text_shards(Path(root), splits), fields, counts))
    info = train_tokenizer(texts, Path(out) if out else Path(root) / TOKENIZER_NAME, **options)
    info["counts"] = counts
    log.info("tokenizer %s: %d pieces from %d texts of %d samples (%s)", out or Path(root) / TOKENIZER_NAME,
             info["vocab_size"], info["sentences"], counts.get("samples", 0), counts)
    return info
