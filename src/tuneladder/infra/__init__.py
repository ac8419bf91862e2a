"""The machine a ladder runs on: devices, provenance, process start-up, Snakemake's
locks, conda environments. Imports only ``core``.
"""
