"""The paper's emotion-conditioned Bi-LSTM and the baselines, all scoring the whole catalogue.

Histories hold item index + 1, left-padded with 0 to N = 50; `mask` is 1 where an item is."""
import torch
from torch import nn

from .simulate import TABLE_II

N_HISTORY = 50


class EmotionPath(nn.Module):
    """p (7 probabilities) -> 64-d emotion embedding. `va`: W_VA (initialised from Table II) then
    MLP 2 -> 128 -> 64; `soft`: MLP over the probabilities; `onehot`: MLP over the argmax."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode
        if mode == "va":
            self.w_va = nn.Linear(7, 2, bias=False)
            with torch.no_grad():
                self.w_va.weight.copy_(torch.tensor(TABLE_II.T, dtype=torch.float32))
            n_in = 2
        else:
            n_in = 7
        self.mlp = nn.Sequential(nn.Linear(n_in, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())

    def forward(self, probs):
        if self.mode == "va":
            x = self.w_va(probs)
        elif self.mode == "onehot":
            x = nn.functional.one_hot(probs.argmax(dim=1), 7).float()
        else:
            x = probs
        return self.mlp(x)


def recent(hist, mask, n: int):
    """The last `n` positions of a left-padded history: a sequence model's history length (tuned
    with --tune). The input stays N wide, so a model with a shorter history serves unchanged."""
    return (hist, mask) if n >= hist.shape[1] else (hist[:, -n:], mask[:, -n:])


def _reversed_steps(x):
    # (w - 1) - arange(w): torch 1.13 exports a descending arange to ONNX as an empty range
    return x.index_select(1, (x.shape[1] - 1) - torch.arange(x.shape[1], device=x.device))


class BiLSTMRecommender(nn.Module):
    """Item embedding 128; [item || emotion embedding] at each step; Bi-LSTM 128 per direction;
    additive attention; FC-256/ReLU; scores over the catalogue (FC-|C|).

    The two directions are two LSTMs, each fed the history's tracks before its padding (the
    forward one reads the left-padded input rotated so that the tracks come first; the backward
    one reads it from the newest end), so no state at a track has seen padding: the output does
    not depend on how wide the padded input is. Training and evaluation therefore cut a batch to
    its longest history, while serving keeps 50 columns and gives the same scores."""

    padding_invariant = True

    def __init__(self, n_items: int, emotion: str = "va", dropout: float = 0.3):
        super().__init__()
        self.n_items = n_items
        self.emotion = EmotionPath(emotion) if emotion != "none" else None
        self.item_emb = nn.Embedding(n_items + 1, 128, padding_idx=0)
        self.lstm_fwd = nn.LSTM(128 + (64 if self.emotion else 0), 128, batch_first=True)
        self.lstm_bwd = nn.LSTM(128 + (64 if self.emotion else 0), 128, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.att_w = nn.Linear(256, 128)
        self.att_v = nn.Linear(128, 1, bias=False)
        self.head = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Dropout(dropout))
        self.out = nn.Linear(256, n_items)
        self.history = N_HISTORY

    def user_vector(self, hist, mask, probs):
        hist, mask = recent(hist, mask, self.history)
        x = self.item_emb(hist)
        e = None
        if self.emotion is not None:
            e = self.emotion(probs)
            x = torch.cat([x, e.unsqueeze(1).expand(-1, x.shape[1], -1)], dim=2)
        x = x * mask.unsqueeze(2)
        width = x.shape[1]
        pads = width - mask.sum(dim=1).long()                              # [B] left padding
        steps = torch.arange(width, device=x.device).unsqueeze(0)
        rotate = torch.remainder(steps + pads.unsqueeze(1), width)          # tracks first, then padding
        unrotate = torch.remainder(steps - pads.unsqueeze(1), width)
        gather = lambda t, idx: t.gather(1, idx.unsqueeze(2).expand(-1, -1, t.shape[2]))  # noqa: E731
        h_fwd, _ = self.lstm_fwd(gather(x, rotate))
        h_bwd, _ = self.lstm_bwd(_reversed_steps(x))
        h = torch.cat([gather(h_fwd, unrotate), _reversed_steps(h_bwd)], dim=2)
        h = self.drop(h)
        logits = self.att_v(torch.tanh(self.att_w(h))).squeeze(2)
        logits = logits.masked_fill(mask == 0, -1e9)
        alpha = torch.softmax(logits, dim=1)
        z = (alpha.unsqueeze(2) * h).sum(dim=1)
        return self.head(z), e

    def score_all(self, hist, mask, probs, user=None):
        u, e = self.user_vector(hist, mask, probs)
        return self.out(u), e

    def score_items(self, hist, mask, probs, items, user=None):
        u, e = self.user_vector(hist, mask, probs)
        w = self.out.weight[items]                      # [B, K, 256]
        return (w * u.unsqueeze(1)).sum(dim=2) + self.out.bias[items], e


class _LinearHead:
    """Scores items with a linear output layer over the model's user vector (GRU4Rec, SASRec)."""

    def score_all(self, hist, mask, probs, user=None):
        return self.out(self.user_vector(hist, mask)), None

    def score_items(self, hist, mask, probs, items, user=None):
        u = self.user_vector(hist, mask)
        return (self.out.weight[items] * u.unsqueeze(1)).sum(dim=2) + self.out.bias[items], None


