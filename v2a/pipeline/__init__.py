"""The inference pipeline: network, features, sampler, vocoder, text conditioning and guidance."""
