"""The music catalogue: de-duplicated Spotify tracks with the paper's 13 audio features."""
import csv
import glob
import os
from dataclasses import dataclass

import numpy as np

FEATURES = [
    "danceability", "energy", "key", "loudness", "mode", "speechiness", "acousticness",
    "instrumentalness", "liveness", "valence", "tempo", "duration_ms", "time_signature",
]


@dataclass
class Catalogue:
    ids: list          # Spotify track ids, sorted: the index of a track is stable across builds
    titles: list
    artists: list
    raw: np.ndarray    # [n, 13] audio features as published
    mean: np.ndarray   # [13]
    std: np.ndarray    # [13]

    @property
    def z(self) -> np.ndarray:
        return (self.raw - self.mean) / self.std

    def __len__(self) -> int:
        return len(self.ids)


def load_catalogue(folder: str) -> Catalogue:
    """Reads every CSV of the folder; a track (Spotify uri) that appears in several decades'
    files is kept once, with the first row in file-name order."""
    rows = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.csv"))):
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                uri = row["uri"].strip()
                if not uri.startswith("spotify:track:"):
                    continue
                track_id = uri.split(":")[-1]
                if track_id in rows:
                    continue
                try:
                    feats = [float(row[name]) for name in FEATURES]
                except (KeyError, ValueError):
                    continue
                rows[track_id] = (row["track"].strip(), row["artist"].strip(), feats)
    ids = sorted(rows)
    raw = np.array([rows[i][2] for i in ids], dtype=np.float64)
    mean = raw.mean(axis=0)
    std = raw.std(axis=0)
    std[std == 0] = 1.0
    return Catalogue(ids=ids, titles=[rows[i][0] for i in ids], artists=[rows[i][1] for i in ids], raw=raw, mean=mean, std=std)


def subset(cat: Catalogue, keep: np.ndarray) -> Catalogue:
    keep = np.sort(keep)
    return Catalogue(
        ids=[cat.ids[i] for i in keep], titles=[cat.titles[i] for i in keep], artists=[cat.artists[i] for i in keep],
        raw=cat.raw[keep], mean=cat.mean, std=cat.std,
    )