class GRU4Rec(_LinearHead, nn.Module):
    """GRU4Rec-style: a GRU over the history; the last state scores the catalogue."""

    def __init__(self, n_items: int):
        super().__init__()
        self.item_emb = nn.Embedding(n_items + 1, 128, padding_idx=0)
        self.gru = nn.GRU(128, 128, batch_first=True)
        self.drop = nn.Dropout(0.25)
        self.out = nn.Linear(128, n_items)
        self.history = N_HISTORY

    def user_vectors(self, hist, mask):
        """The state after every position [B, L, 128]: causal, so each one predicts the next track."""
        hist, mask = recent(hist, mask, self.history)
        h, _ = self.gru(self.item_emb(hist) * mask.unsqueeze(2))
        return self.drop(h)

    def user_vector(self, hist, mask):
        return self.user_vectors(hist, mask)[:, -1]


class SASRec(_LinearHead, nn.Module):
    """SASRec-style: two causal self-attention blocks over item + position embeddings."""

    def __init__(self, n_items: int, d: int = 64):
        super().__init__()
        self.item_emb = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.pos_emb = nn.Embedding(N_HISTORY, d)
        layer = nn.TransformerEncoderLayer(d, 2, 128, dropout=0.2, batch_first=True)
        self.blocks = nn.TransformerEncoder(layer, 2)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, n_items)
        self.register_buffer("causal", torch.triu(torch.full((N_HISTORY, N_HISTORY), float("-inf")), diagonal=1))
        self.history = N_HISTORY

    def user_vectors(self, hist, mask):
        """Every position's output [B, L, d]: causal attention, so each one predicts the next track."""
        hist, mask = recent(hist, mask, self.history)
        positions = torch.arange(hist.shape[1], device=hist.device)
        x = (self.item_emb(hist) + self.pos_emb(positions)) * mask.unsqueeze(2)
        # Left padding: let every position see at least itself so no row is fully masked.
        h = self.blocks(x, mask=self.causal[: hist.shape[1], : hist.shape[1]])
        return self.norm(h)

    def user_vector(self, hist, mask):
        return self.user_vectors(hist, mask)[:, -1]


class BPRMF(nn.Module):
    """Matrix factorisation trained with BPR: a user vector dotted with item vectors."""

    def __init__(self, n_users: int, n_items: int, d: int = 64):
        super().__init__()
        self.user = nn.Embedding(n_users, d)
        self.item = nn.Embedding(n_items, d)
        nn.init.normal_(self.user.weight, std=0.05)
        nn.init.normal_(self.item.weight, std=0.05)

    def score_all(self, hist, mask, probs, user=None):
        return self.user(user) @ self.item.weight.T, None

    def score_items(self, hist, mask, probs, items, user=None):
        return (self.item(items) * self.user(user).unsqueeze(1)).sum(dim=2), None
