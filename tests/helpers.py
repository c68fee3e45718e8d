"""Helpers the tests import (fixtures live in conftest.py; nothing is imported from it)."""

TINY_TRAIN = ["--arch", "resnet18", "--height", "32", "--width", "16", "--P", "4", "--images-per-id", "2",
              "--workers", "0", "--K", "10", "--k", "3", "--tau", "3", "--quiet"]
"""``reidgraph train`` flags for a seconds-long run on the ``tiny_market`` fixture."""
