"""Training stages: the FEN (stage 1), the FFGNN on fixed features (stage 2), both jointly (stage 3)."""
from .._lazy import lazy_exports

_EXPORTS = {
    "ABLATIONS": ".train_gnn", "PRESETS": ".train_gnn", "GNNTrainConfig": ".train_gnn", "recipe": ".train_gnn",
    "train_ffgnn": ".train_gnn",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
