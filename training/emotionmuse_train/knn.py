"""Neighbourhood recommenders over the training part of every sequence (the last two plays of each
are validation and test), with the sequence models' interface: `score_all(hist, mask, probs,
user)` over the whole catalogue, `hist` [batch, 50] holding track index + 1, left-padded.

- `ItemKnn`: the report's baseline, co-occurrence cosine within a window of plays; a track's score
  is the sum of its similarities to the last `recent` tracks.
- `RecencyItemKnn`: item-kNN tuned for sequences: asymmetric cosine (alpha), a play's weight decays
  with its distance from the end of the history, and only each track's `neighbours` most similar
  tracks are kept, so that what is evaluated is what is exported and served.
- `SessionKnn`: SKNN and V-SKNN (Jannach and Ludewig, RecSys 2017; Ludewig and Jannach, 2018):
  the `k` training sequences most similar to the history (cosine of their track sets; V-SKNN
  weighs the history's plays by recency and can weigh shared tracks by inverse document
  frequency) vote for their tracks with their similarity.

Every model here exports what the recommender needs to score it without Python
(`export_tables`): the neighbour table of an item-kNN, or the training sequences of a
session-kNN. `processors/recommender/neighbours.ts` scores them the same way.
"""
import warnings

import numpy as np
import torch

# torch 1.13 calls scatter_reduce "beta"; its "amax" is what SessionKnn needs
warnings.filterwarnings("ignore", message="scatter_reduce\\(\\) is in beta")


def _train_parts(sequences: list) -> list:
    return [np.asarray(seq[:-2], dtype=np.int64) for seq in sequences]


def _sparse(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape) -> torch.Tensor:
    return torch.sparse_coo_tensor(torch.tensor(np.stack([rows, cols]), dtype=torch.long), torch.tensor(values, dtype=torch.float32), shape).coalesce()


def history_weights(hist: torch.Tensor, recent: int, decay: float) -> torch.Tensor:
    """Each of the last `recent` plays weighs decay ** (its distance from the end of the history: 0
    for the last play). Returns the weights, their rows and their track indices."""
    last = hist[:, -recent:]
    rows, cols = (last > 0).nonzero(as_tuple=True)
    distance = (last.shape[1] - 1 - cols).float()
    w = torch.pow(torch.tensor(decay, dtype=torch.float32), distance)
    return w, rows, last[rows, cols] - 1


def _weighted(hist: torch.Tensor, n_items: int, recent: int, decay: float) -> torch.Tensor:
    """[batch, items] sparse history weights; a track played twice adds both weights."""
    w, rows, items = history_weights(hist, recent, decay)
    return torch.sparse_coo_tensor(torch.stack([rows, items]), w, (hist.shape[0], n_items)).coalesce()


def _pair_counts(n_items: int, sequences: list, window: int, forward: float = 1.0):
    """Every ordered pair of plays at most `window` apart within a sequence's training part,
    counted as often as it occurs (a pair with b after a counts `forward`, b before a counts 1);
    vectorised over all sequences at each distance. Returns the rows, columns and counts of the
    distinct pairs, and each track's play count."""
    train = _train_parts(sequences)
    flat = np.concatenate(train) if train else np.zeros(0, dtype=np.int64)
    owner = np.repeat(np.arange(len(train)), [len(t) for t in train])
    counts = np.bincount(flat, minlength=n_items).astype(np.float64)
    keys, weights = [], []
    for d in range(1, window + 1):
        same = owner[d:] == owner[:-d]
        a, b = flat[:-d][same], flat[d:][same]
        keep = a != b
        a, b = a[keep], b[keep]
        keys += [a * n_items + b, b * n_items + a]
        weights += [np.full(len(a), forward), np.ones(len(a))]
    if not keys or not sum(len(k) for k in keys):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0), counts
    pair, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    return pair // n_items, pair % n_items, np.bincount(inverse, weights=np.concatenate(weights)), counts


class ItemKnn:
    kind = "item-knn"

    def __init__(self, n_items: int, sequences: list, window: int = 5, recent: int = 5):
        r, c, v, counts = _pair_counts(n_items, sequences, window)
        v = v / np.sqrt(np.maximum(counts[r], 1) * np.maximum(counts[c], 1))
        self.sim = _sparse(r, c, v, (n_items, n_items))
        self.popularity = torch.tensor(np.log1p(counts), dtype=torch.float32)
        self.n_items = n_items
        self.recent = recent

    def score_all(self, hist, mask=None, probs=None, user=None):
        """A tiny popularity term breaks ties among unrelated tracks."""
        h = _weighted(hist, self.n_items, self.recent, 1.0)
        # A sparse [batch, items] count of the recent tracks times the sparse similarity: the
        # work follows the recent tracks' neighbours, not the whole matrix.
        return torch.sparse.mm(h, self.sim).to_dense() + 1e-6 * self.popularity, None


