"""Registered metrics and evaluation reports."""
