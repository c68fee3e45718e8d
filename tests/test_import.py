"""Importing reidgraph changes no global state: the program's warning filters stay as they were."""
import subprocess
import sys

# torch, numpy and torchvision add filters of their own when first imported; they are imported first, so that
# what is compared is what importing reidgraph (PyTorch Geometric included) does.
CHECK = """
import warnings
import numpy, torch, torchvision
before = list(warnings.filters)
import reidgraph
import reidgraph.graph, reidgraph.nn, reidgraph.rerank, reidgraph.engine, reidgraph.evaluation
assert warnings.filters == before, [f for f in warnings.filters if f not in before]
"""


def test_import_leaves_warning_filters_unchanged():
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_pyg_import_warning_is_silenced_where_it_arises():
    # torch_geometric's own import-time FutureWarning (torch.jit.script) stays inside reidgraph's PyG import.
    done = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-c", "import reidgraph.graph, reidgraph.nn"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
