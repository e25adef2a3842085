"""Leave-one-out split, BPR training with early stopping, and the paper's evaluation protocol
(sampled: the held-out item among 99 uniform negatives; full: among the whole catalogue)."""
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as nn_f

from .models import BPRMF, GRU4Rec, N_HISTORY, SASRec, BiLSTMRecommender

# Neighbourhood models: built from counts, no training loop; always tuned on the validation split.
NEIGHBOURHOOD = ("item-knn-recency", "sknn", "vsknn")
# Not served: popularity and BPR-MF (its user vectors exist only for training sequences) and the
# baseline item-kNN (its unpruned similarity; the recency item-kNN is its servable successor).
NOT_SERVED = ("popularity", "bpr-mf", "item-knn")

KINDS = {
    "popularity": "Popularity",
    "item-knn": "Item-kNN (co-occurrence cosine)",
    "item-knn-recency": "Item-kNN, recency-weighted (asymmetric cosine, top-k neighbours)",
    "sknn": "SKNN (session-kNN)",
    "vsknn": "V-SKNN (recency-weighted session-kNN)",
    "bpr-mf": "BPR-MF",
    "gru4rec": "GRU4Rec-style GRU",
    "sasrec": "SASRec-style self-attention",
    "bilstm": "Bi-LSTM, no emotion",
    "bilstm-onehot": "Bi-LSTM + one-hot emotion",
    "bilstm-soft": "Bi-LSTM + soft probabilities",
    "bilstm-va": "Bi-LSTM + V-A embedding (EmotionMuse)",
    "hybrid": "Hybrid: the best neighbourhood model's candidates re-scored by the best sequence model",
}


@dataclass
class Data:
    n_items: int
    items: list       # per user, item indices (completed plays in order)
    emotions: list    # per user, [len, 7]
    music_emb: torch.Tensor  # [n_items, 64], fixed
    eval_negatives: dict     # split -> [users, 99] sampled negatives, the same for every model


def prepare(n_items: int, items: list, emotions: list, music_emb: np.ndarray, seed: int = 12345) -> Data:
    rng = np.random.default_rng(seed)
    negatives = {}
    for split in ("val", "test"):
        rows = []
        for seq in items:
            seen = set(seq.tolist())
            row = []
            while len(row) < 99:
                c = int(rng.integers(0, n_items))
                if c not in seen and c not in row:
                    row.append(c)
            rows.append(row)
        negatives[split] = torch.tensor(rows, dtype=torch.long)
    return Data(n_items=n_items, items=items, emotions=emotions, music_emb=torch.tensor(music_emb), eval_negatives=negatives)


def history_tensor(seqs: list, ends: list):
    """Last N items before each end position, left-padded; item index + 1 (0 is padding)."""
    hist = np.zeros((len(seqs), N_HISTORY), dtype=np.int64)
    for r, (seq, end) in enumerate(zip(seqs, ends)):
        h = seq[max(0, end - N_HISTORY):end] + 1
        if len(h):
            hist[r, -len(h):] = h
    hist_t = torch.tensor(hist)
    return hist_t, (hist_t > 0).float()


def trimmed(model, hist, mask):
    """For a model whose scores do not depend on the padding (the Bi-LSTMs), the batch cut to its
    longest history: the same scores for less work."""
    if not getattr(model, "padding_invariant", False):
        return hist, mask
    width = max(1, int(mask.sum(dim=1).max()))
    return hist[:, -width:], mask[:, -width:]


def build_model(kind: str, n_items: int, n_users: int):
    if kind == "bpr-mf":
        return BPRMF(n_users, n_items)
    if kind == "gru4rec":
        return GRU4Rec(n_items)
    if kind == "sasrec":
        return SASRec(n_items)
    if kind.startswith("bilstm"):
        mode = kind.split("-")[1] if "-" in kind else "none"
        return BiLSTMRecommender(n_items, emotion=mode)
    raise ValueError(kind)


def popularity_scores(data: Data) -> torch.Tensor:
    counts = np.zeros(data.n_items)
    for seq in data.items:
        np.add.at(counts, seq[:-2], 1)
    return torch.tensor(np.log1p(counts), dtype=torch.float32)


def compat_loss(scores: torch.Tensor, candidates, e: torch.Tensor, music_emb: torch.Tensor) -> torch.Tensor:
    """The paper's L_compat, differentiably: the cosine distance between the current emotion
    embedding and the music emotion embeddings of the candidates, weighted by the softmax of
    their scores (the 'top-ranked' tracks carry the weight). `candidates` None: the whole
    catalogue, `scores` [B, items]."""
    w = torch.softmax(scores, dim=1)
    mixed = w @ music_emb if candidates is None else (w.unsqueeze(2) * music_emb[candidates]).sum(dim=1)
    return (1 - torch.nn.functional.cosine_similarity(mixed, e, dim=1)).mean()


