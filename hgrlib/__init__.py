"""hgrlib: a reproducible companion to Ma et al. (2020), audio-visual emotion recognition with Soft-HGR."""

__version__ = "0.1.0"
