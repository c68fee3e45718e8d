"""The library logs through module loggers; the command shows their lines for the length of a call."""
import logging

from reidgraph.cli import main
from reidgraph.data import synthetic_features


def test_resuming_is_shown_on_stderr_and_logging_is_left_as_found(tmp_path, capsys):
    synthetic_features(30, 4, 2, 8, seed=0).save(tmp_path / "train.npz")
    run = ["train-gnn", "--no-select", "--features", str(tmp_path / "train.npz"), "--out", str(tmp_path / "m.pt"), "--K", "10",
           "--k", "4", "--tau", "4", "--quiet"]
    logger = logging.getLogger("reidgraph")
    handlers, level = list(logger.handlers), logger.level
    assert main([*run, "--epochs", "1"]) == 0
    assert "resuming" not in capsys.readouterr().err
    assert main([*run, "--epochs", "2"]) == 0
    assert f"ffgnn: resuming after epoch 1 from {tmp_path / 'm.pt'}" in capsys.readouterr().err
    assert (logger.handlers, logger.level) == (handlers, level)
