"""The FFGNN layer and network, and their test-time use."""
from .ffgnn import FFGNN
from .ffgnn_conv import FFGNNConv
from .rerank import Reranked, ffgnn_rerank, fused_features, ranked_orders
from .training_free import TrainingFreeFusion

__all__ = ["FFGNN", "FFGNNConv", "Reranked", "ffgnn_rerank", "fused_features", "ranked_orders", "TrainingFreeFusion"]