LOSSES = ("sampled", "softmax", "bpr")
CAUSAL = ("gru4rec", "sasrec")  # one pass predicts the next track at every position
NEGATIVES_SAMPLED = 1024


def sampling_distribution(data: Data) -> np.ndarray:
    """q for the sampled softmax's negatives: training play counts (+1) ** 0.75, normalised."""
    counts = np.zeros(data.n_items)
    for seq in data.items:
        np.add.at(counts, seq[:-2], 1)
    q = (counts + 1) ** 0.75
    return q / q.sum()


def sampled_loss(model, u, pos, neg, log_q, e=None, music_emb=None, beta=0.0):
    """Sampled softmax with the logQ correction (Bengio and Senecal; Yi et al., RecSys 2019): the
    positive against `neg` (shared by the batch, drawn from q), every logit less log(S * q), a
    negative equal to the row's positive masked. The output rows are gathered as sparse
    gradients, so the optimiser touches only the sampled tracks. With an emotion embedding `e`,
    the compatibility term over the same candidates."""
    w_pos = nn_f.embedding(pos, model.out.weight, sparse=True)
    w_neg = nn_f.embedding(neg, model.out.weight, sparse=True)
    logit_pos = (u * w_pos).sum(dim=1) + model.out.bias[pos] - log_q[pos]
    logit_neg = u @ w_neg.T + model.out.bias[neg] - log_q[neg]
    logit_neg = logit_neg.masked_fill(neg.unsqueeze(0) == pos.unsqueeze(1), -float("inf"))
    logits = torch.cat([logit_pos.unsqueeze(1), logit_neg], dim=1)
    value = nn_f.cross_entropy(logits, torch.zeros(len(pos), dtype=torch.long))
    if e is not None and beta > 0:
        w = torch.softmax(logits, dim=1)
        mixed = w[:, :1] * music_emb[pos] + w[:, 1:] @ music_emb[neg]
        value = value + beta * (1 - nn_f.cosine_similarity(mixed, e, dim=1)).mean()
    return value


def _optimisers(model, lr: float, weight_decay: float, sparse: bool):
    """Adam; with `sparse`, the catalogue-sized tables (item embedding, output rows) get SparseAdam,
    which updates only the rows a batch used."""
    if not sparse:
        return [torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)]
    model.item_emb.sparse = True
    tables = [model.item_emb.weight, model.out.weight]
    rest = [p for p in model.parameters() if all(p is not t for t in tables)]
    return [torch.optim.SparseAdam(tables, lr=lr), torch.optim.Adam(rest, lr=lr, weight_decay=weight_decay)]


def _training_samples(kind: str, data: Data, rng, targets_per_user: int, loss: str, batch: int = 128):
    """(user, end) pairs. Causal models with the sampled loss: one per user, `end` the training
    part's length (every position of its last window is a target); others: `targets_per_user`
    positions drawn per user, each predicted from the plays before it."""
    samples = []
    for u, seq in enumerate(data.items):
        train_len = len(seq) - 2
        if kind in CAUSAL and loss == "sampled":
            samples.append((u, train_len - 1))  # targets: the training plays after the first
            continue
        positions = rng.choice(np.arange(1, train_len), size=min(targets_per_user, train_len - 1), replace=False)
        samples.extend((u, int(p)) for p in positions)
    rng.shuffle(samples)
    if kind.startswith("bilstm"):
        # Batches of similar history lengths (sorted within shuffled groups of 64 batches, the
        # batches then shuffled), so that cutting each batch to its longest history saves most.
        group = 64 * batch
        samples = [x for g in range(0, len(samples), group) for x in sorted(samples[g:g + group], key=lambda s: min(s[1], N_HISTORY))]
        batches = [samples[i:i + batch] for i in range(0, len(samples), batch)]
        rng.shuffle(batches)
        samples = [x for b in batches for x in b]
    return samples


