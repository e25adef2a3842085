"""Item-kNN's vectorised co-occurrence, the training time budget, and the packed export."""
import json
import os
import sys
import tempfile
import time
import unittest

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from emotionmuse_train.knn import ItemKnn  # noqa: E402
from emotionmuse_train.models import N_HISTORY, SASRec, BiLSTMRecommender, GRU4Rec  # noqa: E402
from emotionmuse_train.pack import dequantize, quantize_rows  # noqa: E402
from emotionmuse_train.train import prepare, train  # noqa: E402


def tiny_data(n_items=150, users=30, seed=0):  # prepare() needs 99 unplayed tracks per sequence
    rng = np.random.default_rng(seed)
    items = [rng.integers(0, n_items, int(rng.integers(6, 20))) for _ in range(users)]  # repeats allowed, as in real logs
    emotions = [rng.dirichlet(np.ones(7), len(s)).astype(np.float32) for s in items]
    return prepare(n_items, items, emotions, rng.normal(size=(n_items, 64)).astype(np.float32))


class ItemKnnPairs(unittest.TestCase):
    def test_counts_every_pair_within_the_window_as_a_loop_would(self):
        data = tiny_data()
        knn = ItemKnn(data.n_items, data.items, window=3)
        counts = np.bincount(np.concatenate([s[:-2] for s in data.items]), minlength=data.n_items)
        expected = np.zeros((data.n_items, data.n_items))
        for seq in data.items:
            train_part = seq[:-2]
            for i in range(len(train_part)):
                for j in range(max(0, i - 3), min(len(train_part), i + 4)):
                    if i != j and train_part[i] != train_part[j]:
                        expected[train_part[i], train_part[j]] += 1
        expected /= np.sqrt(np.maximum(counts[:, None], 1) * np.maximum(counts[None, :], 1))
        np.testing.assert_allclose(knn.sim.to_dense().numpy(), expected, rtol=1e-6, atol=1e-7)


class TimeBudget(unittest.TestCase):
    def test_a_passed_deadline_stops_training_within_the_first_epoch(self):
        torch.set_num_threads(1)
        data = tiny_data()
        logs = []
        started = time.time()
        _, history = train("bilstm", data, 0, max_epochs=5, targets_per_user=4, batch=8, deadline=time.time(), log=logs.append)
        self.assertEqual(len(history), 1)
        self.assertEqual(history[0]["targets"], 0)
        self.assertIn("stopped by the time budget", logs[0])
        self.assertLess(time.time() - started, 30)

    def test_without_a_deadline_every_target_trains(self):
        data = tiny_data()
        _, history = train("bilstm", data, 0, max_epochs=1, targets_per_user=4, batch=8, log=lambda m: None)
        self.assertEqual(history[0]["targets"], sum(min(4, len(s) - 3) for s in data.items))


class HistoryLength(unittest.TestCase):
    def test_a_shorter_history_reads_only_the_last_tracks_of_the_served_input(self):
        torch.manual_seed(0)
        for model in (BiLSTMRecommender(30, "va"), GRU4Rec(30), SASRec(30)):
            model.eval()
            model.history = 5
            hist = torch.randint(1, 31, (2, N_HISTORY))
            older = hist.clone()
            older[:, :-5] = torch.randint(1, 31, (2, N_HISTORY - 5))
            mask, probs = torch.ones(2, N_HISTORY), torch.full((2, 7), 1 / 7)
            with torch.no_grad():
                a, _ = model.score_all(hist, mask, probs)
                b, _ = model.score_all(older, mask, probs)
                torch.testing.assert_close(a, b)
                model.history = N_HISTORY
                c, _ = model.score_all(older, mask, probs)
            self.assertFalse(torch.allclose(a, c), type(model).__name__)

    def test_training_sets_the_history_length(self):
        model, _ = train("gru4rec", tiny_data(), 0, max_epochs=1, targets_per_user=2, batch=8, history_length=7, log=lambda m: None)
        self.assertEqual(model.history, 7)


class Packing(unittest.TestCase):
    def test_rows_round_trip_within_half_a_step(self):
        w = np.random.default_rng(1).normal(size=(50, 256)).astype(np.float32)
        w[3] = 0
        q, scale = quantize_rows(w, 63)
        self.assertEqual(int(np.abs(q).max()), 63)
        self.assertEqual(scale[3], 1.0)
        err = np.abs(dequantize(q, scale) - w)
        self.assertTrue(np.all(err <= scale[:, None] / 2 + 1e-7))

    def test_a_packed_export_records_the_digests_of_what_it_unpacks(self):
        from emotionmuse_train.export import export  # needs onnx
        import hashlib
        torch.manual_seed(0)
        model = BiLSTMRecommender(120, "va").eval()
        with tempfile.TemporaryDirectory() as out:
            info = export(model, out, 120, "pack-test", packed_music_emb=np.random.default_rng(2).normal(size=(120, 64)).astype(np.float32))
            index = json.load(open(os.path.join(out, "packed.json")))
            self.assertEqual(sorted(index["files"]), ["music_emb.f32", "weights.bin"])
            for name, want in index["files"].items():
                data = open(os.path.join(out, name), "rb").read()
                self.assertEqual(len(data), want["bytes"])
                self.assertEqual(hashlib.sha256(data).hexdigest(), want["sha256"])
            self.assertLess(info["bytes"], 2_000_000)


if __name__ == "__main__":
    unittest.main()
