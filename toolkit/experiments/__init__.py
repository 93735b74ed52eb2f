"""Experiments across models: the comparison harness (plan, steps, report). It runs the toolkit's CLIs as
processes, so it names no recipe and imports none."""