def train(kind: str, data: Data, seed: int, max_epochs: int = 12, patience: int = 3, targets_per_user: int = 6,
          negatives: int = 4, beta: float = 0.1, lr: float = 5e-4, batch: int = 256, loss: str = "sampled", deadline: float = 0.0, history_length: int = N_HISTORY, log=print):
    """`loss` sampled (default): sampled softmax with the logQ correction against
    NEGATIVES_SAMPLED shared negatives, the catalogue-sized output only at evaluation; the
    causal models (GRU4Rec, SASRec) then learn every position of a sequence in one pass. softmax:
    cross-entropy against the whole catalogue; bpr: the pairwise BPR loss against `negatives`
    uniform negatives (the paper's). BPR-MF always trains with BPR. Early stopping on the
    validation split's full-catalogue NDCG@10. `deadline` (a time.time() value, 0 for none):
    training stops there, mid-epoch if need be, and the best epoch so far is kept. Each epoch's
    history entry holds where its time went (`profile`, seconds)."""
    if loss not in LOSSES:
        raise ValueError(f"loss {loss!r}: one of {', '.join(LOSSES)}")
    if kind == "bpr-mf":
        loss = "bpr"
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_users = len(data.items)
    model = build_model(kind, data.n_items, n_users)
    if hasattr(model, "history"):
        model.history = history_length
    weight_decay = 0.0 if kind == "bpr-mf" else 1e-6
    sampled = loss == "sampled"
    opts = _optimisers(model, lr, weight_decay, sparse=sampled)
    if sampled:
        q = sampling_distribution(data)
        log_q = torch.tensor(np.log(NEGATIVES_SAMPLED * q), dtype=torch.float32)
    best, best_state, bad, history = -1.0, None, 0, []
    for epoch in range(max_epochs):
        started = time.time()
        profile = {"batches": 0.0, "forward": 0.0, "backward": 0.0, "step": 0.0, "validation": 0.0}
        model.train()
        samples = _training_samples(kind, data, rng, targets_per_user, loss, batch)
        if sampled:
            pool = torch.tensor(rng.choice(data.n_items, size=NEGATIVES_SAMPLED * (len(samples) // batch + 1), p=q))
        total, seen, out_of_time = 0.0, 0, False
        for b, start in enumerate(range(0, len(samples), batch)):
            if deadline and time.time() > deadline:
                out_of_time = True
                break
            t0 = time.time()
            chunk = samples[start:start + batch]
            users = torch.tensor([u for u, _ in chunk])
            hist, mask = trimmed(model, *history_tensor([data.items[u] for u, _ in chunk], [p for _, p in chunk]))
            probs = torch.tensor(np.stack([data.emotions[u][p] for u, p in chunk]))
            pos = torch.tensor([int(data.items[u][p]) for u, p in chunk])
            t1 = time.time()
            profile["batches"] += t1 - t0
            n_targets = len(chunk)
            if sampled:
                neg = pool[b * NEGATIVES_SAMPLED:(b + 1) * NEGATIVES_SAMPLED]
                if kind in CAUSAL:
                    # the window's next tracks: the input shifted by one, the last target the play at `end`
                    h = model.user_vectors(hist, mask)
                    steps = h.shape[1]
                    nxt = torch.cat([hist[:, -steps + 1:], pos.unsqueeze(1) + 1], dim=1) if steps > 1 else (pos.unsqueeze(1) + 1)
                    valid = (mask[:, -steps:] > 0) & (nxt > 0)
                    value = sampled_loss(model, h[valid], nxt[valid] - 1, neg, log_q)
                    n_targets = int(valid.sum())
                else:
                    u, e = (model.user_vector(hist, mask, probs) if kind.startswith("bilstm") else (model.user_vector(hist, mask), None))
                    value = sampled_loss(model, u, pos, neg, log_q, e, data.music_emb, beta)
            elif loss == "softmax":
                candidates = None
                scores, e = model.score_all(hist, mask, probs, users)
                value = torch.nn.functional.cross_entropy(scores, pos)
            else:
                neg = torch.randint(0, data.n_items, (len(chunk), negatives))
                candidates = torch.cat([pos.unsqueeze(1), neg], dim=1)
                scores, e = model.score_items(hist, mask, probs, candidates, users)
                value = -torch.nn.functional.logsigmoid(scores[:, :1] - scores[:, 1:]).mean()
            if not sampled and e is not None and beta > 0:
                value = value + beta * compat_loss(scores, candidates, e, data.music_emb)
            t2 = time.time()
            for opt in opts:
                opt.zero_grad()
            value.backward()
            t3 = time.time()
            for opt in opts:
                opt.step()
            profile["forward"] += t2 - t1
            profile["backward"] += t3 - t2
            profile["step"] += time.time() - t3
            total += float(value) * n_targets
            seen += n_targets
        if seen == 0 and best_state is not None:
            break
        t0 = time.time()
        model.eval()  # no dropout while validating
        metrics = evaluate(model, data, "val", max_users=2000)
        profile["validation"] = time.time() - t0
        ndcg = metrics["full"]["ndcg"]
        history.append({"epoch": epoch + 1, "loss": total / max(seen, 1), "targets": seen, "val_ndcg10_full": ndcg,
                        "val_ndcg10_sampled": metrics["sampled"]["ndcg"], "seconds": time.time() - started, "profile": profile})
        log(f"    {kind} seed {seed} epoch {epoch + 1}{' (stopped by the time budget)' if out_of_time else ''}: {seen} targets, {loss} loss {total / max(seen, 1):.4f}, val NDCG@10 full {ndcg:.4f} (sampled {metrics['sampled']['ndcg']:.4f}), {time.time() - started:.0f}s ("
            + ", ".join(f"{k} {v:.1f}s" for k, v in profile.items()) + ")")
        if ndcg > best:
            best, bad = ndcg, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= patience:
                break
        if out_of_time:
            break
    model.load_state_dict(best_state)
    if hasattr(model, "item_emb"):
        model.item_emb.sparse = False
    model.eval()
    return model, history


def _rank_metrics(ranks: np.ndarray) -> dict:
    hit = ranks < 10
    ndcg = np.where(hit, 1.0 / np.log2(ranks + 2), 0.0)
    # One held-out item per user: recall@10 equals the hit rate, precision@10 is a tenth of it.
    return {"p": float(hit.mean() / 10), "r": float(hit.mean()), "ndcg": float(ndcg.mean()), "hr": float(hit.mean())}


def rerank_positions(pref: torch.Tensor, compat: torch.Tensor, lam: float) -> torch.Tensor:
    """final = lam * preference (min-max over the candidates) + (1 - lam) * compatibility."""
    lo = pref.min(dim=1, keepdim=True).values
    hi = pref.max(dim=1, keepdim=True).values
    norm = (pref - lo) / torch.clamp(hi - lo, min=1e-9)
    return lam * norm + (1 - lam) * compat


@torch.no_grad()
def evaluate(model, data: Data, split: str = "test", max_users: int = 0, rerank: tuple = (), pop: torch.Tensor = None) -> dict:
    """Metrics at 10 for the held-out item of each user, sampled and full-catalogue, plus the
    same after emotion-compatibility reranking for each lambda in `rerank`."""
    offset = 1 if split == "test" else 2
    users = list(range(len(data.items)))
    if max_users and len(users) > max_users:
        users = users[::math.ceil(len(users) / max_users)]  # evenly spread, the same for every model
    out_sampled, out_full = [], []
    out_rerank = {lam: ([], []) for lam in rerank}
    for start in range(0, len(users), 256):
        chunk = users[start:start + 256]
        ends = [len(data.items[u]) - offset for u in chunk]
        hist, mask = history_tensor([data.items[u] for u in chunk], ends)
        if model is not None:
            hist, mask = trimmed(model, hist, mask)
        probs = torch.tensor(np.stack([data.emotions[u][e] for u, e in zip(chunk, ends)]))
        target = torch.tensor([int(data.items[u][e]) for u, e in zip(chunk, ends)])
        user_t = torch.tensor(chunk)
        if model is None:
            full = pop.unsqueeze(0).expand(len(chunk), -1).clone()
            e = None
        else:
            full, e = model.score_all(hist, mask, probs, user_t)
        cand = torch.cat([target.unsqueeze(1), data.eval_negatives[split][chunk]], dim=1)
        sampled = full.gather(1, cand)
        out_sampled.append((sampled[:, 1:] > sampled[:, :1]).sum(dim=1).numpy())
        masked = full.clone()
        for r, u in enumerate(chunk):
            seen = data.items[u][:ends[r]]
            masked[r, torch.tensor(seen)] = -math.inf
        pos_score = masked.gather(1, target.unsqueeze(1))
        full_rank = (masked > pos_score).sum(dim=1)
        out_full.append(full_rank.numpy())
        if rerank and e is not None:
            emb = torch.nn.functional.normalize(data.music_emb, dim=1)
            e_n = torch.nn.functional.normalize(e, dim=1)
            for lam in rerank:
                compat_s = ((emb[cand] * e_n.unsqueeze(1)).sum(dim=2) + 1) / 2
                final_s = rerank_positions(sampled, compat_s, lam)
                out_rerank[lam][0].append((final_s[:, 1:] > final_s[:, :1]).sum(dim=1).numpy())
                top_scores, top_ids = masked.topk(100, dim=1)
                compat_f = ((emb[top_ids] * e_n.unsqueeze(1)).sum(dim=2) + 1) / 2
                final_f = rerank_positions(top_scores, compat_f, lam)
                in_top = (top_ids == target.unsqueeze(1))
                pos_final = torch.where(in_top, final_f, torch.full_like(final_f, -math.inf)).max(dim=1).values
                new_rank = (final_f > pos_final.unsqueeze(1)).sum(dim=1)
                out_rerank[lam][1].append(torch.where(in_top.any(dim=1), new_rank, full_rank).numpy())
    result = {"sampled": _rank_metrics(np.concatenate(out_sampled)), "full": _rank_metrics(np.concatenate(out_full))}
    for lam, (s, f) in out_rerank.items():
        if s:
            result[f"rerank-{lam}"] = {"sampled": _rank_metrics(np.concatenate(s)), "full": _rank_metrics(np.concatenate(f))}
    return result
