"""The FFGNN layer and network, and their test-time use."""
from .._lazy import lazy_exports

_EXPORTS = {
    "FFGNN": ".ffgnn", "FFGNNConv": ".ffgnn_conv", "ffgnn_rerank": ".fusion", "fused_anchors": ".fusion",
    "fused_features": ".fusion", "TrainingFreeFusion": ".training_free",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
