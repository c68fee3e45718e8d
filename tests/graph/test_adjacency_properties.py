"""Property-based checks of the graph builder on adversarial inputs (hypothesis).

Inputs mix exact duplicates, parallel vectors of different norms, opposite
vectors (negative cosines), random integer vectors and zero vectors, for
n in 1..12 nodes and D in 1..5 dims, with k, tau and lam anywhere in range.

What holds, and is asserted:
* every weight of A lies in [0, 1];
* every node keeps a self-loop, and a_ii is its row's largest weight (a_ii = 1:
  c_ii = 1 and d_ii = 1 by construction);
* S lies in [0, 1] up to rounding: s_ij = a_ij / sqrt(deg_i deg_j) with
  deg_i >= a_ii >= a_ij and deg_j >= a_jj >= a_ij, so s_ij <= a_ij / a_jj <= 1;
  the rsqrt can overshoot 1 by a few ulps, hence the tolerance;
* a batch [B, n, D] gives the same A (and S) as each graph alone.
"""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reidgraph.graph import neighborhood_adjacency, normalize_adjacency


@st.composite
def graphs(draw, batch=1):
    n = draw(st.integers(1, 12))
    dim = draw(st.integers(1, 5))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    base = torch.randint(-3, 4, (4, dim), generator=gen).to(dtype)
    base[base.abs().sum(1) == 0, 0] = 1  # base directions are non-zero
    out = []
    for _ in range(batch):
        rows = []
        for _ in range(n):
            kind = draw(st.sampled_from(["dup", "scaled", "opposite", "random", "zero"]))
            b = base[draw(st.integers(0, 3))]
            if kind == "dup":
                rows.append(b.clone())
            elif kind == "scaled":
                rows.append(b * draw(st.sampled_from([1e-3, 0.1, 3.0, 7.0, 1e3])))
            elif kind == "opposite":
                rows.append(-b * draw(st.sampled_from([1.0, 7.0])))
            elif kind == "random":
                rows.append(torch.randn(dim, generator=gen).to(dtype))
            else:
                rows.append(torch.zeros(dim, dtype=dtype))
        out.append(torch.stack(rows))
    x = torch.stack(out)
    k = draw(st.integers(1, n))
    tau = draw(st.integers(1, n))
    lam = draw(st.sampled_from([0.0, 0.3, 0.7, 1.0]) | st.floats(0, 1))
    edges = draw(st.sampled_from(["joint", "cosine"]))
    return x, dict(k=k, tau=tau, lam=lam, edges=edges)


def _check_weights(A, S):
    eps = 4 * torch.finfo(A.dtype).eps
    assert A.min() >= 0 and A.max() <= 1, (A.min(), A.max())
    diag = A.diagonal(dim1=-2, dim2=-1)
    assert torch.all(diag > 0), "a node lost its self-loop"
    assert torch.all(diag >= A.amax(-1)), "a node's self-loop is not its row's largest weight"
    assert S.min() >= 0 and S.max() <= 1 + eps, (S.min(), S.max())
    assert torch.all(S.diagonal(dim1=-2, dim2=-1) > 0)


@settings(max_examples=60, deadline=None)
@given(graphs())
def test_weights_in_unit_interval_with_self_loops(case):
    x, kw = case
    A = neighborhood_adjacency(x[0], **kw)
    _check_weights(A, normalize_adjacency(A))


@settings(max_examples=60, deadline=None)
@given(graphs(batch=3))
def test_batched_equals_one_by_one(case):
    x, kw = case
    A = neighborhood_adjacency(x, **kw)
    S = normalize_adjacency(A)
    _check_weights(A, S)
    for b in range(x.shape[0]):
        Ab = neighborhood_adjacency(x[b], **kw)
        assert torch.allclose(A[b], Ab, atol=1e-6, rtol=0)
        assert torch.allclose(S[b], normalize_adjacency(Ab), atol=1e-6, rtol=0)
