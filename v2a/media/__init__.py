"""Every read, probe, decode, resample and mux of audio and video (PyAV / ffmpeg underneath)."""
