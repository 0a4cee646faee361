"""Datasets: clip records, real-format loaders, the synthetic corpus, features, cache and splits."""
