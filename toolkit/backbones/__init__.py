"""Registered backbones: networks that predict the flow velocity."""
