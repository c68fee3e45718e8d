"""reidgraph: Feature-Fusing Graph Neural Networks (FFGNN) for person re-identification.

Subpackages, in data-flow order: :mod:`reidgraph.graph` (kNN and neighborhood
graphs), :mod:`reidgraph.nn` (the FFGNN layer and network, test-time
re-ranking), :mod:`reidgraph.evaluation` (CMC / mAP / mINP).
"""
__version__ = "0.1.0"