class RecencyItemKnn:
    """sim(a, b) = c(a, b) / (n_a ** alpha * n_b ** (1 - alpha)), c counting the pairs of plays at
    most `window` apart in a sequence (both orders; a pair with b after a counts `forward`
    times), n the play counts. Each track keeps its `neighbours` best. score(b) = sum over the
    last `recent` plays h of decay ** (h's distance from the end) * sim(h, b)."""

    kind = "item-knn-recency"

    def __init__(self, n_items: int, sequences: list, window: int = 10, alpha: float = 0.5, decay: float = 0.8,
                 recent: int = 20, neighbours: int = 100, forward: float = 1.0):
        r, c, v, counts = _pair_counts(n_items, sequences, window, forward)
        v = v / (np.maximum(counts[r], 1) ** alpha * np.maximum(counts[c], 1) ** (1 - alpha))
        r, c, v = _prune(r, c, v, neighbours)
        self.rows, self.cols, self.values = r, c, v
        self.sim = _sparse(r, c, v, (n_items, n_items))
        self.popularity = torch.tensor(np.log1p(counts), dtype=torch.float32)
        self.n_items = n_items
        self.settings = {"window": window, "alpha": alpha, "decay": decay, "recent": recent, "neighbours": neighbours, "forward": forward}

    def score_all(self, hist, mask=None, probs=None, user=None):
        h = _weighted(hist, self.n_items, self.settings["recent"], self.settings["decay"])
        return torch.sparse.mm(h, self.sim).to_dense() + 1e-6 * self.popularity, None

    def export_tables(self) -> dict:
        """Per track, its neighbours and their similarities, best first, padded with -1 / 0."""
        k = self.settings["neighbours"]
        ids = np.full((self.n_items, k), -1, dtype=np.int32)
        sims = np.zeros((self.n_items, k), dtype=np.float32)
        order = np.lexsort((-self.values, self.rows))
        r, c, v = self.rows[order], self.cols[order], self.values[order]
        start = np.searchsorted(r, np.arange(self.n_items))
        rank = np.arange(len(r)) - start[r]
        ids[r, rank] = c
        sims[r, rank] = v
        return {"neighbour_ids.i32": ids, "neighbour_sims.f32": sims}


def _prune(r, c, v, k):
    """Keeps each row's k largest values (ties: the smaller column)."""
    order = np.lexsort((c, -v, r))
    r, c, v = r[order], c[order], v[order]
    start = np.searchsorted(r, r)  # first index of each element's row
    keep = (np.arange(len(r)) - start) < k
    return r[keep], c[keep], v[keep]


class SessionKnn:
    """The `k` training sequences most similar to the history vote for their tracks:
    score(i) = sum over neighbours t holding i of sim(history, t). sim is the cosine between the
    history's weighted track set (the last `recent` plays; V-SKNN: weight decay ** distance from
    the end, SKNN: decay 1) and t's track set; with `idf`, a shared track also weighs
    log(sequences / sequences holding it). A user's own training sequence is not a neighbour in
    evaluation (its tracks are the history's own)."""

    def __init__(self, n_items: int, sequences: list, k: int = 100, recent: int = 50, decay: float = 1.0, idf: bool = False):
        train = _train_parts(sequences)
        self.n_items = n_items
        self.kind = "sknn" if decay == 1.0 and not idf else "vsknn"
        self.sessions = [np.unique(t) for t in train]
        rows = np.repeat(np.arange(len(self.sessions)), [len(s) for s in self.sessions])
        cols = np.concatenate(self.sessions) if self.sessions else np.zeros(0, dtype=np.int64)
        holders = np.bincount(cols, minlength=n_items).astype(np.float64)
        self.idf = np.log(max(len(self.sessions), 1) / np.maximum(holders, 1)) if idf else np.ones(n_items)
        self.matrix_t = _sparse(cols, rows, np.ones(len(cols)), (n_items, len(self.sessions)))  # items x sessions
        self.matrix = _sparse(rows, cols, np.ones(len(cols)), (len(self.sessions), n_items))
        self.lengths = torch.tensor([max(len(s), 1) for s in self.sessions], dtype=torch.float32)
        self.popularity = torch.tensor(np.log1p(holders), dtype=torch.float32)
        self.settings = {"k": k, "recent": recent, "decay": decay, "idf": idf}

    def score_all(self, hist, mask=None, probs=None, user=None):
        s = self.settings
        w, rows, items = history_weights(hist, s["recent"], s["decay"])
        # a track played twice counts once, at its most recent play's weight
        uniq, inverse = torch.unique(rows * self.n_items + items, return_inverse=True)
        r, i = uniq // self.n_items, uniq % self.n_items
        wv = torch.zeros(len(uniq)).scatter_reduce(0, inverse, w, "amax", include_self=False)
        h = torch.sparse_coo_tensor(torch.stack([r, i]), wv * torch.tensor(self.idf, dtype=torch.float32)[i], (hist.shape[0], self.n_items)).coalesce()
        n_hist = torch.zeros(hist.shape[0]).index_add_(0, r, torch.ones(len(r)))
        sim = torch.sparse.mm(h, self.matrix_t).to_dense()  # [batch, sessions]
        sim = sim / torch.sqrt(torch.clamp(n_hist, min=1)).unsqueeze(1) / torch.sqrt(self.lengths).unsqueeze(0)
        if user is not None:
            own = torch.as_tensor(user)
            sim[torch.arange(len(own)), own] = 0.0
        k = min(s["k"], sim.shape[1])
        # the best k, ties to the earlier sequence (a stable sort), as the recommender does
        top, idx = torch.sort(sim, dim=1, descending=True, stable=True)
        top, idx = top[:, :k], idx[:, :k]
        votes = torch.sparse_coo_tensor(torch.stack([torch.arange(hist.shape[0]).repeat_interleave(k), idx.reshape(-1)]), top.reshape(-1), sim.shape).coalesce()
        return torch.sparse.mm(votes, self.matrix).to_dense() + 1e-6 * self.popularity, None

    def export_tables(self) -> dict:
        """The training sequences' track sets (CSR: offsets, then tracks) and each track's idf."""
        offsets = np.concatenate([[0], np.cumsum([len(t) for t in self.sessions])]).astype(np.int32)
        tracks = (np.concatenate(self.sessions) if self.sessions else np.zeros(0)).astype(np.int32)
        return {"session_offsets.i32": offsets, "session_tracks.i32": tracks, "idf.f32": self.idf.astype(np.float32)}
