"""Clustered features shared by the re-ranking tests."""
import torch


def clustered(ids=15, per_id=5, dim=8, noise=0.35, seed=0):
    """One query (camera 0) and ``per_id - 1`` gallery items (cameras 1..) per identity.

    Returns ``(query, gallery, q_pids, g_pids, q_cams, g_cams)`` in float64.
    """
    gen = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(ids, dim, generator=gen, dtype=torch.float64), dim=1)
    feats = centres.repeat_interleave(per_id, 0) + noise * torch.randn(ids * per_id, dim, generator=gen,
                                                                         dtype=torch.float64)
    pids = torch.arange(ids).repeat_interleave(per_id)
    cams = torch.arange(per_id).repeat(ids)
    is_query = cams == 0
    return feats[is_query], feats[~is_query], pids[is_query], pids[~is_query], cams[is_query], cams[~is_query]
