"""The PyTorch Geometric names reidgraph uses, imported in one place with PyG's import-time warning silenced.

``import torch_geometric`` calls ``torch.jit.script``, which torch now deprecates with a FutureWarning about
PyG's internals, nothing a reidgraph user can act on. The filter holds only while PyG is imported here, so
importing reidgraph leaves the program's warning filters as they were.
"""
import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
    from torch_geometric.data import Data, Dataset
    from torch_geometric.nn import MessagePassing
    from torch_geometric.nn.conv.gcn_conv import gcn_norm
    from torch_geometric.transforms import BaseTransform
    from torch_geometric.typing import Adj, OptTensor, SparseTensor
    from torch_geometric.utils import dense_to_sparse, spmm

__all__ = ["Adj", "BaseTransform", "Data", "Dataset", "MessagePassing", "OptTensor", "SparseTensor", "dense_to_sparse",
           "gcn_norm", "spmm"]
