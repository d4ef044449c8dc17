"""Shards, decoding and the data module."""
