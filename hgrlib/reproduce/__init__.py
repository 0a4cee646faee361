"""Reproducing everything: the notebook runner and its stamps, the results index and manifest, and `--verify`."""
