"""Serving a recipe to users: the model source, requests from flags and files, validation, outputs and
manifests. Shared by `toolkit-generate` and the web app; it names no recipe (each declares what it takes)."""
