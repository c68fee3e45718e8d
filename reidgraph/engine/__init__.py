"""Training stages: the FEN (stage 1), the FFGNN on fixed features (stage 2), both jointly (stage 3)."""
from .checkpoint import load_checkpoint, save_checkpoint
from .train_gnn import ABLATIONS, PRESETS, GNNTrainConfig, load_debias, load_ffgnn, recipe, train_ffgnn

__all__ = ["ABLATIONS", "PRESETS", "GNNTrainConfig", "recipe", "load_checkpoint", "load_debias", "load_ffgnn", "save_checkpoint", "train_ffgnn"]
