"""Small shared helpers (audio files, plots)."""
