"""A task's data on its way to training: split and prepare once (``prepared``), read
back as in-memory tensors or streamed Datasets (``loader``, ``datasets``).
"""
