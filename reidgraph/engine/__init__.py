"""Training stages. Stage 2 (the FFGNN on fixed features) lives in :mod:`.train_gnn`."""
from .train_gnn import GNNTrainConfig, train_ffgnn

__all__ = ["GNNTrainConfig", "train_ffgnn"]
