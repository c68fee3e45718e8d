"""Models: the Feature-Extracting Network (FEN) that maps person images to features."""
from .fen import ARCHS, FEN, FENOutput

__all__ = ["ARCHS", "FEN", "FENOutput"]
