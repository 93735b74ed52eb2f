"""The trainer shared by every recipe."""
