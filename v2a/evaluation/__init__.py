"""Metrics and the evaluation job."""
