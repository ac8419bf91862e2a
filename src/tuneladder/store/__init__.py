"""What a ladder keeps on disk: atomic writes, the trial contract (its files, key and
code fingerprint), worker claims. Imports no torch and no rung names.
"""
