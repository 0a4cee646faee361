"""hgrlib: a reproducible companion to Ma et al. (2020), audio-visual emotion recognition with Soft-HGR.

`hgrlib.load_model(path)` reads a model file written by `hgrlib export` (hgrlib.app.export); predict with
hgrlib.app.predict.predict_clips.
"""

from hgrlib.version import __version__ as __version__

__all__ = ["load_model"]


def __getattr__(name: str):
    if name == "load_model":  # on first use: `import hgrlib` stays light (no torch)
        from hgrlib.app.export import load_model

        return load_model
    raise AttributeError(f"module 'hgrlib' has no attribute {name!r}")
