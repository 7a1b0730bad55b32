"""Downstream evaluation: embedding caches, the EVAR linear probe, metrics, result tables."""
