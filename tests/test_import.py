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
from reidgraph.graph import build_graphs, knn  # the packages import their modules on first use of a name
from reidgraph.nn import FFGNN, FFGNNConv
from reidgraph.rerank import rerank
from reidgraph.engine import train_ffgnn
from reidgraph.evaluation import evaluate_order
import torch_geometric  # imported by the names above
assert warnings.filters == before, [f for f in warnings.filters if f not in before]
"""


def test_import_leaves_warning_filters_unchanged():
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_pyg_import_warning_is_silenced_where_it_arises():
    # torch_geometric's own import-time FutureWarning (torch.jit.script) stays inside reidgraph's PyG import.
    done = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-c",
                           "from reidgraph.nn import FFGNNConv; from reidgraph.graph import build_graphs"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


HEAVY = ("torch_geometric", "torchvision", "PIL", "scipy", "faiss", "onnx", "onnxruntime", "openvino",
         "pykeops")


def test_help_imports_only_what_it_prints():
    """``reidgraph --help`` and every ``reidgraph COMMAND --help`` load none of the heavy packages: they are
    imported inside the commands (and names) that use them. One process runs them all, so what any of them
    imports is counted."""
    check = ("import contextlib, io, runpy, sys\n"
             "from reidgraph.cli import COMMANDS\n"
             "for args in (['--help'], *([name, '--help'] for name in COMMANDS)):\n"
             "    sys.argv = ['reidgraph', *args]\n"
             "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
             "        runpy.run_module('reidgraph.cli', run_name='__main__')\n"
             f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), len(COMMANDS))")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    from reidgraph.cli import COMMANDS
    assert done.stdout.split() == ["[]", str(len(COMMANDS))], done.stdout
