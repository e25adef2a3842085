"""Music emotion embeddings: a shallow autoencoder with tied weights, 13 audio features -> 64."""
import numpy as np
import torch
from torch import nn


class TiedAutoencoder(nn.Module):
    def __init__(self, n_in: int = 13, n_hidden: int = 64):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_hidden, n_in) * 0.1)
        self.enc_bias = nn.Parameter(torch.zeros(n_hidden))
        self.dec_bias = nn.Parameter(torch.zeros(n_in))

    def encode(self, x):
        return torch.tanh(x @ self.weight.T + self.enc_bias)

    def forward(self, x):
        return self.encode(x) @ self.weight + self.dec_bias


def train_embeddings(z: np.ndarray, seed: int, epochs: int = 15) -> tuple:
    """Returns ([n, 64] embeddings, final reconstruction MSE on the z-scored features)."""
    torch.manual_seed(seed)
    x = torch.tensor(z, dtype=torch.float32)
    model = TiedAutoencoder(x.shape[1], 64)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), 512):
            batch = x[perm[start:start + 512]]
            loss = ((model(batch) - batch) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        mse = float(((model(x) - x) ** 2).mean())
        emb = model.encode(x).numpy().astype(np.float32)
    return emb, mse
