"""The sanity rungs: the overfit check and the LR range test."""
