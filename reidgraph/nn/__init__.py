"""The FFGNN layer and network, and their test-time use."""
from .ffgnn import FFGNN
from .ffgnn_conv import FFGNNConv
from .fusion import ffgnn_rerank, fused_features
from .training_free import TrainingFreeFusion

__all__ = ["FFGNN", "FFGNNConv", "ffgnn_rerank", "fused_features", "TrainingFreeFusion"]
