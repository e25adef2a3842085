"""Item-kNN: co-occurrence cosine over the training part of every sequence. A user's score for a
track is the sum of its similarities to the tracks of the recent history (the last `recent`)."""
import numpy as np
import torch


class ItemKnn:
    def __init__(self, n_items: int, sequences: list, window: int = 5, recent: int = 5):
        rows, cols = [], []
        for seq in sequences:
            train = seq[:-2]  # the last two items are validation and test
            for i in range(len(train)):
                for j in range(max(0, i - window), min(len(train), i + window + 1)):
                    if i != j and train[i] != train[j]:
                        rows.append(int(train[i])); cols.append(int(train[j]))
        counts = np.bincount(np.concatenate([s[:-2] for s in sequences]).astype(np.int64), minlength=n_items).astype(np.float64) if sequences else np.zeros(n_items)
        if rows:
            pairs = np.unique(np.stack([rows, cols]), axis=1, return_counts=True)
            (r, c), v = pairs
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
        h = torch.zeros(hist.shape[0], self.n_items)
        valid = recent > 0
        h.scatter_add_(1, (recent - 1).clamp(min=0), valid.float())
        scores = torch.sparse.mm(self.sim, h.t()).t()
        return scores + 1e-6 * self.popularity, None
