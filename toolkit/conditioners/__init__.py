"""Registered conditioners: lyrics, style and time conditions for the backbones."""
