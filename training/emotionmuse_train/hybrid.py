"""A neighbourhood model's candidates re-scored by a sequence model, as the recommender serves it
(`processors/recommender/neighbours.ts`, `fuse`): each model's best `k` tracks outside the history,
each list's scores min-max normalised to [0, 1] (a track missing from a list scores 0 there), the
union ranked by (1 - weight) * neighbourhood + weight * sequence. Tracks in neither list rank
below every candidate."""
import torch

CANDIDATES = 100
OUTSIDE = -1e4  # the score of a track in neither list


def top_outside_history(scores: torch.Tensor, hist: torch.Tensor, k: int = CANDIDATES):
    """The best `k` of each row with the history's tracks excluded."""
    masked = scores.clone()
    rows, cols = (hist > 0).nonzero(as_tuple=True)
    masked[rows, hist[rows, cols] - 1] = -float("inf")
    return masked.topk(min(k, scores.shape[1]), dim=1)


def minmax(values: torch.Tensor) -> torch.Tensor:
    """Each row to [0, 1] over its finite values (all equal: 0, as the scorer does)."""
    finite = torch.isfinite(values)
    lo = torch.where(finite, values, torch.full_like(values, float("inf"))).min(dim=1, keepdim=True).values
    hi = torch.where(finite, values, torch.full_like(values, -float("inf"))).max(dim=1, keepdim=True).values
    span = hi - lo
    return (values - lo) / torch.where(span > 0, span, torch.ones_like(span))


def fuse(n_items: int, hist, knn_scores, seq_scores, weight: float) -> torch.Tensor:
    """[batch, items]: the fused score of every candidate, OUTSIDE elsewhere. A list shorter than
    CANDIDATES (a small catalogue) holds its tracks outside the history only."""
    out = torch.zeros(hist.shape[0], n_items)
    member = torch.zeros(hist.shape[0], n_items, dtype=torch.bool)
    for scores, w in ((knn_scores, 1 - weight), (seq_scores, weight)):
        top, ids = top_outside_history(scores, hist)
        finite = torch.isfinite(top)
        out.scatter_add_(1, ids, torch.where(finite, w * minmax(top), torch.zeros_like(top)))
        member.scatter_(1, ids, finite | member.gather(1, ids))
    return torch.where(member, out, torch.full_like(out, OUTSIDE))


class Hybrid:
    def __init__(self, neighbourhood, sequence, weight: float):
        self.neighbourhood, self.sequence, self.weight = neighbourhood, sequence, weight
        self.n_items = neighbourhood.n_items
        # the neighbourhood models read only the history's tracks, so the sequence model decides
        self.padding_invariant = getattr(sequence, "padding_invariant", False)

    def score_all(self, hist, mask, probs, user=None):
        knn, _ = self.neighbourhood.score_all(hist, mask, probs, user)
        seq, e = self.sequence.score_all(hist, mask, probs, user)
        return fuse(self.n_items, hist, knn, seq, self.weight), e
