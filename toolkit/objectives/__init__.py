"""The flow-matching training objective and the samplers."""
