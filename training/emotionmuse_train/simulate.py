"""A documented simulator of listening sessions with emotional context, over the real catalogue.

No real listening log with emotion context exists here, so interactions are simulated:

- Each user has a latent taste: a centre in z-scored audio-feature space and a sharpness.
  Their personal pool is 400 tracks drawn with probability proportional to exp(taste affinity)
  (affinity = -sharpness * squared distance to the centre over the perceptual features) times a
  global popularity prior (Zipf over a seeded permutation of the catalogue).
- The user's emotional state is a Markov chain over the 7 FER classes: it stays with
  probability 0.85 at each play and otherwise moves to another class (uniformly). What the
  pipeline would observe is a noisy probability vector, like the classifier's: the softmax of
  2.5 * onehot(state) + N(0, 0.9) noise.
- Each play chooses from the pool plus 100 random tracks by softmax(affinity + 2.5 * log
  compatibility), compatibility = exp(-|va(track) - va(state)|^2 / (2 * 0.18^2)), with va(state)
  the Table II coordinates of the true state: people in a state prefer music whose mood matches
  it. A play is skipped with probability 0.6 * (1 - compatibility); skipped plays are logged but
  are not part of the listening history used for training.
- Sequences hold 55 to 90 completed plays (no track twice per user), long enough for N = 50.
"""
from dataclasses import dataclass

import numpy as np

from .catalogue import FEATURES

TABLE_II = np.array([
    (0.18, 0.76),  # angry
    (0.15, 0.54),  # disgust
    (0.22, 0.82),  # fear
    (0.88, 0.64),  # happy
    (0.20, 0.28),  # sad
    (0.55, 0.78),  # surprise
    (0.50, 0.40),  # neutral
])

PERCEPTUAL = ["danceability", "energy", "loudness", "speechiness", "acousticness", "instrumentalness", "valence", "tempo"]


@dataclass
class Interactions:
    items: list        # per user: np.ndarray of item indices (completed plays, in order)
    emotions: list     # per user: np.ndarray [len, 7] observed emotion probabilities at each play
    states: list       # per user: np.ndarray of true emotion states
    skips: int
    plays: int


def simulate(z: np.ndarray, va: np.ndarray, users: int, seed: int, stay: float = 0.85, pop_weight: float = 0.5) -> Interactions:
    rng = np.random.default_rng(seed)
    n = len(z)
    feat = z[:, [FEATURES.index(f) for f in PERCEPTUAL]]
    popularity = np.empty(n)
    popularity[rng.permutation(n)] = 1.0 / np.arange(1, n + 1) ** 0.6
    log_pop = np.log(popularity / popularity.sum())
    items, emotions, states = [], [], []
    skips = plays = 0
    for _ in range(users):
        centre = rng.normal(0, 0.8, feat.shape[1])
        sharpness = rng.uniform(0.15, 0.4)
        affinity = -sharpness * ((feat - centre) ** 2).sum(axis=1) + pop_weight * log_pop
        p = np.exp(affinity - affinity.max())
        pool = rng.choice(n, size=400, replace=False, p=p / p.sum())
        length = int(rng.integers(55, 91))
        state = int(rng.integers(0, 7))
        seq, emo, st, used = [], [], [], set()
        while len(seq) < length:
            if rng.random() > stay:
                state = int(rng.choice([s for s in range(7) if s != state]))
            candidates = np.concatenate([pool, rng.integers(0, n, 100)])
            candidates = np.array([c for c in candidates if c not in used])
            compat = np.exp(-((va[candidates] - TABLE_II[state]) ** 2).sum(axis=1) / (2 * 0.18 ** 2))
            score = affinity[candidates] + 2.5 * np.log(compat + 1e-6)
            w = np.exp(score - score.max())
            choice = int(rng.choice(len(candidates), p=w / w.sum()))
            track = int(candidates[choice])
            plays += 1
            if rng.random() < 0.6 * (1 - compat[choice]):
                skips += 1
                continue
            logits = 2.5 * np.eye(7)[state] + rng.normal(0, 0.9, 7)
            probs = np.exp(logits - logits.max())
            used.add(track)
            seq.append(track)
            emo.append(probs / probs.sum())
            st.append(state)
        items.append(np.array(seq, dtype=np.int64))
        emotions.append(np.array(emo, dtype=np.float32))
        states.append(np.array(st, dtype=np.int64))
    return Interactions(items=items, emotions=emotions, states=states, skips=skips, plays=plays)
