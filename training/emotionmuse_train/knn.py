"""Item-kNN: co-occurrence cosine over the training part of every sequence. A user's score for a
track is the sum of its similarities to the tracks of the recent history (the last `recent`)."""
import numpy as np
import torch


class ItemKnn:
    def __init__(self, n_items: int, sequences: list, window: int = 5, recent: int = 5):
        train = [np.asarray(seq[:-2], dtype=np.int64) for seq in sequences]  # the last two items are validation and test
        flat = np.concatenate(train) if train else np.zeros(0, dtype=np.int64)
        owner = np.repeat(np.arange(len(train)), [len(t) for t in train])
        counts = np.bincount(flat, minlength=n_items).astype(np.float64)
        # Every ordered pair of plays at most `window` apart within a sequence, counted as often
        # as it occurs; vectorised over all sequences at each distance, each pair a single key.
        keys = []
        for d in range(1, window + 1):
            same = owner[d:] == owner[:-d]
            a, b = flat[:-d][same], flat[d:][same]
            keep = a != b
            keys += [a[keep] * n_items + b[keep], b[keep] * n_items + a[keep]]
        if keys and sum(len(k) for k in keys):
            pair, v = np.unique(np.concatenate(keys), return_counts=True)
            r, c = pair // n_items, pair % n_items
            v = v / np.sqrt(np.maximum(counts[r], 1) * np.maximum(counts[c], 1))
        else:
            r = c = np.zeros(0, dtype=np.int64); v = np.zeros(0)
        self.sim = torch.sparse_coo_tensor(torch.tensor(np.stack([r, c])), torch.tensor(v, dtype=torch.float32), (n_items, n_items)).coalesce()
        self.popularity = torch.tensor(np.log1p(counts), dtype=torch.float32)
        self.n_items = n_items
        self.recent = recent

    def score_all(self, hist, mask, probs=None, user=None):
        """hist: [batch, 50] item + 1, left-padded. A tiny popularity term breaks ties among unrelated tracks."""
        recent = hist[:, -self.recent:]
        rows, cols = (recent > 0).nonzero(as_tuple=True)
        # A sparse [batch, items] count of the recent tracks times the sparse similarity: the
        # work follows the recent tracks' neighbours, not the whole matrix.
        h = torch.sparse_coo_tensor(torch.stack([rows, recent[rows, cols] - 1]), torch.ones(len(rows)), (hist.shape[0], self.n_items)).coalesce()
        scores = torch.sparse.mm(h, self.sim).to_dense()
        return scores + 1e-6 * self.popularity, None
