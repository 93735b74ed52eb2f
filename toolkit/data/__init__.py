"""Data preparation, feature extraction and datasets."""
