"""Recipes: each assembles codec, conditioners, backbone, objective and sampler from a config."""
