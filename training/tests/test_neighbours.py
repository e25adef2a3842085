"""The neighbourhood models against plain loops, the hybrid's fusion, and the sampled softmax."""
import math
import os
import sys
import unittest

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from emotionmuse_train.hybrid import OUTSIDE, fuse  # noqa: E402
from emotionmuse_train.knn import RecencyItemKnn, SessionKnn  # noqa: E402
from emotionmuse_train.models import GRU4Rec  # noqa: E402
from emotionmuse_train.train import CAUSAL, _training_samples, history_tensor, sampled_loss, train  # noqa: E402
from test_training import tiny_data  # noqa: E402


def history_of(seq, end):
    return history_tensor([np.asarray(seq)], [end])


class RecencyItemKnnByLoop(unittest.TestCase):
    def test_scores_equal_a_loop_over_pairs_and_history(self):
        data = tiny_data(n_items=150, users=25)
        window, alpha, decay, recent, forward = 3, 0.75, 0.8, 6, 0.5
        model = RecencyItemKnn(data.n_items, data.items, window=window, alpha=alpha, decay=decay, recent=recent, neighbours=1000, forward=forward)
        counts = np.zeros(data.n_items)
        pairs = np.zeros((data.n_items, data.n_items))
        for seq in data.items:
            train_part = seq[:-2]
            counts += np.bincount(train_part, minlength=data.n_items)
            for i in range(len(train_part)):
                for j in range(i + 1, min(len(train_part), i + window + 1)):
                    a, b = train_part[i], train_part[j]
                    if a != b:
                        pairs[a, b] += forward
                        pairs[b, a] += 1
        seq = data.items[3]
        hist, mask = history_of(seq, len(seq) - 1)
        expected = np.zeros(data.n_items)
        last = [int(x) - 1 for x in hist[0].tolist() if x > 0][-recent:]
        for d, h in enumerate(reversed(last)):
            for b in range(data.n_items):
                if pairs[h, b]:
                    expected[b] += decay ** d * pairs[h, b] / (max(counts[h], 1) ** alpha * max(counts[b], 1) ** (1 - alpha))
        got = model.score_all(hist, mask)[0][0].numpy() - 1e-6 * model.popularity.numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)

    def test_keeps_each_tracks_best_neighbours_only(self):
        data = tiny_data(n_items=150, users=25)
        full = RecencyItemKnn(data.n_items, data.items, neighbours=1000)
        pruned = RecencyItemKnn(data.n_items, data.items, neighbours=3)
        dense_full, dense_pruned = full.sim.to_dense().numpy(), pruned.sim.to_dense().numpy()
        for row in range(data.n_items):
            kept = np.flatnonzero(dense_pruned[row])
            self.assertLessEqual(len(kept), 3)
            if len(kept):
                self.assertGreaterEqual(dense_pruned[row, kept].min(), np.sort(dense_full[row])[-len(kept)] - 1e-9)
        ids = pruned.export_tables()["neighbour_ids.i32"]
        self.assertEqual(ids.shape, (data.n_items, 3))


class SessionKnnByLoop(unittest.TestCase):
    def test_scores_equal_a_loop_over_the_k_most_similar_sequences(self):
        data = tiny_data(n_items=150, users=25, seed=3)
        k, decay, recent = 4, 0.9, 8
        model = SessionKnn(data.n_items, data.items, k=k, recent=recent, decay=decay, idf=True)
        sessions = [set(s[:-2].tolist()) for s in data.items]
        idf = np.log(len(sessions) / np.maximum(np.bincount([i for s in sessions for i in s], minlength=data.n_items), 1))
        user = 5
        seq = data.items[user]
        hist, mask = history_of(seq, len(seq) - 1)
        plays = [int(x) - 1 for x in hist[0].tolist() if x > 0][-recent:]
        weight = {}
        for d, item in enumerate(reversed(plays)):
            weight.setdefault(item, decay ** d)
        sims = []
        for t, s in enumerate(sessions):
            if t == user:
                continue  # the user's own sequence is no neighbour
            sim = sum(w * idf[i] for i, w in weight.items() if i in s) / math.sqrt(len(weight)) / math.sqrt(max(len(s), 1))
            sims.append((-sim, t))
        expected = np.zeros(data.n_items)
        for neg_sim, t in sorted(sims)[:k]:
            for i in sessions[t]:
                expected[i] += -neg_sim
        got = model.score_all(hist, mask, user=[user])[0][0].numpy() - 1e-6 * model.popularity.numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


