"""Package namespaces that import a submodule only when one of its names is first used (PEP 562).

``reidgraph --help`` and ``import reidgraph.graph`` then cost what they use: PyTorch Geometric,
torchvision, faiss and PIL load with the first name that needs them, not with the package.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose public names live in submodules:
    ``exports`` maps each name to its submodule (``{"knn": ".search"}``)."""
    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name], package), name)
        globals_of_package = importlib.import_module(package).__dict__
        globals_of_package[name] = value  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
