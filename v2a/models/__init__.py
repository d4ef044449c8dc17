"""Plain nn.Modules (no Lightning, no Hydra): visual encoder, denoiser, vocoders."""
