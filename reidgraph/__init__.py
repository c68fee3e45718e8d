"""reidgraph: Feature-Fusing Graph Neural Networks (FFGNN) for person re-identification.

Subpackages, in data-flow order: :mod:`reidgraph.graph` (kNN and neighbourhood
graphs), :mod:`reidgraph.nn` (the FFGNN layer and network, test-time
re-ranking), :mod:`reidgraph.evaluation` (CMC / mAP / mINP).
"""
import warnings

# torch_geometric calls torch.jit.script on import, which torch now deprecates;
# the warning is about PyG's internals, not anything a reidgraph user can act on.
warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)

__version__ = "0.1.0"
