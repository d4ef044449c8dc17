"""Generation for users: any-length video in, watermarked audio and a muxed video out."""
