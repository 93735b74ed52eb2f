"""Registered codecs: audio <-> continuous latent frames."""
