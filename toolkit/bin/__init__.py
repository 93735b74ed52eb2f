"""Thin command-line entry points; each stage of a recipe script calls one of them."""
