"""Models: the Feature-Extracting Network (FEN) that maps person images to features."""
from .._lazy import lazy_exports

_EXPORTS = {
    "ARCHS": ".fen", "FEN": ".fen", "FENOutput": ".fen",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
