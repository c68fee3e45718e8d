"""Data: generated features for demos and tests."""
from .synthetic_features import synthetic_features

__all__ = ["synthetic_features"]
