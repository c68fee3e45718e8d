"""as_labels and camera_ids: integer ids only, every refusal a one-line ValueError."""
import numpy as np
import pytest
import torch

from reidgraph._checks import as_labels, camera_ids


@pytest.mark.parametrize("labels", [
    torch.rand(5), np.random.rand(5), [0.5, 1.5, 2.0, 3.0, 4.0],
    torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]),  # integral floats are refused too (documented)
    torch.ones(5, dtype=torch.bool), torch.ones(5, dtype=torch.complex64),
])
def test_as_labels_refuses_non_integer_dtypes(labels):
    with pytest.raises(ValueError, match="q_pids must hold integers") as err:
        as_labels(labels, 5, "q_pids", "the query set")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("labels", [list("abcde"), np.array(["1", "2", "3", "4", "5"]), [object()] * 5,
                                    [b"a"] * 5])
def test_as_labels_refuses_text_and_objects_with_a_one_line_value_error(labels):
    with pytest.raises(ValueError, match="q_pids must hold integers") as err:
        as_labels(labels, 5, "q_pids", "the query set")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("labels", [[1, 2, 3, 4, 5], np.arange(5, dtype=np.uint8), torch.arange(5, dtype=torch.int32)])
def test_as_labels_accepts_integers(labels):
    t = as_labels(labels, 5, "q_pids", "the query set")
    assert t.dtype == torch.long and t.tolist() == [int(v) for v in np.asarray(labels)]


def test_camera_ids_of_vectors_and_of_graph_nodes():
    assert camera_ids([0, 1, 1], 3, "query_camids", "query", "unused").tolist() == [0, 1, 1]
    nodes = camera_ids(np.zeros((2, 4), dtype=np.int32), (2, 4), "camids", "the graphs' nodes", "unused")
    assert nodes.dtype == torch.long and nodes.shape == (2, 4)
    for args, message in [((None, 3, "query_camids", "query", "query_camids is missing"), "query_camids is missing"),
                          (([0, 1], 3, "query_camids", "query", ""), r"query_camids has shape \(2,\) but query has 3"),
                          ((torch.zeros(2, 3), (2, 4), "camids", "x", ""), r"one camera per node, shape \[2, 4\]"),
                          ((torch.zeros(2, 4), (2, 4), "camids", "x", ""), "camids must hold integers")]:
        with pytest.raises(ValueError, match=message) as err:
            camera_ids(*args)
        assert "\n" not in str(err.value)


def test_features_of_unusual_kinds_are_read_or_refused_in_one_line():
    from reidgraph._checks import as_features

    x = torch.randn(4, 3)
    assert torch.equal(as_features(x.to_sparse(), "q"), x)
    assert not as_features(x.clone().requires_grad_(), "q").requires_grad
    assert as_features(x.to(torch.float8_e4m3fn), "q").dtype == torch.float32
    for bad, message in ((torch.empty(4, 3, device="meta"), "meta tensor"),
                         (torch.randn(4, 3, dtype=torch.complex64), "complex numbers")):
        with pytest.raises(ValueError, match=message) as err:
            as_features(bad, "q")
        assert "\n" not in str(err.value)
