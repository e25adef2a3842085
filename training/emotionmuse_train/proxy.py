"""An emotion context for real logs, which carry no facial emotion.

The proxy: the listener's state at a play is observed through the music just before it. The mean
valence-arousal label of the last `k` tracks (never the track to be predicted), plus Gaussian
noise of `sigma` (the listener is not the music), becomes seven probabilities by a softmax over
the negative squared distances to the paper's Table II coordinates, at temperature `tau`. The first
play of a sequence gets uniform probabilities. The same model trains on it as on the simulated
faces' probabilities; on simulated data the true emotion stays the controlled experiment.
"""
import numpy as np

from .simulate import TABLE_II


def proxy_emotions(sequences: list, va: np.ndarray, k: int = 3, sigma: float = 0.1, tau: float = 0.02, seed: int = 7) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for seq in sequences:
        probs = np.full((len(seq), 7), 1 / 7, dtype=np.float32)
        for t in range(1, len(seq)):
            state = va[seq[max(0, t - k):t]].mean(axis=0) + rng.normal(0, sigma, 2)
            d = -((TABLE_II - state) ** 2).sum(axis=1) / tau
            p = np.exp(d - d.max())
            probs[t] = p / p.sum()
        out.append(probs)
    return out