class Fusion(unittest.TestCase):
    def test_union_of_both_top_lists_min_max_normalised_and_weighted(self):
        hist = torch.tensor([[0] * 48 + [1, 2]])  # tracks 0 and 1 listened
        a = torch.tensor([[9.0, 9.0, 5.0, 3.0, 1.0]])
        b = torch.tensor([[0.0, 0.0, 1.0, 2.0, 4.0]])
        out = fuse(5, hist, a, b, 0.25)[0]
        # outside the history: a -> 2: 1, 3: 0.5, 4: 0; b -> 4: 1, 3: 1/3, 2: 0
        np.testing.assert_allclose(out[2:].numpy(), [0.75, 0.75 * 0.5 + 0.25 / 3, 0.25], rtol=1e-6)
        self.assertTrue(bool((out[:2] == OUTSIDE).all()))  # the listened tracks are no candidates


class SampledSoftmax(unittest.TestCase):
    def test_the_whole_catalogue_as_negatives_with_uniform_q_is_the_full_softmax(self):
        torch.manual_seed(0)
        n = 30
        model = GRU4Rec(n)
        u = torch.randn(4, 128)
        pos = torch.tensor([0, 5, 7, 29])
        neg = torch.arange(n)
        log_q = torch.log(torch.full((n,), n * (1.0 / n)))  # log(S * q) = 0
        full = torch.nn.functional.cross_entropy(model.out(u), pos)
        self.assertAlmostEqual(float(sampled_loss(model, u, pos, neg, log_q)), float(full), places=5)

    def test_causal_models_learn_every_training_play_after_the_first_and_never_the_held_out_ones(self):
        data = tiny_data()
        for kind in CAUSAL:
            samples = _training_samples(kind, data, np.random.default_rng(0), 4, "sampled")
            self.assertEqual(sorted(u for u, _ in samples), list(range(len(data.items))))
            for u, end in samples:
                self.assertEqual(end, len(data.items[u]) - 3)  # the last target is the last training play
            _, history = train(kind, data, 0, max_epochs=1, batch=8, loss="sampled", log=lambda m: None)
            self.assertEqual(history[0]["targets"], sum(min(len(s) - 3, 50) for s in data.items))
            self.assertEqual(set(history[0]["profile"]), {"batches", "forward", "backward", "step", "validation"})





class PaddingInvariance(unittest.TestCase):
    def test_the_bilstm_scores_a_history_the_same_at_any_padded_width(self):
        from emotionmuse_train.models import BiLSTMRecommender  # noqa: PLC0415
        torch.manual_seed(0)
        for emotion in ("none", "va"):
            model = BiLSTMRecommender(60, emotion=emotion).eval()
            hist = torch.zeros(3, 50, dtype=torch.long)
            hist[0, -7:] = torch.arange(1, 8)
            hist[1, -1:] = 9
            hist[2, :] = torch.arange(1, 51)
            mask = (hist > 0).float()
            probs = torch.softmax(torch.randn(3, 7), dim=1)
            wide = model.score_all(hist, mask, probs)[0]
            for row, width in ((0, 7), (0, 12), (1, 1)):
                narrow = model.score_all(hist[row:row + 1, -width:], mask[row:row + 1, -width:], probs[row:row + 1])[0]
                torch.testing.assert_close(narrow[0], wide[row], rtol=1e-5, atol=1e-5)


if __name__ == "__main__":
    unittest.main()
