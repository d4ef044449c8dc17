"""Checkpoint and export I/O without pickle: training checkpoints read with ``weights_only``, inference
exports written as safetensors + JSON config."""
