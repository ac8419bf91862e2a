"""Mirroring a ladder into MLflow; the files under ``results/`` stay the source of truth."""
